"""Pace (issue 15): the quota at once, no wasted reads, CPU per row, in real time.

    python -m benchmarks.pace [--quick]        # this piece alone: prints its section
    python -m benchmarks.run --only pace --output BENCHMARKS.md   # replaces the section

Every job is a client process of its own (benchmarks/pace_client.py) against the sandbox
in another, in real time (no fake clock):
- the climb: a 200-row job, `--rate auto` (from 10/s, climbing), against its twin whose
  pace is fixed at the same ceiling from the first request; no latency, concurrency 32;
  the two alternate, the median of each is shown;
- the quota table: quota Q (5, 20, 60, 200 requests/s, a bucket of one second's worth)
  x concurrency 8 and 32 x latency 5 and 20 ms, `--rate auto`, each job sized to take
  about `CELL_SECONDS` at Q; the sandbox tells its quota in X-RateLimit headers (as by
  default), and, below, the same at concurrency 32 and 20 ms without them (discovery);
- CPU per row and the ratio to a bare aiohttp loop doing the same GET and PUT per row:
  5,000 rows, concurrency 32, no latency, no quota, alternating in one run; and the same
  ratio at latency 5 and 20 ms x concurrency 8 and 32 (where users run it), no quota;
  beside them at 0 ms, for reference, the bare loop keeping bulk's ledger and nothing else;
- the speed-up over the official SDK's loop at 20 ms: `bulk apply` of 2,000 rows at
  concurrency 32 against the SDK's safe loop (a GET and a PUT per row, one at a time).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks._measure import measure_sdk, write_renames
from benchmarks._piece import run_piece
from benchmarks._procs import Sandbox, run_client

QUOTAS = (5, 20, 60, 200)
CONCURRENCIES = (8, 32)
LATENCIES = (5.0, 20.0)
CELL_SECONDS = 12.0
#: Goals (issue 15).
MIN_UTILIZATION, MAX_429_SHARE, MAX_GETS_PER_ROW = 0.95, 0.02, 1.05
MAX_CLIMB_RATIO, MIN_BARE_RATIO, MIN_SDK_SPEEDUP = 1.5, 0.8, 12.0
MAX_CPU_MS_PER_ROW = 0.5

FULL = {"climb_rows": 200, "climb_pairs": 3, "cell_seconds": CELL_SECONDS,
        "cpu_rows": 5_000, "cpu_pairs": 2, "sdk_bulk_rows": 2_000, "sdk_rows": 200,
        "latency_pairs": 2}
QUICK = {"climb_rows": 200, "climb_pairs": 1, "cell_seconds": 4.0,
         "cpu_rows": 1_000, "cpu_pairs": 1, "sdk_bulk_rows": 500, "sdk_rows": 40,
         "latency_pairs": 1}


def _client(sandbox: Sandbox, argv: list[str], timeout: float) -> dict[str, Any]:
    finished = run_client([sys.executable, "-m", "benchmarks.pace_client", *argv],
                          sandbox.client_env(), timeout=timeout)
    if finished.returncode != 0:
        raise RuntimeError(f"pace client {argv[:1]}: exit {finished.returncode}\n"
                           f"{finished.stdout[-2000:]}\n{finished.stderr[-2000:]}")
    found = json.loads(finished.stdout.strip().splitlines()[-1])
    found["wall"] = finished.wall
    return found


def _bulk(sandbox: Sandbox, workdir: Path, ids: list[str], *, rows: int, concurrency: int,
          rate: str, label: str, fixed: bool = False) -> dict[str, Any]:
    path = write_renames(workdir / f"{label}.csv", ids, rows, label)
    argv = ["bulk", str(path), str(workdir / f"{label}.ledger.db"), str(concurrency), rate]
    found = _client(sandbox, argv + (["--fixed"] if fixed else []), timeout=rows + 300)
    if found["exit_code"] != 0 or found["ok"] != rows:
        raise RuntimeError(f"{label}: {found}")
    return found


def _bare(sandbox: Sandbox, workdir: Path, ids: list[str], *, rows: int, concurrency: int,
          label: str, ledgered: bool = False) -> dict[str, Any]:
    """The bare loop; `ledgered`: keeping bulk's ledger only (see pace_client)."""
    path = write_renames(workdir / f"{label}.csv", ids, rows, label)
    ledger = str(workdir / f"{label}.ledger.db") if ledgered else "-"
    return _client(sandbox, ["bare", str(path), ledger, str(concurrency), "-"],
                   timeout=rows + 300)


