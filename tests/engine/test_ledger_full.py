"""A ledger that fills its disk: one clear error, the job stops cleanly, nothing is lost.

The disk is "full" through SQLite's own limit on the database size (`PRAGMA
max_page_count` on the connection): commits then fail with SQLITE_FULL exactly as on a
full device, while the machine's disk is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bulk.engine.errors import LedgerWriteError
from bulk.engine.job import Job
from bulk.engine.ledger import IN_DOUBT, OK, PENDING, Entry, Ledger
from bulk.engine.row_context import RowContext, WorkItem

FINGERPRINT = {"input_sha256": "aaaa", "target": "runs", "org": "org1"}
BIG = "x" * 900  # makes each entry take a good part of a page, so the limit is met soon


def fill_up(ledger: Ledger, spare_pages: int = 2) -> None:
    """From now on the ledger may grow by `spare_pages` pages, no more."""
    pages = ledger._db.execute("PRAGMA page_count").fetchone()[0]
    ledger._db.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


def committed(path: Path) -> dict[int, str]:
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return dict(db.execute("SELECT row, status FROM rows"))


def test_a_full_disk_is_one_line_naming_the_ledger_and_keeps_the_entries(tmp_path):
    path = tmp_path / "l.db"
    ledger = Ledger(path)
    ledger.claim(FINGERPRINT)
    fill_up(ledger, spare_pages=0)
    for row in range(1, 30):
        ledger.record(Entry(row=row, status=OK, before={"name": BIG}))

    with pytest.raises(LedgerWriteError) as raised:
        ledger.commit()

    message = str(raised.value)
    assert str(path) in message and "database or disk is full" in message
    assert "\n" not in message and "run the same command again" in message
    assert committed(path) == {}
    ledger._db.execute("PRAGMA max_page_count = 1000000")  # room again
    ledger.close()  # the entries kept in memory are written now
    assert committed(path) == dict.fromkeys(range(1, 30), OK)


async def test_a_durable_record_that_cannot_be_written_raises_in_every_waiter(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        fill_up(ledger, spare_pages=0)
        results = await asyncio.gather(
            *(ledger.record_durably(Entry(row=n, status=IN_DOUBT, before={"n": BIG}))
              for n in range(1, 9)),
            return_exceptions=True,
        )
        assert all(isinstance(result, LedgerWriteError) for result in results)
        ledger._db.execute("PRAGMA max_page_count = 1000000")


async def test_the_job_stops_cleanly_and_never_sends_a_write_it_could_not_mark(tmp_path, caplog):
    """Rows mark themselves in doubt, then "send" (a list records it), like the applier."""
    path = tmp_path / "l.db"
    sent: list[int] = []
    started: list[int] = []

    async def handler(item: WorkItem, context: RowContext) -> Entry:
        started.append(item.row)
        await asyncio.sleep(0.001)
        entry = Entry(row=item.row, status=IN_DOUBT, before={"name": BIG})
        await context.mark_in_doubt(entry)  # raises when the ledger cannot be written
        sent.append(item.row)
        await asyncio.sleep(0.001)
        return Entry(row=item.row, status=OK, before={"name": BIG}, after={"name": "new"})

    ledger = Ledger(path)
    ledger.claim(FINGERPRINT)
    fill_up(ledger)
    rows = [(n, {}) for n in range(1, 401)]
    job = Job(rows=rows, total=400, handler=handler, ledger=ledger, concurrency=4,
              flush_every=0.01, grace=5.0)

    with pytest.raises(LedgerWriteError, match="database or disk is full"):
        await job.run()
    with pytest.raises(LedgerWriteError):
        ledger.close()  # what is still buffered cannot be written either; the file closes

    on_disk = committed(path)
    assert sent, "some rows were done before the disk filled"
    assert len(started) < 100, "no new rows were taken once the ledger could not be written"
    # Every write that was "sent" had its in-doubt mark committed first: none is lost.
    assert all(on_disk.get(row) in (IN_DOUBT, OK) for row in sent)
    assert set(on_disk.values()) <= {IN_DOUBT, OK, PENDING}
    assert not any("internal error" in (e or "") for e in _errors(path))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback

    # With room again, a resume sees every in-doubt row to settle, and the rest to do.
    with Ledger(path) as again:
        assert again.claim(FINGERPRINT) is True
        assert {row for row, status in on_disk.items() if status == IN_DOUBT} <= {
            entry.row for entry in again.entries(IN_DOUBT)}


def _errors(path: Path) -> list[str | None]:
    with closing(sqlite3.connect(path)) as db:
        return [error for (error,) in db.execute("SELECT error FROM rows")]
