"""``make bench``: measure `bulk apply` on the local sandbox and write BENCHMARKS.md.

    python -m benchmarks.run [--output BENCHMARKS.md] [--quick] [--shared-machine]
    python -m benchmarks.run --only pace --output BENCHMARKS.md   # one piece, its section

What it measures (issue 3, point 18), each client in its own process, the sandbox in another:
rows/s of a rename with no latency and with 20 ms, at concurrency 8, 32 and 64; the official
SDK's one-by-one loop (naive and safe) on the same sandbox; peak RSS for a short job and a
1,000,000-row one; resuming that finished job; the sandbox's own requests/s. Inputs and
ledgers live in a temporary directory that is removed at the end. ``--quick`` shrinks every
size (1M rows -> 50k) to try things out; the committed BENCHMARKS.md comes from a full run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import loop, ordering, pace, quota, report_big, sandbox_rps, tasks
from benchmarks._measure import measure_apply, measure_resume, measure_sdk
from benchmarks._plan import CONCURRENCIES, FULL, LATENCIES, QUICK, SDK_MODES, Results, Sizes
from benchmarks._procs import Sandbox
from benchmarks._report import render


def run_benchmarks(sizes: Sizes, workdir: Path, quick: bool = False,
                   say: Callable[[str], None] = print) -> Results:
    """Every measurement, one after another (never two at once on the 2 cores)."""
    started = time.monotonic()
    results = Results(sizes, quick, datetime.now(UTC), os.getloadavg())
    say(f"sandbox requests/s ({sizes.rps_seconds:g} s window)")
    results.rps = sandbox_rps.measure(seconds=sizes.rps_seconds)
    say(f"  {results.rps['requests_per_second']} requests/s")
    for latency in LATENCIES:
        with Sandbox(workdir, runs=sizes.runs, latency_ms=latency) as sandbox:
            _on_one_sandbox(sandbox, workdir, sizes, results, say)
    say("the loop: bulk select throughput, undo of a job")
    results.loop = loop.measure(workdir, quick=quick, say=say)
    say("finding a hidden quota (benchmarks/quota.py, fake loop time)")
    results.quota = quota.measure(seconds=20.0 if quick else 60.0, say=say)
    results.elapsed = time.monotonic() - started
    results.load_after = os.getloadavg()
    return results


def _on_one_sandbox(sandbox: Sandbox, workdir: Path, sizes: Sizes, results: Results,
                    say: Callable[[str], None]) -> None:
    latency = sandbox.latency_ms
    tag = f"{latency:g}ms"
    ids = sandbox.run_ids()
    say(f"[{tag}] warm-up: {sizes.warmup_rows} rows, not counted")
    measure_apply(sandbox, workdir, ids, rows=sizes.warmup_rows, concurrency=32,
                  label=f"warmup-{tag}")
    for concurrency in CONCURRENCIES:
        rows = sizes.rows(latency, concurrency)
        runs = results.apply.setdefault((latency, concurrency), [])
        for attempt in range(sizes.repeats):
            runs.append(measure_apply(sandbox, workdir, ids, rows=rows, concurrency=concurrency,
                                      label=f"apply-{tag}-c{concurrency}-{attempt}"))
            say(f"[{tag}] bulk apply c={concurrency}, {rows} rows: "
                f"{runs[-1].rows_per_s:.0f} rows/s, peak RSS {runs[-1].finished.peak_mb:.1f} MB")
    for mode in SDK_MODES:
        loops = results.sdk.setdefault((latency, mode), [])
        for attempt in range(sizes.repeats):
            loops.append(measure_sdk(sandbox, workdir, ids, mode=mode,
                                     rows=sizes.sdk_rows(latency),
                                     label=f"sdk-{mode}-{tag}-{attempt}"))
            say(f"[{tag}] SDK {mode} loop, {loops[-1].rows} rows: "
                f"{loops[-1].rows_per_s:.1f} rows/s, {loops[-1].wiped} runs wiped")
            sandbox.reset_data()  # give any wiped run its members back
    if not latency:
        _long_job(sandbox, workdir, ids, sizes, results, say)


def _long_job(sandbox: Sandbox, workdir: Path, ids: list[str], sizes: Sizes, results: Results,
              say: Callable[[str], None]) -> None:
    """The million-row job (its memory, sampled as it goes), then its resume."""
    say(f"bulk apply c=32, {sizes.big_rows} rows (the long one)")
    big = measure_apply(sandbox, workdir, ids, rows=sizes.big_rows, concurrency=32,
                        label=f"big-{sizes.big_rows}", sample_every=2.0)
    results.big = big
    results.sandbox_rss_mb = sandbox.rss_mb()
    say(f"  {big.rows_per_s:.0f} rows/s, {big.finished.wall:.0f} s, "
        f"peak RSS {big.finished.peak_mb:.1f} MB")
    results.resume = measure_resume(sandbox, big)
    say(f"resume of the finished job: {results.resume.finished.wall:.2f} s, "
        f"{results.resume.requests} requests")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, help="Markdown file to write (default: stdout)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (1M rows -> 50k), for trying things out")
    parser.add_argument("--only", choices=["pace", "ordering"],
                        help="run this piece alone and replace its section of --output")
    parser.add_argument("--shared-machine", action="store_true",
                        help="mark the Pace section as measured while others used the machine")
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    if args.only is not None:
        with tempfile.TemporaryDirectory(prefix=f"bulk-bench-{args.only}-") as tmp:
            if args.only == "pace":
                heading = "## Pace"
                section = pace.render(pace.measure(Path(tmp), quick=args.quick, say=say),
                                      shared=args.shared_machine)
            else:
                heading = "## Per-record ordering (`benchmarks/ordering.py`)"
                section = ordering.render(ordering.measure(Path(tmp), quick=args.quick,
                                                           say=say), shared=args.shared_machine)
        if args.output is None:
            print(section)
        else:
            replace_section(args.output, heading, section)
            say(f"replaced the {heading[3:]} section of {args.output}")
        return 0

    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as tmp:
        results = run_benchmarks(QUICK if args.quick else FULL, Path(tmp), args.quick, say)
        say("bulk report of a big ledger, and start-up")
        big_report = report_big.measure(Path(tmp), 50_000 if args.quick else 1_000_000)
        say("tasks: a leaver handover beside the SDK's loop")
        task_results = tasks.measure(Path(tmp), quick=args.quick, say=say)
        say("per-record ordering: 10% repeated records beside none")
        order_results = ordering.measure(Path(tmp), quick=args.quick, say=say)
        say("pace: the climb, the quota table in real time, CPU per row (issue 15)")
        pace_results = pace.measure(Path(tmp), quick=args.quick, say=say)
    text, all_passed = render(results)
    if results.loop is not None:
        text += "\n" + loop.render(results.loop)
    text = text.rstrip("\n") + "\n\n" + "\n".join(report_big.section(big_report))
    text = text.rstrip("\n") + "\n\n" + tasks.render(task_results)
    text = text.rstrip("\n") + "\n\n" + ordering.render(order_results,
                                                             shared=args.shared_machine)
    text = text.rstrip("\n") + "\n\n" + pace.render(pace_results, shared=args.shared_machine)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text)
        say(f"wrote {args.output} ({results.elapsed / 60:.1f} min)")
    return 0 if all_passed else 1


def replace_section(path: Path, heading: str, section: str) -> None:
    """Put `section` in place of `heading`'s section of `path` (up to the next heading of
    the same level), or at the end; nothing else is touched."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines()
    level = heading.split(" ")[0] + " "
    try:
        start = lines.index(heading)
    except ValueError:
        path.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")
        return
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith(level)),
               len(lines))
    kept = lines[:start] + section.rstrip("\n").splitlines() + ([""] if end < len(lines)
                                                                  else []) + lines[end:]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
