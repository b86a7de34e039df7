"""What per-record ordering costs: a job where 10% of the rows name a record again.

    python -m benchmarks.ordering [--quick]   # this piece alone: prints its BENCHMARKS.md section

Rows of one record run one after another (issue 13): a row waits while an earlier row of its
record is in flight. The cost is measured in real time against the sandbox (its own
process), with `bulk apply` (its own process) renaming runs: a job whose rows all name
different runs beside a job of the same length where every tenth row names again the run of
the row three before it (close enough that the two would be in flight together), at
concurrency 8 and 32 and a sandbox latency of 5 and 20 ms.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks._measure import apply_argv
from benchmarks._piece import run_piece
from benchmarks._procs import Sandbox, run_client

FULL = {"rows": 2_000}
QUICK = {"rows": 400}
LATENCIES = (5.0, 20.0)
CONCURRENCIES = (8, 32)
REPEAT_EVERY, REPEAT_BACK = 10, 3  # every 10th row names the run of the row 3 before it
_OWN = re.compile(r"processed in ([\d.]+)s")


def _input(path: Path, ids: list[str], rows: int, *, repeats: bool) -> Path:
    chosen: list[str] = []
    fresh = iter(ids)
    for number in range(rows):
        if repeats and number % REPEAT_EVERY == REPEAT_EVERY - 1:
            chosen.append(chosen[number - REPEAT_BACK])
        else:
            chosen.append(next(fresh))
    with open(path, "w", newline="") as out:
        out.write("id,name\n")
        for number, rid in enumerate(chosen):
            out.write(f"{rid},{path.stem} {number}\n")
    return path


def measure(workdir: Path, *, quick: bool = False, say: Any = print) -> dict[str, Any]:
    rows = (QUICK if quick else FULL)["rows"]
    results: dict[str, Any] = {"rows": rows, "load_before": os.getloadavg(), "jobs": {}}
    for latency in LATENCIES:
        with Sandbox(workdir, runs=rows, latency_ms=latency) as sandbox:
            ids = sandbox.run_ids()
            for concurrency in CONCURRENCIES:
                for repeats in (False, True):
                    label = (f"order-{latency:g}ms-c{concurrency}-"
                             f"{'repeats' if repeats else 'distinct'}")
                    path = _input(workdir / f"{label}.csv", ids, rows, repeats=repeats)
                    argv = apply_argv(path, workdir / f"{label}.ledger.db", concurrency)
                    finished = run_client(argv, sandbox.client_env(), timeout=rows / 10 + 300)
                    if finished.returncode != 0:
                        raise RuntimeError(f"{label}: exit {finished.returncode}\n"
                                           f"{finished.stderr[-2000:]}")
                    summary = finished.stdout.strip().splitlines()[-1]
                    own = _OWN.search(summary)
                    job = {"wall_rows_per_s": rows / finished.wall,
                           "own_rows_per_s": rows / float(own.group(1)) if own else None,
                           "all_ok": f"ok {rows}," in summary}
                    results["jobs"][(latency, concurrency, repeats)] = job
                    say(f"[{latency:g}ms c={concurrency}] "
                        f"{'10% repeated' if repeats else 'all distinct'}: "
                        f"{job['own_rows_per_s'] or 0:.0f} rows/s (job), "
                        f"{job['wall_rows_per_s']:.0f} rows/s (process)")
    results["load_after"] = os.getloadavg()
    return results


def render(results: dict[str, Any], *, shared: bool = False) -> str:
    """The BENCHMARKS.md section."""
    jobs = results["jobs"]
    lines = [
        "## Per-record ordering (`benchmarks/ordering.py`)",
        "",
        "Rows of one record run one after another, in file order (issue 13). The cost, in "
        f"real time: `bulk apply` renaming {results['rows']:,} runs, each job its own process "
        "against the sandbox in another, once with every row on a different run and once "
        f"with every {REPEAT_EVERY}th row naming again the run of the row {REPEAT_BACK} "
        "before it (10% repeated, close enough to be in flight together without ordering). "
        "Rows/s by the job's own timer (start-up aside), the process wall in brackets. "
        "`python -m benchmarks.ordering` runs this piece alone.",
        "",
        "| latency | concurrency | all distinct | 10% repeated | change |",
        "|---|---|---|---|---|",
    ]
    for latency in LATENCIES:
        for concurrency in CONCURRENCIES:
            plain, repeated = jobs[(latency, concurrency, False)], jobs[(latency, concurrency,
                                                                          True)]
            a, b = plain["own_rows_per_s"] or 0.0, repeated["own_rows_per_s"] or 0.0
            cost = f"{(b / a - 1) * 100:+.0f}%" if a else "n/a"
            ok = "" if plain["all_ok"] and repeated["all_ok"] else " (not all ok!)"
            lines.append(
                f"| {latency:g} ms | {concurrency} | {a:,.0f} ({plain['wall_rows_per_s']:,.0f}) "
                f"| {b:,.0f} ({repeated['wall_rows_per_s']:,.0f}) | {cost}{ok} |")
    before, after = results["load_before"], results["load_after"]
    # Said only when the run was told so (--shared-machine): the load average alone
    # cannot tell another session's work from ours.
    where = ("**The machine was shared while these ran** (other jobs on the same 2 cores)"
             if shared else "Load average")
    lines += [
        "",
        f"{where}: {before[0]:.1f} before, {after[0]:.1f} after. Read the two columns of one "
        "line against each other: a few percent either way is run-to-run noise. A repeated "
        "row waits only for the row of its own record in flight; at concurrency 32 the "
        "other workers keep the pace, at 8 a wait is one worker in eight.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_piece(__doc__, "bulk-bench-ordering-", measure, render, argv)


if __name__ == "__main__":
    sys.exit(main())
