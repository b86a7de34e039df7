"""One client process of the Pace benchmark: a `bulk apply` job, or a bare aiohttp loop.

    python -m benchmarks.pace_client bulk INPUT LEDGER CONCURRENCY RATE [--fixed]
    python -m benchmarks.pace_client bare INPUT - CONCURRENCY -
    python -m benchmarks.pace_client bare INPUT LEDGER CONCURRENCY -

Reads TALLYFY_BASE_URL, TALLYFY_ORG_ID and TALLYFY_ACCESS_TOKEN; prints one JSON line:
the job's own seconds (from its first request to its last answer, without start-up),
the process CPU time over the job and over the whole process, the rows done and the
requests sent, and the steady rows/s: rows finished per second between the 10th and the
90th percentile of their finish times (the start, with its climb, and the tail left out).
`--fixed`: the pace is set at its ceiling from the first request (the twin of a climbing
job). `bare`: for each row a GET and a PUT of the new name with the
run's users and groups, `CONCURRENCY` workers, nothing else (no ledger, no pacer, no
retry, no checks): the floor any client doing the same job pays. `bare` with a LEDGER:
the same loop keeping only the ledger's promise, with bulk's own `Ledger`: each row's
in-doubt mark (its before and after) committed before its PUT leaves, its outcome
recorded after: what keeping the ledger's promise alone costs.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

#: The share of a job's rows left out at each end of its steady window.
STEADY_MARGIN = 0.1


def steady_rate(finished: list[float]) -> float | None:
    """Rows per second over the middle of the finish times (None: too few to tell)."""
    times = sorted(finished)
    first, last = int(len(times) * STEADY_MARGIN), int(len(times) * (1 - STEADY_MARGIN)) - 1
    if last - first < 10 or times[last] <= times[first]:
        return None
    return (last - first) / (times[last] - times[first])


def _ledger_finish_times(ledger: Path) -> list[float]:
    """When each row ended `ok` (the ledger's updated_at, to the millisecond)."""
    import sqlite3
    from datetime import datetime

    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        stamps = db.execute("SELECT updated_at FROM rows WHERE status = 'ok'").fetchall()
    return [datetime.fromisoformat(stamp).timestamp() for (stamp,) in stamps]


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bulk_job(input_path: Path, ledger: Path, concurrency: int, rate: str,
             fixed: bool) -> dict[str, object]:
    from bulk.tallyfy import api, apply_job
    from bulk.tallyfy.connection import connection_from_env

    if fixed:
        make = api.make_pacer

        def at_ceiling(rate, burst, clock):  # type: ignore[no-untyped-def]
            pacer = make(rate, burst, clock)
            pacer._slots.rate = pacer.max_rate  # no climb: the twin
            return pacer

        api.make_pacer = at_ceiling  # type: ignore[assignment]
    # `auto` with the default burst, as a user runs it; a number is the benchmarks' "the
    # pacer never holds anything back" (with the burst they give it).
    auto = rate == "auto"
    options = apply_job.ApplyOptions(input=input_path, ledger=ledger, concurrency=concurrency,
                                     rate="auto" if auto else float(rate),
                                     burst=api.DEFAULT_BURST if auto else 100)
    prepared = apply_job.prepare(options, connection_from_env())
    cpu, started = _process_cpu(), time.perf_counter()
    try:
        summary = asyncio.run(apply_job.execute(prepared))
    finally:
        prepared.ledger.close()
    job_s, job_cpu_s = time.perf_counter() - started, _process_cpu() - cpu
    return {"job_s": job_s, "job_cpu_s": job_cpu_s,
            "ok": summary.done["ok"], "requests": summary.requests,
            "rate_limited": summary.rate_limited, "exit_code": summary.exit_code,
            "steady_rows_per_s": steady_rate(_ledger_finish_times(ledger))}


async def _bare(rows: list[tuple[str, str]], concurrency: int,
                finished: list[float], ledger: Any = None) -> int:
    import aiohttp

    if ledger is not None:
        from bulk.engine.ledger import IN_DOUBT, OK, Entry

    base = os.environ["TALLYFY_BASE_URL"].rstrip("/")
    org = os.environ["TALLYFY_ORG_ID"]
    headers = {"Authorization": f"Bearer {os.environ['TALLYFY_ACCESS_TOKEN']}",
               "Accept": "application/json", "X-Tallyfy-Client": "APIClient"}
    queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
    for number, (run_id, name) in enumerate(rows, start=1):
        queue.put_nowait((number, run_id, name))
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            number, run_id, name = queue.get_nowait()
            url = f"{base}/organizations/{org}/runs/{run_id}"
            async with session.get(url, headers=headers) as answer:
                run = (await answer.json())["data"]
            body = {"name": name, "users": run["users"], "groups": run["groups"]}
            if ledger is not None:
                mark = Entry(row=number, status=IN_DOUBT, record_id=run_id, attempts=1,
                             before={"name": run["name"]}, after={"name": name})
                await ledger.record_durably(mark)
            async with session.put(url, json=body, headers=headers) as answer:
                await answer.read()
                done += answer.status == 200
            if ledger is not None:
                ledger.record(Entry(row=number, status=OK, record_id=run_id, attempts=1,
                                    http_status=answer.status, before=mark.before,
                                    after=mark.after))
            finished.append(time.time())

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return done


def bare_loop(input_path: Path, concurrency: int,
              ledger: Path | None = None) -> dict[str, object]:
    with open(input_path, newline="") as handle:
        rows = [(line["id"], line["name"]) for line in csv.DictReader(handle)]
    finished: list[float] = []
    kept = None
    if ledger is not None:  # opened before the clock starts, as bulk's is
        from bulk.engine.ledger import Ledger

        kept = Ledger(ledger)
    cpu, started = _process_cpu(), time.perf_counter()
    try:
        done = asyncio.run(_bare(rows, concurrency, finished, kept))
    finally:
        if kept is not None:
            kept.close()  # the last batch committed, as bulk's job does before it ends
    return {"job_s": time.perf_counter() - started, "job_cpu_s": _process_cpu() - cpu,
            "ok": done, "requests": 2 * len(rows), "rate_limited": 0, "exit_code": 0,
            "steady_rows_per_s": steady_rate(finished)}


def main(argv: list[str]) -> int:
    mode, input_path, ledger, concurrency, rate = argv[:5]
    if mode == "bulk":
        found = bulk_job(Path(input_path), Path(ledger), int(concurrency), rate,
                         "--fixed" in argv)
    else:
        found = bare_loop(Path(input_path), int(concurrency),
                          None if ledger == "-" else Path(ledger))
    found["process_cpu_s"] = _process_cpu()
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