def measure(workdir: Path, *, quick: bool = False, say: Any = print) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    results: dict[str, Any] = {"sizes": sizes}
    with Sandbox(workdir, runs=5_000, latency_ms=0) as sandbox:
        ids = sandbox.run_ids()
        results["climb"] = _climb(sandbox, workdir, ids, sizes, say)
        results["cpu"] = _cpu(sandbox, workdir, ids, sizes, say)
    results["latency"] = []
    for latency in LATENCIES:
        with Sandbox(workdir, runs=5_000, latency_ms=latency) as sandbox:
            ids = sandbox.run_ids()
            for concurrency in CONCURRENCIES:
                results["latency"].append(_against_bare(sandbox, workdir, ids, sizes,
                                                        concurrency, latency, say))
    results["quota"] = []
    most = max(QUOTAS) * sizes["cell_seconds"] / 2 + 10
    for latency in LATENCIES:
        with Sandbox(workdir, runs=int(most), latency_ms=latency,
                     extra=("--journal-size", "100000")) as sandbox:
            ids = sandbox.run_ids()
            for quota in QUOTAS:
                for concurrency in CONCURRENCIES:
                    results["quota"].append(_cell(sandbox, workdir, ids, sizes, quota,
                                                  concurrency, latency, True, say))
            if latency == max(LATENCIES):
                for quota in QUOTAS:
                    results["quota"].append(_cell(sandbox, workdir, ids, sizes, quota,
                                                  max(CONCURRENCIES), latency, False, say))
    with Sandbox(workdir, runs=max(sizes["sdk_bulk_rows"], 2_000), latency_ms=20) as sandbox:
        results["sdk"] = _sdk(sandbox, workdir, sandbox.run_ids(), sizes, say)
    return results


def _climb(sandbox: Sandbox, workdir: Path, ids: list[str], sizes: dict[str, Any],
           say: Any) -> dict[str, Any]:
    climbing, fixed = [], []
    for n in range(sizes["climb_pairs"]):
        for runs, twin in ((climbing, False), (fixed, True)):
            runs.append(_bulk(sandbox, workdir, ids, rows=sizes["climb_rows"], concurrency=32,
                              rate="auto", fixed=twin, label=f"climb-{n}-{int(twin)}"))
    found = {"rows": sizes["climb_rows"],
             "climbing_s": statistics.median(r["job_s"] for r in climbing),
             "fixed_s": statistics.median(r["job_s"] for r in fixed),
             "climbing_wall": statistics.median(r["wall"] for r in climbing),
             "fixed_wall": statistics.median(r["wall"] for r in fixed)}
    found["ratio"] = found["climbing_s"] / found["fixed_s"]
    say(f"climb: {found['climbing_s']:.3f} s against {found['fixed_s']:.3f} s fixed "
        f"({found['ratio']:.2f}x)")
    return found


def _against_bare_pairs(sandbox: Sandbox, workdir: Path, ids: list[str], *, rows: int,
                        concurrency: int, pairs: int, label: str, ledgered: bool = False
                        ) -> tuple[list[dict[str, Any]], ...]:
    """`pairs` times a `bulk apply` job (the pacer holding nothing back) then the bare loop
    (and, if `ledgered`, the bare loop keeping bulk's ledger), alternating, same rows and
    concurrency: the runs of each (the third list empty unless `ledgered`)."""
    bulk, bare, kept = [], [], []
    for n in range(pairs):
        bulk.append(_bulk(sandbox, workdir, ids, rows=rows, concurrency=concurrency,
                          rate="100000", label=f"{label}-{n}"))
        bare.append(_bare(sandbox, workdir, ids, rows=rows, concurrency=concurrency,
                          label=f"{label}-{n}-bare"))
        if ledgered:
            kept.append(_bare(sandbox, workdir, ids, rows=rows, concurrency=concurrency,
                              label=f"{label}-{n}-ledgered", ledgered=True))
    return bulk, bare, kept


