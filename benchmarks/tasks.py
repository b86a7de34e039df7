"""Tasks per second: a leaver handover with `bulk apply --target tasks` beside the SDK's loop.

    python -m benchmarks.tasks [--quick]      # this piece alone: prints its BENCHMARKS.md section

The sandbox (its own process, 20 ms a request) serves a generated org's tasks. Each row hands
one open process task from one of its users (the "leaver") to another member, every other
assignee kept: `bulk apply --target tasks` (its own process, concurrency 32) against the
official SDK one row at a time, naive (`update_task(owners={"users": [heir]})`) and safe (read,
merge the whole `owners`, write). After each, the sandbox's tasks are compared with what the
handover should leave: the count of tasks that lost an assignee nobody asked to remove.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks._measure import BURST, RATE
from benchmarks._piece import run_piece
from benchmarks._procs import Sandbox, run_client

FULL = {"runs": 3_000, "apply_rows": 2_000, "sdk_rows": 300}
QUICK = {"runs": 600, "apply_rows": 300, "sdk_rows": 60}
LATENCY_MS = 20.0
CONCURRENCY = 32


def measure(workdir: Path, *, quick: bool = False, say: Any = print) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    results: dict[str, Any] = {"sizes": sizes, "latency_ms": LATENCY_MS}
    with Sandbox(workdir, runs=sizes["runs"], latency_ms=LATENCY_MS) as sandbox:
        org = sandbox._call("/_sandbox/org")
        rows = _handover_rows(org)
        results["open_tasks"] = len(rows)
        results["apply"] = _apply(sandbox, workdir, rows[: sizes["apply_rows"]])
        say(f"bulk apply --target tasks, {results['apply']['rows']} rows: "
            f"{results['apply']['rows_per_s']:.0f} tasks/s, {results['apply']['lost']} lost")
        for mode in ("naive", "safe"):
            sandbox.reset_data()
            results[mode] = _sdk(sandbox, workdir, rows[: sizes["sdk_rows"]], mode)
            say(f"SDK {mode}, {results[mode]['rows']} rows: "
                f"{results[mode]['rows_per_s']:.1f} tasks/s, {results[mode]['lost']} lost")
        sandbox.reset_data()
    return results


def _handover_rows(org: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """(run_id, task_id, heir, leaver) for every open process task with a user assignee."""
    members = [m["id"] for m in org["members"]]
    rows = []
    for task in org["tasks"]:
        users = task["owners"]["users"]
        if task.get("run_id") and users and task.get("status") != "completed":
            heir = next(m for m in members if m not in users)
            rows.append((task["run_id"], task["id"], heir, users[0]))
    return rows


def _lost(sandbox: Sandbox, rows: list[tuple[str, str, int, int]],
          before: dict[str, Any]) -> int:
    """Tasks that lost an assignee the handover did not ask to remove."""
    now = {t["id"]: t["owners"] for t in sandbox._call("/_sandbox/org")["tasks"]}
    lost = 0
    for _run, task_id, _heir, leaver in rows:
        was, after = before[task_id], now[task_id]
        kept_users = set(was["users"]) - {leaver}
        if (not kept_users <= set(after["users"]) or not set(was["guests"]) <= set(after["guests"])
                or not set(was["groups"]) <= set(after["groups"])):
            lost += 1
    return lost


def _owners(sandbox: Sandbox) -> dict[str, Any]:
    return {t["id"]: t["owners"] for t in sandbox._call("/_sandbox/org")["tasks"]}


def _apply(sandbox: Sandbox, workdir: Path, rows: list[tuple[str, str, int, int]]
           ) -> dict[str, Any]:
    path = workdir / "tasks-handover.csv"
    path.write_text("run_id,task_id,add_users,remove_users\n"
                    + "".join(f"{r},{t},{h},{leaver}\n" for r, t, h, leaver in rows))
    argv = [sys.executable, "-m", "bulk", "apply", "--input", str(path), "--target", "tasks",
            "--rate", str(RATE), "--burst", str(BURST), "--concurrency", str(CONCURRENCY),
            "-q", "--ledger", str(workdir / "tasks-handover.ledger.db")]
    before, stats = _owners(sandbox), sandbox.stats()
    finished = run_client(argv, sandbox.client_env(), timeout=len(rows) / 10 + 300)
    if finished.returncode != 0:
        raise RuntimeError(f"apply: exit {finished.returncode}\n{finished.stderr[-2000:]}")
    requests = sandbox.stats()["requests"] - stats["requests"]
    summary = finished.stdout.strip().splitlines()[-1].split(" | ledger ")[0]
    own = re.search(r"processed in ([\d.]+)s", summary)
    return {"rows": len(rows), "wall": finished.wall, "rows_per_s": len(rows) / finished.wall,
            "own_rows_per_s": len(rows) / float(own.group(1)) if own else None,
            "requests_per_row": requests / len(rows), "lost": _lost(sandbox, rows, before),
            "peak_mb": finished.peak_mb, "summary": summary}


def _sdk(sandbox: Sandbox, workdir: Path, rows: list[tuple[str, str, int, int]], mode: str
         ) -> dict[str, Any]:
    path = workdir / f"tasks-{mode}.rows"
    path.write_text("".join(f"{r},{t},{h},{leaver}\n" for r, t, h, leaver in rows))
    before, stats = _owners(sandbox), sandbox.stats()
    finished = run_client([sys.executable, "-m", "benchmarks.sdk_task_loop", mode, str(path)],
                          sandbox.client_env(), timeout=len(rows) + 300)
    if finished.returncode != 0:
        raise RuntimeError(f"SDK {mode}: exit {finished.returncode}\n{finished.stderr[-2000:]}")
    seconds = json.loads(finished.stdout.strip().splitlines()[-1])["seconds"]
    requests = sandbox.stats()["requests"] - stats["requests"]
    return {"rows": len(rows), "seconds": seconds, "rows_per_s": len(rows) / seconds,
            "requests_per_row": requests / len(rows), "lost": _lost(sandbox, rows, before)}


def render(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    apply, naive, safe = results["apply"], results["naive"], results["safe"]
    lines = [
        "## Tasks: a leaver handover (`benchmarks/tasks.py`)",
        "",
        f"`python -m benchmarks.tasks` runs this piece alone. Sandbox at "
        f"{results['latency_ms']:g} ms a request, {results['sizes']['runs']:,} runs, "
        f"{results['open_tasks']:,} open process tasks with a user assignee. Each row takes one "
        "task from one of its users and gives it to another member; every other assignee "
        "(users, guests, groups) should stay.",
        "",
        "| client | rows | tasks/s | requests/row | tasks that lost an assignee nobody asked "
        "to remove |",
        "|---|---|---|---|---|",
        f"| `bulk apply --target tasks`, concurrency {CONCURRENCY} (process wall) "
        f"| {apply['rows']:,} | **{apply['rows_per_s']:,.0f}** | {apply['requests_per_row']:.2f} "
        f"| {apply['lost']} |",
        f"| the same run, by the job's own timer (start-up aside) | {apply['rows']:,} "
        f"| {apply['own_rows_per_s'] or 0:,.0f} | | |",
        f"| SDK naive: `update_task(owners={{\"users\": [heir]}})` | {naive['rows']:,} "
        f"| **{naive['rows_per_s']:.1f}** | {naive['requests_per_row']:.2f} | {naive['lost']} |",
        f"| SDK safe: `get_task` + `update_task` with the whole `owners` | {safe['rows']:,} "
        f"| **{safe['rows_per_s']:.1f}** | {safe['requests_per_row']:.2f} | {safe['lost']} |",
        "",
        f"At {results['latency_ms']:g} ms, `bulk apply --target tasks` is "
        f"**{apply['rows_per_s'] / naive['rows_per_s']:.1f}×** the naive loop and "
        f"**{apply['rows_per_s'] / safe['rows_per_s']:.1f}×** the safe one. The SDK's seconds "
        "cover its loop only; bulk's include its process start-up. bulk's summary: "
        f"`{apply['summary']}`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_piece(__doc__, "bulk-bench-tasks-", measure, render, argv)


if __name__ == "__main__":
    sys.exit(main())
