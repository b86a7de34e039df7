"""A job's whole life from its ledger: each run, how it stopped, total and active time.

A job stopped (Ctrl-C, a signal, a crash, an outage, a failure stop) and resumed is one
job told whole: `bulk status` and `bulk report` start it at its first start and list
every stop. Read from the ledger's `sessions` table; a ledger from before that table is
told as one run, from its meta.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bulk.engine.ledger_runs import OUTCOME_HOW

#: What each way of stopping means to the person, and what to do about it.
NEXT = {
    "finished": "",
    "Ctrl-C": "run the same command again",
    "interrupt": "run the same command again",
    "crash": "run the same command again (it settles any row left in doubt)",
    "outage": "the API was unreachable too long; run the same command again once it answers",
    "API unavailable": "the API was down at the start; run the same command again later",
    "failure stop": ("rows kept failing: see the errors by cause, deal with them, then run "
                     "the same command again"),
    "authentication": "the token was refused; set a valid one, then run the same command again",
    "ledger write failed": "make room for the ledger, then run the same command again",
    "input changed": "the input file changed under the job; restore it, or start over with --fresh",
}


@dataclass
class Run:
    started_at: str
    ended_at: str | None  # None: running now (or crashed, until the next run says so)
    how: str | None  # finished, Ctrl-C, signal SIGTERM, crash, outage, failure stop...
    detail: str | None = None

    @property
    def seconds(self) -> float:
        return _between(self.started_at, self.ended_at) if self.ended_at else 0.0

    @property
    def next_step(self) -> str:
        if self.how is None or self.how == "finished":
            return ""
        if self.how.startswith("signal"):
            return NEXT["Ctrl-C"]
        return NEXT.get(self.how, "run the same command again")


@dataclass
class History:
    runs: list[Run]

    @property
    def first_start(self) -> str | None:
        return self.runs[0].started_at if self.runs else None

    @property
    def last_end(self) -> str | None:
        return self.runs[-1].ended_at if self.runs else None

    @property
    def stops(self) -> list[Run]:
        """Runs that ended otherwise than by finishing (each one a stop and, if a run came
        after it, a resume)."""
        return [run for run in self.runs if run.ended_at and run.how != "finished"]

    @property
    def resumes(self) -> int:
        return max(0, len(self.runs) - 1)

    @property
    def total_seconds(self) -> float:
        """First start to last end (stops included)."""
        if not self.runs or not self.last_end:
            return 0.0
        return _between(self.runs[0].started_at, self.last_end)

    @property
    def active_seconds(self) -> float:
        """Time the job was running: the sum of its runs."""
        return sum(run.seconds for run in self.runs)

    def as_dict(self) -> dict[str, object]:
        return {
            "first_start": self.first_start, "last_end": self.last_end,
            "total_seconds": round(self.total_seconds, 3),
            "active_seconds": round(self.active_seconds, 3),
            "resumes": self.resumes,
            "runs": [{"started_at": run.started_at, "ended_at": run.ended_at, "how": run.how,
                      "detail": run.detail, "seconds": round(run.seconds, 3)}
                     for run in self.runs],
        }


def read_history(db: sqlite3.Connection | None, meta: dict[str, str]) -> History:
    """The runs the ledger noted (`db` None: only what its meta says)."""
    has = db is not None and db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'").fetchone()
    runs = []
    if has and db is not None:
        runs = [Run(*found) for found in db.execute(
            "SELECT started_at, ended_at, how, detail FROM sessions ORDER BY rowid")]
    if not runs and meta.get("started_at"):  # a ledger from before runs were noted
        outcome = meta.get("outcome") or ""
        how = OUTCOME_HOW.get(outcome, outcome or None)
        runs = [Run(meta["started_at"], meta.get("finished_at") or None, how)]
    return History(runs)


def duration(seconds: float) -> str:
    """`1h 02m 03s`, `2m 05s`, `4.2s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def utc(stamp: str | None) -> str:
    """An ISO time as people read it on every view: `2026-12-04 18:00:07 UTC`."""
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return stamp


def _between(start: str, end: str) -> float:
    try:
        return max(0.0, (datetime.fromisoformat(end)
                         - datetime.fromisoformat(start)).total_seconds())
    except ValueError:
        return 0.0