def _steady(bulk: list[dict[str, Any]], bare: list[dict[str, Any]]) -> dict[str, float]:
    """Median steady rows/s of each (finish times between the 10th and 90th percentile),
    and their ratio."""
    found = {"bulk_steady": statistics.median(r["steady_rows_per_s"] for r in bulk),
             "bare_steady": statistics.median(r["steady_rows_per_s"] for r in bare)}
    return {**found, "ratio": found["bulk_steady"] / found["bare_steady"]}


def _cpu(sandbox: Sandbox, workdir: Path, ids: list[str], sizes: dict[str, Any],
         say: Any) -> dict[str, Any]:
    rows = sizes["cpu_rows"]
    bulk, bare, kept = _against_bare_pairs(sandbox, workdir, ids, rows=rows, concurrency=32,
                                           pairs=sizes["cpu_pairs"], label="cpu",
                                           ledgered=True)
    found = {"rows": rows,
             "job_cpu_ms_per_row": statistics.median(r["job_cpu_s"] for r in bulk) / rows * 1e3,
             "process_cpu_ms_per_row":
                 statistics.median(r["process_cpu_s"] for r in bulk) / rows * 1e3,
             "bare_cpu_ms_per_row": statistics.median(r["job_cpu_s"] for r in bare) / rows * 1e3,
             "bulk_rows_per_s": statistics.median(rows / r["job_s"] for r in bulk),
             "bare_rows_per_s": statistics.median(rows / r["job_s"] for r in bare),
             **_steady(bulk, bare)}
    found["whole_ratio"] = found["bulk_rows_per_s"] / found["bare_rows_per_s"]
    found["ledgered_steady"] = statistics.median(r["steady_rows_per_s"] for r in kept)
    found["ledgered_ratio"] = found["ledgered_steady"] / found["bare_steady"]
    found["ledgered_cpu_ms_per_row"] = (statistics.median(r["job_cpu_s"] for r in kept)
                                        / rows * 1e3)
    say(f"cpu: {found['job_cpu_ms_per_row']:.3f} ms/row in the job "
        f"({found['process_cpu_ms_per_row']:.3f} whole process); {found['bulk_rows_per_s']:.0f}"
        f" rows/s against the bare loop's {found['bare_rows_per_s']:.0f} "
        f"({found['whole_ratio']:.2f}); steady {found['bulk_steady']:.0f} against "
        f"{found['bare_steady']:.0f} ({found['ratio']:.2f}); the bare loop keeping the "
        f"ledger {found['ledgered_steady']:.0f} ({found['ledgered_ratio']:.2f})")
    return found


def _against_bare(sandbox: Sandbox, workdir: Path, ids: list[str], sizes: dict[str, Any],
                  concurrency: int, latency: float, say: Any) -> dict[str, Any]:
    """`bulk apply` against the bare loop where a user runs it: latency, no quota. Each job
    sized for ~`cell_seconds` / 2 of the bare loop at its best (concurrency over two round
    trips), every row a record of its own; the two alternate."""
    rows = int(min(len(ids), 4_000, sizes["cell_seconds"] / 2 * concurrency
                   / (2 * (latency + 1) / 1000)))
    bulk, bare, _ = _against_bare_pairs(sandbox, workdir, ids, rows=rows,
                                     concurrency=concurrency, pairs=sizes["latency_pairs"],
                                     label=f"lat-{latency:g}-c{concurrency}")
    found = {"latency_ms": latency, "concurrency": concurrency, "rows": rows,
             **_steady(bulk, bare)}
    say(f"{latency:g} ms c{concurrency}: steady {found['bulk_steady']:.0f} rows/s against "
        f"the bare loop's {found['bare_steady']:.0f} ({found['ratio']:.2f})")
    return found


