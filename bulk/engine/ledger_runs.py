"""The runs of a job, in its ledger: each start, and each end with how it stopped.

A resumed job is one job: `bulk status` and `bulk report` tell it from its first start,
with each stop (Ctrl-C, a signal, a crash, an outage, a failure stop...) and resume. A run
killed or crashed writes no end; the next run closes it as a crash, at its last write.
The table is created if absent, so a ledger from before it still opens; such a ledger,
resumed, keeps its last run as its meta told it.
"""

from __future__ import annotations

import sqlite3

SESSIONS_SCHEMA = """
-- One line per run of the job: its start, and its end with how it stopped.
CREATE TABLE IF NOT EXISTS sessions (
    started_at TEXT NOT NULL,          -- ISO time, the same clock as rows.updated_at
    ended_at   TEXT,                   -- NULL while running (or until a crash is found)
    how        TEXT,                   -- finished, Ctrl-C, signal SIGTERM, crash, outage...
    detail     TEXT                    -- the reason in words, when there is one
);
"""
#: How a run ended, from the `outcome` an older ledger's meta holds.
OUTCOME_HOW = {"done": "finished", "interrupted": "interrupt", "running": None}
CRASH = "crash"
CRASH_DETAIL = "killed or crashed: it never wrote its end"


def begin(db: sqlite3.Connection, now: str, meta: dict[str, str]) -> None:
    """Note a run starting at `now` (inside the caller's transaction); close any run left
    open as a crash first."""
    if not db.execute("SELECT 1 FROM sessions LIMIT 1").fetchone():
        _earlier_run(db, meta)
    for rowid, began in db.execute(
            "SELECT rowid, started_at FROM sessions WHERE ended_at IS NULL").fetchall():
        last = db.execute(
            "SELECT MAX(at) FROM (SELECT MAX(updated_at) AS at FROM rows "
            "WHERE updated_at >= ? UNION ALL SELECT MAX(at) FROM events WHERE at >= ?)",
            (began, began)).fetchone()[0]
        db.execute("UPDATE sessions SET ended_at = ?, how = ?, detail = ? WHERE rowid = ?",
                   (last or began, CRASH, CRASH_DETAIL, rowid))
    db.execute("INSERT INTO sessions (started_at) VALUES (?)", (now,))


def end(db: sqlite3.Connection, now: str, how: str, detail: str | None) -> None:
    """Note how the run begun last stopped (inside the caller's transaction)."""
    db.execute("UPDATE sessions SET ended_at = ?, how = ?, detail = ? WHERE rowid = "
               "(SELECT MAX(rowid) FROM sessions) AND ended_at IS NULL", (now, how, detail))


def _earlier_run(db: sqlite3.Connection, meta: dict[str, str]) -> None:
    # A ledger written before runs were noted, resumed now: its last run is what the
    # meta says (the ones before it are lost), so its history starts there.
    if not meta.get("started_at") or not db.execute("SELECT 1 FROM rows LIMIT 1").fetchone():
        return
    ended = meta.get("finished_at") or db.execute(
        "SELECT MAX(updated_at) FROM rows").fetchone()[0]
    outcome = meta.get("outcome") or "running"
    how = OUTCOME_HOW.get(outcome, outcome) or CRASH
    db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
               (meta["started_at"], ended, how, None))
