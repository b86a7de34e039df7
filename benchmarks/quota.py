"""How close `bulk apply` gets to a quota it is not told (issue 7).

    python -m benchmarks.quota [--update BENCHMARKS.md] [--seconds 60]

For each hidden quota Q (requests/s, a token bucket holding one second's worth) and each
way of answering 429 (Retry-After always, on every other 429, never), a rename job of
about `seconds` at Q runs with the default options and `--rate auto` through the real
code path: `execute()`, aiohttp, the sandbox over loopback. Both sides run in looptime's
fake event-loop time (the sandbox's quota reads the same loop clock), so a 60 s job takes
a few real seconds and the figures do not depend on the machine's load. `--rate 1000`
behaves exactly as `--rate auto` here (both start at the default 10/s and climb; the auto
ceiling is 1000/s), so it is not run twice.

Utilization: requests answered other than 429, per second of the job, over Q.
Time to settle: the first whole second of the job in which the server accepted >= 0.9 Q.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import looptime

from bulk.sandbox import Sandbox, SandboxConfig
from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
from bulk.tallyfy.connection import Connection, Secret

QUOTAS = (5, 20, 60, 200)
MODES = ("always", "sometimes", "never")
TOKEN = "bench-quota-token"
BEGIN, END = "<!-- quota-table:begin -->", "<!-- quota-table:end -->"


@dataclass
class QuotaResult:
    quota: float
    mode: str
    rows: int
    seconds: float  # the job's length in (fake) seconds
    accepted: int
    refused: int
    settle: float | None
    real_seconds: float

    @property
    def utilization(self) -> float:
        return self.accepted / self.seconds / self.quota

    @property
    def share_429(self) -> float:
        return self.refused / max(1, self.accepted + self.refused)


async def _one(quota: float, mode: str, seconds: float, workdir: Path) -> QuotaResult:
    loop = asyncio.get_running_loop()
    rows = int(quota * seconds / 2)  # a GET and a PUT a row
    # Hidden: without the X-RateLimit headers (the real-time table with them is in pace.py).
    config = SandboxConfig(runs=rows, templates=5, seed=7, token=TOKEN, rate_limit=quota,
                           rate_headers=False,
                           retry_after=mode, clock=loop.time, journal_size=rows * 2 + 10_000)
    async with Sandbox(config, host="127.0.0.1", port=0) as sandbox:
        path = workdir / f"q{quota:g}-{mode}.csv"
        ids = sorted(sandbox.store.runs)
        path.write_text("id,name\n" + "".join(f"{rid},Quota {n}\n" for n, rid in enumerate(ids)),
                        encoding="utf-8")
        options = ApplyOptions(input=path, rate="auto", ledger=path.with_suffix(".db"))
        prepared = prepare(options, Connection(sandbox.base_url, sandbox.org_id, Secret(TOKEN)))
        started, wall = loop.time(), time.monotonic()
        try:
            summary = await execute(prepared)
        finally:
            prepared.ledger.close()
        elapsed = loop.time() - started
        if summary.exit_code != 0:
            raise RuntimeError(f"the job did not finish cleanly: {summary.line()}")
        stats = sandbox.stats
        return QuotaResult(quota, mode, rows, elapsed, stats.requests - stats.rate_limited,
                           stats.rate_limited, _settle(sandbox, started, quota),
                           time.monotonic() - wall)


def _settle(sandbox: Sandbox, started: float, quota: float) -> float | None:
    per_second: dict[int, int] = {}
    for entry in sandbox.stats.journal:
        if entry.status != 429:
            second = int(entry.time - started)
            per_second[second] = per_second.get(second, 0) + 1
    for second in sorted(per_second):
        if per_second[second] >= 0.9 * quota:
            return float(second + 1)
    return None


def measure(seconds: float = 60.0, quotas: tuple[float, ...] = QUOTAS,
            say: object = print) -> list[QuotaResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bulk-bench-quota-") as tmp:
        for quota in quotas:
            for mode in MODES:
                loop = looptime.new_event_loop(start=0)
                try:
                    result = loop.run_until_complete(_one(quota, mode, seconds, Path(tmp)))
                finally:
                    loop.close()
                results.append(result)
                if callable(say):
                    say(f"quota {quota:g}/s, Retry-After {mode}: utilization "
                        f"{result.utilization:.3f}, 429 share {result.share_429:.2%}, "
                        f"settled after {result.settle} s ({result.real_seconds:.1f} s real)")
    return results


def section(results: list[QuotaResult]) -> list[str]:
    """The Markdown section (between markers, so `--update` can replace it alone)."""
    lines = [BEGIN, "## Finding a hidden quota (`benchmarks/quota.py`)", "",
             "A rename job of ~60 s at the quota Q, default options and `--rate auto` "
             "(the same as `--rate 1000`), against the sandbox's per-token bucket (one "
             "second's worth of burst) over loopback, in fake event-loop time. Targets "
             "(issue 7): utilization >= 0.9, 429 share <= 5%.", "",
             "| Q (req/s) | Retry-After | rows | job (s) | utilization | 429 share | "
             "time to settle (s) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        ok = r.utilization >= 0.9 and r.share_429 <= 0.05
        settle = "—" if r.settle is None else f"{r.settle:g}"
        lines.append(f"| {r.quota:g} | {r.mode} | {r.rows:,} | {r.seconds:.1f} | "
                     f"{r.utilization:.3f} | {r.share_429:.2%} | {settle} | "
                     f"{'PASS' if ok else '**FAIL**'} |")
    lines += ["", "Utilization counts every request the server did not refuse (the preflight "
              "included) per second of the whole job, start-up climb and end included. "
              "Time to settle: the first whole second in which the server accepted at least "
              "0.9 Q. For these Q the sandbox's Retry-After is always 1 s, and 1 s is also "
              "the pause `bulk` takes when the header is absent: the three rows of each Q "
              "coincide.", END]
    return lines


def update(path: Path, results: list[QuotaResult]) -> None:
    """Replace the quota section of `path` (or add it at the end) and nothing else."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = "\n".join(section(results))
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", type=Path, help="Markdown file whose quota section to replace")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    results = measure(args.seconds, say=lambda m: print(f"bench: {m}", file=sys.stderr,
                                                        flush=True))
    if args.update:
        update(args.update, results)
    else:
        print("\n".join(section(results)))
    return 0 if all(r.utilization >= 0.9 and r.share_429 <= 0.05 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