def _cell(sandbox: Sandbox, workdir: Path, ids: list[str], sizes: dict[str, Any], quota: float,
          concurrency: int, latency: float, headers: bool, say: Any) -> dict[str, Any]:
    rows = max(10, int(quota * sizes["cell_seconds"] / 2))
    sandbox.settings(rate_limit=quota, rate_headers=headers)  # buckets start full
    sandbox.reset_stats()
    label = f"q{quota:g}-c{concurrency}-{latency:g}ms-{'told' if headers else 'found'}"
    found = _bulk(sandbox, workdir, ids, rows=rows, concurrency=concurrency, rate="auto",
                  label=label)
    stats = sandbox.stats()
    reads = sum(1 for e in sandbox.journal()
                if e["method"] == "GET" and "/runs/" in e["path"] and e["status"] == 200)
    accepted = stats["requests"] - stats["rate_limited"]
    cell = {"quota": quota, "concurrency": concurrency, "latency_ms": latency,
            "headers": headers, "rows": rows, "job_s": found["job_s"],
            "accepted": accepted, "refused": stats["rate_limited"],
            # The most the bucket could let through in the job: its stock at the start
            # (one second's worth) plus its refill.
            "utilization": accepted / (quota * found["job_s"] + quota),
            "share_429": stats["rate_limited"] / max(1, stats["requests"]),
            "gets_per_row": reads / max(1, found["ok"])}
    say(f"quota {quota:g}/s c{concurrency} {latency:g} ms {'told' if headers else 'found'}: "
        f"{rows} rows in {found['job_s']:.1f} s, utilization {cell['utilization']:.3f}, "
        f"429s {cell['share_429']:.1%}, GETs/row {cell['gets_per_row']:.2f}")
    return cell


