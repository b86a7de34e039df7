"""A ledger written before `error_kind` existed opens, reads and resumes."""

from __future__ import annotations

import sqlite3

from bulk.engine.ledger import FAILED, Entry, Ledger, open_existing

OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rows (
    row INTEGER PRIMARY KEY, record_id TEXT, status TEXT NOT NULL, http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, request_id TEXT, before TEXT,
    after TEXT, input TEXT, started_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
INSERT INTO meta VALUES ('fingerprint', '{"input_sha256": "ab", "org": "o", "target": "runs"}');
INSERT INTO rows VALUES (1, 'abc', 'failed', 503, 5, 'HTTP 503', NULL, NULL, NULL, NULL,
                         '2026-01-01', '2026-01-01');
"""


def test_an_old_ledger_gains_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.ledger.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)

    with Ledger(path) as ledger:
        old = ledger.get(1)
        assert (old.status, old.error, old.error_kind) == (FAILED, "HTTP 503", None)
        ledger.record(Entry(row=2, status=FAILED, error="HTTP 502", error_kind="transient"))
        ledger.commit()
        assert ledger.get(2).error_kind == "transient"

    with Ledger(path) as again:  # opening twice migrates once
        assert again.get(2).error_kind == "transient"


def test_an_old_ledger_is_read_by_status_and_export_without_being_changed(tmp_path):
    path = tmp_path / "old.ledger.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    before = path.read_bytes()

    with open_existing(path) as ledger:  # read-only: it must not gain the column
        assert [entry.error_kind for entry in ledger.entries()] == [None]
        assert ledger.get(1).error == "HTTP 503"

    assert path.read_bytes() == before
