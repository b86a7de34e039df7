"""One row of the ledger: the statuses, what an entry holds, and how it is stored (the
schema, the upsert, the JSON of before/after/input). `ledger.py` is the file around them
and re-exports what callers use."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bulk.engine.ledger_file import APPLICATION_ID
from bulk.engine.ledger_runs import SESSIONS_SCHEMA

PENDING = "pending"
IN_DOUBT = "in_doubt"
OK = "ok"
UNCHANGED = "unchanged"
INVALID = "invalid"
FAILED = "failed"
#: Nothing was sent: the record no longer showed what the row expected (someone changed it).
CONFLICT = "conflict"
STATUSES = (PENDING, IN_DOUBT, OK, UNCHANGED, INVALID, FAILED, CONFLICT)
#: Rows that a resume skips (failed ones are retried only when asked to).
TERMINAL = frozenset({OK, UNCHANGED, INVALID, FAILED, CONFLICT})
#: Finished rows that `--retry-failed` takes up again.
RETRYABLE = frozenset({FAILED, CONFLICT})

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    row         INTEGER PRIMARY KEY,   -- 1-based data row of the input
    record_id   TEXT,
    status      TEXT NOT NULL,
    http_status INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    request_id  TEXT,
    before      TEXT,                  -- JSON: changed fields as they were
    after       TEXT,                  -- JSON: changed fields as written
    input       TEXT,                  -- JSON: the row as read, kept for rows not done
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    error_kind  TEXT,                  -- failed rows: transient or definitive
    record_name TEXT                   -- the record's name or title, as the row read it
);
CREATE INDEX IF NOT EXISTS rows_status ON rows(status);
"""
#: Created on every opening for a run if absent, so a ledger from before it still opens.
EVENTS_SCHEMA = """
-- What slowed the job, as it happened (429s, pauses, outages), for `bulk report`.
-- Created if absent, so a ledger from before it still opens.
CREATE TABLE IF NOT EXISTS events (
    at      TEXT NOT NULL,             -- ISO time, the same clock as rows.updated_at
    kind    TEXT NOT NULL,             -- "429", "pause", "outage"...
    seconds REAL                       -- how long it held the job back, when known
);
"""
UPSERT = """
INSERT INTO rows (row, record_id, status, http_status, attempts, error, request_id,
                  before, after, input, started_at, updated_at, error_kind, record_name)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(row) DO UPDATE SET
    record_id = excluded.record_id, status = excluded.status,
    http_status = excluded.http_status, attempts = excluded.attempts,
    error = excluded.error, request_id = excluded.request_id,
    before = excluded.before, after = excluded.after, input = excluded.input,
    updated_at = excluded.updated_at, error_kind = excluded.error_kind,
    record_name = COALESCE(excluded.record_name, rows.record_name)
"""


@dataclass(slots=True)
class Entry:
    """What happened to one input row."""

    row: int
    status: str
    record_id: str | None = None
    http_status: int | None = None
    attempts: int = 0
    error: str | None = None
    request_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    input: dict[str, Any] | None = None
    started_at: str | None = None
    updated_at: str | None = None
    #: For failed rows: "transient" (attempts ran out on 429/5xx/transport: retried at
    #: the end of the job and on a plain re-run) or "definitive".
    error_kind: str | None = None
    #: The error in words common to every row it hits (no record id), for grouping;
    #: not stored.
    reason: str | None = None
    #: What a person calls the record (a run's name, a template's or task's title), from
    #: the row's read: shown beside the id. None in ledgers written before it was kept.
    record_name: str | None = None
    #: `ok` because a read after the write showed the change (not the write's answer);
    #: counted in the summary, not stored.
    read_back: bool = False


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def load(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


def entry_of(row: tuple[Any, ...]) -> Entry:
    return Entry(
        row=row[0],
        record_id=row[1],
        status=row[2],
        http_status=row[3],
        attempts=row[4],
        error=row[5],
        request_id=row[6],
        before=load(row[7]),
        after=load(row[8]),
        input=load(row[9]),
        started_at=row[10],
        updated_at=row[11],
        error_kind=row[12],
        record_name=row[13],
    )


COLUMNS = (
    "row, record_id, status, http_status, attempts, error, request_id, before, after, input, "
    "started_at, updated_at, error_kind, record_name"
)
#: Columns added since the first ledgers: a reader of an older one sees them as NULL.
ADDED_COLUMNS = ("error_kind", "record_name")


def set_up(db: sqlite3.Connection) -> None:
    """Tables and stamp of a new ledger (or of one written before the stamp)."""
    db.executescript(SCHEMA + EVENTS_SCHEMA + SESSIONS_SCHEMA)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def migrate(db: sqlite3.Connection) -> None:
    """Bring a ledger written by an older version up to this schema (columns added)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(rows)")}
    for name in ADDED_COLUMNS:
        if name not in columns:
            db.execute(f"ALTER TABLE rows ADD COLUMN {name} TEXT")
