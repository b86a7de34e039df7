"""The loop's own figures: `bulk select` throughput and the undo of a 10,000-row job.

    python -m benchmarks.loop [--quick]      # this piece alone: prints its BENCHMARKS.md section

Each client runs in a process of its own against the sandbox in another (as for apply):
- select: every run of a 20,000-run org to a CSV, with no latency and with 20 ms a request;
  records/s over the process's whole life (start-up included), and requests per 1,000
  records (100 a page, so 10 when the list items are whole);
- undo: a 10,000-row rename is applied, then `bulk undo LEDGER -o FILE` writes the undo
  input (timed, peak RSS) and `bulk apply` runs it (rows/s); every name must be back.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from benchmarks._measure import BURST, RATE, measure_apply
from benchmarks._piece import run_piece
from benchmarks._procs import Sandbox, run_client

FULL = {"records": 20_000, "undo_rows": 10_000}
QUICK = {"records": 2_000, "undo_rows": 1_000}
LATENCIES = (0.0, 20.0)
_SELECTED = re.compile(
    r"selected (\d+) of (\d+) \w+ scanned \| (\d+) pages, (\d+) requests in ([\d.]+)s")


def measure(workdir: Path, *, quick: bool = False, say: Any = print) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    results: dict[str, Any] = {"sizes": sizes, "select": {}, "undo": None}
    # What any `bulk` process costs before doing anything (imports): part of every wall.
    startup = run_client([sys.executable, "-m", "bulk", "--version"], {}, timeout=120)
    results["startup_s"] = startup.wall
    for latency in LATENCIES:
        with Sandbox(workdir, runs=sizes["records"], latency_ms=latency) as sandbox:
            results["select"][latency] = _select(sandbox, workdir, latency)
            found = results["select"][latency]
            say(f"[{latency:g}ms] bulk select, {found['scanned']} runs: "
                f"{found['records_per_s']:.0f} records/s, "
                f"{found['requests_per_1000']:.1f} requests per 1,000 records")
            if not latency:
                results["undo"] = _undo(sandbox, workdir, sizes["undo_rows"])
                undo = results["undo"]
                say(f"undo of a {undo['rows']}-row job: written in {undo['write_s']:.2f} s "
                    f"(peak RSS {undo['write_peak_mb']:.0f} MB), applied at "
                    f"{undo['apply_rows_per_s']:.0f} rows/s, {undo['restored']} names back")
    return results


def _select(sandbox: Sandbox, workdir: Path, latency: float) -> dict[str, Any]:
    output = workdir / f"select-{latency:g}ms.csv"
    argv = [sys.executable, "-m", "bulk", "select", "runs", "-o", str(output),
            "--rate", str(RATE), "--burst", str(BURST), "-q"]
    before = sandbox.stats()["requests"]
    finished = run_client(argv, sandbox.client_env(), timeout=600)
    _check(finished, "select")
    line = finished.stdout.strip().splitlines()[-1]
    found = _SELECTED.search(line)
    if found is None:
        raise RuntimeError(f"select: no summary line: {line}")
    selected, scanned, pages, requests = map(int, found.groups()[:4])
    own_seconds = float(found.group(5))
    seen = sandbox.stats()["requests"] - before
    return {"latency_ms": latency, "selected": selected, "scanned": scanned, "pages": pages,
            "requests": requests, "sandbox_requests": seen, "wall": finished.wall,
            "records_per_s": scanned / finished.wall,
            "own_records_per_s": scanned / own_seconds if own_seconds else None,
            "requests_per_1000": requests / scanned * 1000,
            "peak_mb": finished.peak_mb, "summary": line}


def _undo(sandbox: Sandbox, workdir: Path, rows: int) -> dict[str, Any]:
    ids = sandbox.run_ids()[:rows]
    names_before = _names(sandbox)
    job = measure_apply(sandbox, workdir, ids, rows=rows, concurrency=32, label="undo-job")
    ledger = workdir / "undo-job.ledger.db"
    undo_input = workdir / "undo-job.undo.jsonl"
    written = run_client([sys.executable, "-m", "bulk", "undo", str(ledger), "-o",
                          str(undo_input)], sandbox.client_env(), timeout=600)
    _check(written, "undo")
    applied = run_client(
        [sys.executable, "-m", "bulk", "apply", "--input", str(undo_input), "--target", "runs",
         "--rate", str(RATE), "--burst", str(BURST), "--concurrency", "32", "-q",
         "--ledger", str(workdir / "undo-apply.ledger.db")],
        sandbox.client_env(), timeout=rows / 50 + 300)
    _check(applied, "undo apply")
    names_after = _names(sandbox)
    return {"rows": rows, "job_rows_per_s": job.rows_per_s, "write_s": written.wall,
            "write_peak_mb": written.peak_mb, "apply_s": applied.wall,
            "apply_rows_per_s": rows / applied.wall, "apply_peak_mb": applied.peak_mb,
            "restored": sum(names_after[i] == names_before[i] for i in ids),
            "summary": applied.stdout.strip().splitlines()[-1]}


def _names(sandbox: Sandbox) -> dict[str, str]:
    return {run["id"]: run["name"] for run in sandbox._call("/_sandbox/org")["runs"]}


def _check(finished: Any, label: str) -> None:
    if finished.returncode != 0:
        raise RuntimeError(f"{label}: exit {finished.returncode}\n{finished.stdout[-2000:]}"
                           f"\n{finished.stderr[-2000:]}")


def render(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    sizes = results["sizes"]
    lines = [
        "## The loop: `bulk select` and `bulk undo`",
        "",
        f"`bulk select runs -o FILE.csv` of a {sizes['records']:,}-run org (every run, "
        f"`--rate {RATE}`: the pacer never waits), client and sandbox each in a process:",
        "",
        "| latency | records | pages | requests | requests per 1,000 records | records/s "
        "(process wall) | records/s (its own timer) | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for latency, found in sorted(results["select"].items()):
        lines.append(
            f"| {latency:g} ms | {found['scanned']:,} | {found['pages']} | {found['requests']} "
            f"| {found['requests_per_1000']:.1f} | {found['records_per_s']:,.0f} "
            f"| {found['own_records_per_s'] or 0:,.0f} | {found['peak_mb']:.0f} MB |")
    lines += [
        "",
        "The process wall includes start-up: `bulk --version` alone takes "
        f"{results['startup_s']:.2f} s here. At the default `--rate 10` a select is bound by "
        "the pacer: 10 pages a second, 1,000 records/s.",
    ]
    undo = results.get("undo")
    if undo:
        lines += [
            "",
            f"Undo of a {undo['rows']:,}-row rename (applied first at c=32, "
            f"{undo['job_rows_per_s']:.0f} rows/s), no latency:",
            "",
            "| step | time | rate | peak RSS |",
            "|---|---|---|---|",
            f"| `bulk undo LEDGER -o undo.jsonl` (writing the input) | {undo['write_s']:.2f} s "
            f"| {undo['rows'] / undo['write_s']:,.0f} rows/s | {undo['write_peak_mb']:.0f} MB |",
            f"| `bulk apply` of the undo (c=32) | {undo['apply_s']:.1f} s "
            f"| {undo['apply_rows_per_s']:.0f} rows/s | {undo['apply_peak_mb']:.0f} MB |",
            "",
            f"Names back as before the job: {undo['restored']:,} of {undo['rows']:,}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_piece(__doc__, "bulk-bench-loop-", measure, render, argv)


if __name__ == "__main__":
    sys.exit(main())
