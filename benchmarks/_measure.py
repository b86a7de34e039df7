"""One measurement each: a `bulk apply` job, the official SDK's loop, a resume.

Every measurement runs its client in a process of its own against a sandbox in another,
reads the sandbox's request counter before and after, and checks what happened to the
members of every run it touched (from ``/_sandbox/org``, outside the timed part).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmarks._procs import Finished, Sandbox, run_client

#: High enough that the pacer never holds a request back: the measure is the engine's.
RATE, BURST, MAX_ATTEMPTS = 100_000, 100, 5


@dataclass
class ApplyRun:
    """One `bulk apply` process, start to exit."""

    latency_ms: float
    concurrency: int
    rows: int
    argv: list[str]
    finished: Finished
    requests: int  # what the sandbox received during the run
    writes: int  # writes the sandbox applied during the run
    members_changed: int  # touched runs whose users or groups differ afterwards
    summary: str

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.finished.wall

    @property
    def ok(self) -> int | None:
        found = re.search(r"\bok (\d+)", self.summary)
        return int(found.group(1)) if found else None

    @property
    def job_rows_per_s(self) -> float | None:
        """The rate the job reports itself (its own timer: no start-up or input scan)."""
        found = re.search(r"\((\d+) rows/s\)", self.summary)
        return float(found.group(1)) if found else None


@dataclass
class SdkRun:
    """One official-SDK loop process."""

    latency_ms: float
    mode: str  # "naive" | "safe"
    rows: int
    seconds: float  # the loop alone, timed inside the process
    requests: int
    writes: int
    had_members: int  # renamed runs with at least one user or group before
    wiped: int  # ...of which have neither users nor groups afterwards
    members_changed: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


class Rated(Protocol):
    @property
    def rows_per_s(self) -> float: ...


def median_rate(runs: Sequence[Rated]) -> float:
    """The figure reported for a measurement repeated several times."""
    return statistics.median(run.rows_per_s for run in runs)


@dataclass
class Resume:
    argv: list[str]
    finished: Finished
    requests: int
    summary: str

    @property
    def skipped(self) -> int | None:
        found = re.search(r"(\d+) skipped as done before", self.summary)
        return int(found.group(1)) if found else None


def write_renames(path: Path, ids: list[str], rows: int, label: str) -> Path:
    """A rename input of `rows` rows cycling through `ids`, every name new: each row is a
    GET and a PUT."""
    with open(path, "w", newline="") as out:
        out.write("id,name\n")
        for number in range(rows):
            out.write(f"{ids[number % len(ids)]},{label} {number}\n")
    return path


def apply_argv(input_path: Path, ledger: Path, concurrency: int) -> list[str]:
    return [sys.executable, "-m", "bulk", "apply", "--input", str(input_path),
            "--target", "runs", "--rate", str(RATE), "--burst", str(BURST),
            "--concurrency", str(concurrency), "--max-attempts", str(MAX_ATTEMPTS), "-q",
            "--ledger", str(ledger)]


def measure_apply(sandbox: Sandbox, workdir: Path, ids: list[str], *, rows: int,
                  concurrency: int, label: str, sample_every: float | None = None) -> ApplyRun:
    """Rename `rows` runs with `bulk apply` in a fresh ledger."""
    argv = apply_argv(write_renames(workdir / f"{label}.csv", ids, rows, label),
                      workdir / f"{label}.ledger.db", concurrency)
    members, before = sandbox.members(), sandbox.stats()
    finished = run_client(argv, sandbox.client_env(), timeout=rows / 100 + 300,
                          sample_every=sample_every)
    after = sandbox.stats()
    _check(finished, label)
    now = sandbox.members()
    touched = ids[:rows]
    return ApplyRun(
        latency_ms=sandbox.latency_ms, concurrency=concurrency, rows=rows, argv=argv,
        finished=finished, requests=after["requests"] - before["requests"],
        writes=after["writes"] - before["writes"],
        members_changed=sum(members[i] != now[i] for i in touched),
        summary=finished.stdout.strip().splitlines()[-1],
    )


def measure_sdk(sandbox: Sandbox, workdir: Path, ids: list[str], *, mode: str, rows: int,
                label: str) -> SdkRun:
    """Rename the first `rows` runs with the official SDK, one at a time."""
    chosen = ids[:rows]
    ids_file = workdir / f"{label}.ids"
    ids_file.write_text("\n".join(chosen) + "\n")
    argv = [sys.executable, "-m", "benchmarks.sdk_loop", mode, str(ids_file), label]
    members, before = sandbox.members(), sandbox.stats()
    finished = run_client(argv, sandbox.client_env(), timeout=rows + 300)
    after = sandbox.stats()
    _check(finished, label)
    now = sandbox.members()
    had = [i for i in chosen if members[i][0] or members[i][1]]
    return SdkRun(
        latency_ms=sandbox.latency_ms, mode=mode, rows=rows,
        seconds=json.loads(finished.stdout.strip().splitlines()[-1])["seconds"],
        requests=after["requests"] - before["requests"],
        writes=after["writes"] - before["writes"],
        had_members=len(had), wiped=sum(now[i] == ([], []) for i in had),
        members_changed=sum(members[i] != now[i] for i in chosen),
    )


def measure_resume(sandbox: Sandbox, done: ApplyRun) -> Resume:
    """Run a finished job's very command again: it should find nothing left to do."""
    before = sandbox.stats()["requests"]
    finished = run_client(done.argv, sandbox.client_env(), timeout=600)
    requests = sandbox.stats()["requests"] - before
    _check(finished, "resume")
    return Resume(done.argv, finished, requests, finished.stdout.strip().splitlines()[-1])


def _check(finished: Finished, label: str) -> None:
    if finished.returncode != 0:
        raise RuntimeError(f"{label}: exit {finished.returncode}\n{finished.stdout[-2000:]}"
                           f"\n{finished.stderr[-2000:]}")