def _sdk(sandbox: Sandbox, workdir: Path, ids: list[str], sizes: dict[str, Any],
         say: Any) -> dict[str, Any]:
    bulk = _bulk(sandbox, workdir, ids, rows=sizes["sdk_bulk_rows"], concurrency=32,
                 rate="100000", label="sdk-bulk")
    sdk = measure_sdk(sandbox, workdir, ids, mode="safe", rows=sizes["sdk_rows"],
                      label="sdk-safe-pace")
    found = {"bulk_rows": sizes["sdk_bulk_rows"], "bulk_rows_per_s":
             sizes["sdk_bulk_rows"] / bulk["job_s"], "sdk_rows": sdk.rows,
             "sdk_rows_per_s": sdk.rows_per_s}
    found["speedup"] = found["bulk_rows_per_s"] / found["sdk_rows_per_s"]
    say(f"20 ms: {found['bulk_rows_per_s']:.0f} rows/s against the SDK's "
        f"{found['sdk_rows_per_s']:.1f} ({found['speedup']:.1f}x)")
    return found


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def render(results: dict[str, Any], *, shared: bool = True) -> str:
    """The BENCHMARKS.md section "Pace"."""
    climb, cpu, sdk = results["climb"], results["cpu"], results["sdk"]
    lines = ["## Pace", ""]
    if shared:
        lines += ["> Measured on a shared machine (other jobs were running on its 2 cores): "
                  "to be measured again on a quiet one.", ""]
    lines += [
        "Real time, each job a process of its own against the sandbox in another "
        "(`benchmarks/pace.py`).", "",
        "| Measurement | Result | Goal | Verdict |", "|---|---|---|---|",
        f"| {climb['rows']}-row job, `--rate auto` climbing from 10/s vs its twin fixed at "
        f"the ceiling (0 ms, c32; job time, median) | {climb['climbing_s']:.3f} s vs "
        f"{climb['fixed_s']:.3f} s: {climb['ratio']:.2f}x | <= {MAX_CLIMB_RATIO}x | "
        f"{_verdict(climb['ratio'] <= MAX_CLIMB_RATIO)} |",
        f"| CPU per row, {cpu['rows']:,} rows, c32, 0 ms (process CPU during the job; whole "
        f"process) | {cpu['job_cpu_ms_per_row']:.3f} ms; {cpu['process_cpu_ms_per_row']:.3f} "
        f"ms (bare loop: {cpu['bare_cpu_ms_per_row']:.3f} ms) | <= {MAX_CPU_MS_PER_ROW} ms | "
        f"{_verdict(cpu['job_cpu_ms_per_row'] <= MAX_CPU_MS_PER_ROW)} |",
        f"| Steady throughput against a bare aiohttp loop (same GET and PUT per row, same "
        f"run; {cpu['rows']:,} rows, c32, 0 ms: the client's CPU is the limit; rows "
        f"finished between the 10th and 90th percentile of finish times, the whole job "
        f"after the semicolon) | {cpu['bulk_steady']:,.0f} vs "
        f"{cpu['bare_steady']:,.0f} rows/s: {cpu['ratio']:.2f}; {cpu['bulk_rows_per_s']:,.0f} "
        f"vs {cpu['bare_rows_per_s']:,.0f}: {cpu['whole_ratio']:.2f} | >= {MIN_BARE_RATIO} | "
        f"{_verdict(cpu['ratio'] >= MIN_BARE_RATIO)} |",
        f"| For reference, the same bare loop keeping bulk's ledger and nothing else (each "
        f"row's in-doubt mark committed before its PUT leaves, its outcome recorded after; "
        f"same run, alternating): what keeping the ledger's promise alone costs, bulk's "
        f"pacing, retries, ordering, plan and checks left out "
        f"| {cpu['ledgered_steady']:,.0f} vs {cpu['bare_steady']:,.0f} rows/s: "
        f"{cpu['ledgered_ratio']:.2f} ({cpu['ledgered_cpu_ms_per_row']:.3f} ms CPU per row) "
        f"| (none) | |",
        f"| 20 ms: `bulk apply` ({sdk['bulk_rows']:,} rows, c32) over the SDK's safe loop "
        f"({sdk['sdk_rows']} rows) | {sdk['bulk_rows_per_s']:,.0f} vs "
        f"{sdk['sdk_rows_per_s']:.1f} rows/s: {sdk['speedup']:.1f}x | >= {MIN_SDK_SPEEDUP:g}x | "
        f"{_verdict(sdk['speedup'] >= MIN_SDK_SPEEDUP)} |",
        "", "### Against the bare loop where users run it", "",
        "The same bare loop, at the latencies and concurrencies of the quota table, no "
        "quota; steady rows/s (finish times between the 10th and 90th percentile), the "
        "median of the runs, each row a record of its own. At 0 ms (above) the client's "
        "own CPU is the limit (the sandbox takes the other core); with a network in "
        "between, the round trips are.", "",
        "| latency | concurrency | rows | `bulk apply` (rows/s) | bare loop (rows/s) | "
        "ratio | verdict |", "|---|---|---|---|---|---|---|"]
    for c in results["latency"]:
        lines.append(
            f"| {c['latency_ms']:g} ms | {c['concurrency']} | {c['rows']:,} | "
            f"{c['bulk_steady']:,.0f} | {c['bare_steady']:,.0f} | {c['ratio']:.2f} | "
            f"{_verdict(c['ratio'] >= MIN_BARE_RATIO)} |")
    lines += [
        "", "### The quota table", "",
        f"`--rate auto`, default burst; each job sized for ~{results['sizes']['cell_seconds']:g} "
        "s at Q. Utilization: requests the sandbox accepted (the preflight included) over "
        "the most its bucket could let through in the job's time (one second's worth at "
        "the start plus Q a second). GETs per changed row: record reads answered 200 per "
        "row changed (1.00: no read wasted). Told: answers carry X-RateLimit-Limit and "
        "-Remaining (the sandbox's default); found: they do not, the pace is discovered.", "",
        "| Q (req/s) | concurrency | latency | headers | rows | job (s) | utilization | "
        "429 share | GETs per changed row | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for c in results["quota"]:
        ok = (c["utilization"] >= MIN_UTILIZATION and c["share_429"] <= MAX_429_SHARE
              and c["gets_per_row"] <= MAX_GETS_PER_ROW)
        lines.append(
            f"| {c['quota']:g} | {c['concurrency']} | {c['latency_ms']:g} ms | "
            f"{'told' if c['headers'] else 'found'} | {c['rows']:,} | {c['job_s']:.1f} | "
            f"{c['utilization']:.3f} | {c['share_429']:.1%} | {c['gets_per_row']:.2f} | "
            f"{_verdict(ok)} |")
    lines += ["", f"Goals: utilization >= {MIN_UTILIZATION}, 429 share <= {MAX_429_SHARE:.0%}, "
              f"GETs per changed row <= {MAX_GETS_PER_ROW}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_piece(__doc__, "bulk-bench-pace-", measure, render, argv)


if __name__ == "__main__":
    sys.exit(main())
