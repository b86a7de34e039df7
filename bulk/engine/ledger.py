"""The per-row result ledger: SQLite in WAL mode, one entry per input row.

Why SQLite: a crash (even `kill -9`) never leaves a half-written file, lookups by row
are indexed, and the user can open it with any SQLite tool.

Writes are buffered and committed in batches. The one write that must reach disk before
anything else happens is `in_doubt`, recorded just before a PUT is sent: `record_durably`
lets every worker that reaches that point in the same event-loop turn share one commit.
A crash therefore loses at most the last short batch of *finished* rows, and those rows
are simply done again on resume (their records already show the change, so no second
write is sent).

Which files may be opened as a ledger, the run lock, and how a new ledger is created are
in `ledger_file`. A write that fails (disk full, say) raises `LedgerWriteError`, and the
entries not written stay buffered, in order, for a later commit.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulk.engine import ledger_runs
from bulk.engine.errors import ConfigError, LedgerMismatch, LedgerWriteError
from bulk.engine.ledger_file import APPLICATION_ID, RunLock, open_for_run, open_read_only
from bulk.engine.ledger_rows import (
    ADDED_COLUMNS,
    COLUMNS,
    CONFLICT,
    EVENTS_SCHEMA,
    FAILED,
    IN_DOUBT,
    INVALID,
    OK,
    PENDING,
    RETRYABLE,
    STATUSES,
    TERMINAL,
    UNCHANGED,
    UPSERT,
    Entry,
    dump,
    entry_of,
    migrate,
    now_iso,
    set_up,
)
from bulk.engine.ledger_runs import SESSIONS_SCHEMA

#: The ledger's public surface: the file (`Ledger`), and what one row of it holds.
__all__ = [
    "CONFLICT",
    "FAILED",
    "INVALID",
    "IN_DOUBT",
    "OK",
    "PENDING",
    "RETRYABLE",
    "STATUSES",
    "TERMINAL",
    "UNCHANGED",
    "Entry",
    "Ledger",
    "now_iso",
    "open_existing",
]

if TYPE_CHECKING:  # asyncio is imported where it is used: `bulk status` need not load it
    import asyncio

#: In-doubt marks whose dumped before/after are kept for the row's final entry: far more
#: than the rows a job has under way at once.
MARKS_KEPT = 4096


class Ledger:
    """The ledger file. Synchronous and used from the event loop's thread only.

    Opened for a run (the default), it is locked against any other run until closed and
    created if new; opened `read_only` (status, export), it is neither locked nor changed.
    """

    def __init__(
        self, path: str | Path, *, batch_size: int = 500, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.read_only = read_only
        self._buffer: list[tuple[Any, ...]] = []
        self._events: list[tuple[str, str, float | None]] = []
        self._commit_waiters: asyncio.Future[None] | None = None
        #: The before/after of each in-doubt mark recorded, as written: the row's final
        #: entry carries the same two dicts, written again without a second json.dumps.
        self._marked: dict[int, tuple[Any, Any, str | None, str | None]] = {}
        self._lock: RunLock | None = None
        self._columns = COLUMNS
        if read_only:
            self._db = open_read_only(self.path)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(rows)")}
            for name in ADDED_COLUMNS:
                if name not in present:
                    # Written before the column existed, and not to be changed by a reader.
                    self._columns = self._columns.replace(name, f"NULL AS {name}")
            return
        self._db, self._lock = open_for_run(self.path, set_up)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (it is in the
            # OS's hands); only a power cut could lose the very last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            if self._db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                set_up(self._db)  # a ledger from before the stamp (checked to be ours)
            self._db.executescript(EVENTS_SCHEMA + SESSIONS_SCHEMA)
            migrate(self._db)
        except sqlite3.Error as exc:
            self._db.close()
            self._lock.release()
            raise ConfigError(f"{self.path}: not a usable ledger ({exc})") from None

    # -- job identity -------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: str) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def claim(self, fingerprint: dict[str, str], *, fresh: bool = False) -> bool:
        """Tie this ledger to a job; True when it already held entries for that job.

        A ledger of another job (other input content, target or org) is refused unless
        `fresh`, which clears it.
        """
        stored = self.meta().get("fingerprint")
        wanted = json.dumps(fingerprint, sort_keys=True)
        if stored is not None and stored != wanted and not fresh:
            raise LedgerMismatch(_mismatch(self.path, json.loads(stored), fingerprint))
        if fresh or stored != wanted:
            # One transaction: a stop between clearing and stamping must not leave a
            # ledger without its fingerprint (the next run would refuse it as not ours).
            with self._transaction():
                self._db.execute("DELETE FROM rows")
                self._db.execute("DELETE FROM meta")
                self._db.execute("DELETE FROM events")
                self._db.execute("DELETE FROM sessions")
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("fingerprint", wanted), ("created_at", now_iso())],
                )
            return False
        return self.count() > 0

    # -- the job's runs (see ledger_runs) -----------------------------------------------
    def begin_session(self) -> str:
        """Note that a run of this job starts now (a run left open is closed first, as
        a crash at its last write). Returns the start."""
        started = now_iso()
        with self._transaction():
            ledger_runs.begin(self._db, started, self.meta())
        return started

    def end_session(self, how: str, detail: str | None = None) -> None:
        """Note how the run begun last stopped (finished, Ctrl-C, signal, outage...)."""
        with self._transaction():
            ledger_runs.end(self._db, now_iso(), how, detail)

    # -- writing --------------------------------------------------------------------
    def record(self, entry: Entry) -> None:
        """Buffer one entry; committed with the next batch.

        An entry's `before` and `after` are not changed once recorded: a later entry of
        the row carrying the very same dicts is written with the text of the first.
        """
        if self.read_only:
            raise ConfigError(f"{self.path}: opened read-only, for reading")
        stamp = now_iso()
        before, after = entry.before, entry.after
        marked = self._marked.pop(entry.row, None)
        if marked is not None and marked[0] is before and marked[1] is after:
            before_text, after_text = marked[2], marked[3]
        else:
            before_text, after_text = dump(before), dump(after)
        if entry.status == IN_DOUBT:
            self._marked[entry.row] = (before, after, before_text, after_text)
            if len(self._marked) > MARKS_KEPT:  # rows that stopped before their end
                del self._marked[next(iter(self._marked))]
        self._buffer.append(
            (
                entry.row,
                entry.record_id,
                entry.status,
                entry.http_status,
                entry.attempts,
                entry.error,
                entry.request_id,
                before_text,
                after_text,
                dump(entry.input),
                entry.started_at or stamp,
                stamp,
                entry.error_kind,
                entry.record_name,
            )
        )
        if len(self._buffer) >= self.batch_size:
            self.commit()

    def record_event(self, kind: str, seconds: float | None = None, *,
                     began_ago: float = 0.0) -> None:
        """Note that something held the job back (from `began_ago` seconds ago until now,
        for what is told only at its end, like an outage); committed with the next batch."""
        at = now_iso() if not began_ago else (
            datetime.now(UTC) - timedelta(seconds=began_ago)).isoformat(timespec="milliseconds")
        self._events.append((at, kind, seconds))

    async def record_durably(self, entry: Entry) -> None:
        """Buffer one entry and return once it is committed (shared commit per loop turn)."""
        import asyncio

        self.record(entry)
        if self._commit_waiters is None:
            loop = asyncio.get_running_loop()
            self._commit_waiters = loop.create_future()
            loop.call_soon(self._commit_for_waiters)
        await asyncio.shield(self._commit_waiters)

    def _commit_for_waiters(self) -> None:
        waiters, self._commit_waiters = self._commit_waiters, None
        try:
            self.commit()
        except Exception as exc:
            # Handed to every waiter (none of their writes may be sent); raised from
            # this callback it would only reach the loop's handler, as a traceback.
            if waiters is not None and not waiters.done():
                waiters.set_exception(exc)
                waiters.exception()  # retrieved even if every waiter was cancelled
            return
        if waiters is not None and not waiters.done():
            waiters.set_result(None)

    def commit(self) -> None:
        """Write every buffered entry in one transaction."""
        if not self._buffer and not self._events:
            return
        batch, self._buffer = self._buffer, []
        events, self._events = self._events, []
        try:
            with self._transaction():
                self._db.executemany(UPSERT, batch)
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?)", events)
        except BaseException:
            # Not written (locked, disk full...): keep the entries, in order, for the
            # next commit rather than silently dropping a whole batch of outcomes.
            self._buffer[:0] = batch
            self._events[:0] = events
            raise

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; any SQLite failure becomes a one-line LedgerWriteError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise LedgerWriteError(
                f"{self.path}: cannot write to the ledger ({exc}); stopped, keeping all it "
                "had recorded: run the same command again to resume once it can be written"
            ) from None

    # -- reading --------------------------------------------------------------------
    def get(self, row: int) -> Entry | None:
        query = f"SELECT {self._columns} FROM rows WHERE row = ?"
        found = self._db.execute(query, (row,)).fetchone()
        return None if found is None else entry_of(found)

    def window(self, first: int, last: int) -> dict[int, Entry]:
        """Entries of rows first..last, for a resume that walks the input in order."""
        cursor = self._db.execute(
            f"SELECT {self._columns} FROM rows WHERE row BETWEEN ? AND ?", (first, last)
        )
        return {found[0]: entry_of(found) for found in cursor}

    def statuses(self, first: int, last: int) -> dict[int, str]:
        """Only the statuses of rows first..last (cheap: what a resume mostly needs)."""
        cursor = self._db.execute(
            "SELECT row, status FROM rows WHERE row BETWEEN ? AND ?", (first, last)
        )
        return dict(cursor.fetchall())

    def transient_failures(self, first: int, last: int) -> set[int]:
        """Rows first..last that failed on transient errors (a plain re-run retries them)."""
        cursor = self._db.execute(
            "SELECT row FROM rows WHERE status = 'failed' AND error_kind = 'transient' "
            "AND row BETWEEN ? AND ?", (first, last)
        )
        return {found[0] for found in cursor}

    def count_transient_failures(self, *, last_row: int) -> int:
        return self._db.execute(
            "SELECT COUNT(*) FROM rows WHERE status = 'failed' AND error_kind = 'transient' "
            "AND row <= ?", (last_row,)
        ).fetchone()[0]

    def entries(self, status: str | Iterable[str] | None = None, *,
                newest_first: bool = False) -> Iterator[Entry]:
        """Every entry (with that status, or one of those) in row order, or the last row
        first (streamed, for export and undo)."""
        query = f"SELECT {self._columns} FROM rows"
        args: tuple[Any, ...] = ()
        if status is not None:
            args = (status,) if isinstance(status, str) else tuple(sorted(status))
            query += f" WHERE status IN ({', '.join('?' * len(args))})"
        order = " ORDER BY row DESC" if newest_first else " ORDER BY row"
        for found in self._db.execute(query + order, args):
            yield entry_of(found)

    def counts(self) -> dict[str, int]:
        found = dict(self._db.execute("SELECT status, COUNT(*) FROM rows GROUP BY status"))
        return {status: found.get(status, 0) for status in STATUSES}

    def count(self, statuses: Iterable[str] | None = None, *, last_row: int | None = None) -> int:
        """Entries (with one of `statuses`, up to row `last_row`, when given)."""
        query, args = "SELECT COUNT(*) FROM rows WHERE 1", []
        if statuses is not None:
            wanted = sorted(statuses)
            query += f" AND status IN ({', '.join('?' * len(wanted))})"
            args += wanted
        if last_row is not None:
            query += " AND row <= ?"
            args.append(last_row)
        return self._db.execute(query, args).fetchone()[0]

    def close(self) -> None:
        """Commit what is buffered (raises if that fails), close, release the run lock."""
        try:
            self.commit()
        finally:
            if not self.read_only:
                self._rest()
            self._db.close()
            if self._lock is not None:
                self._lock.release()

    def _rest(self) -> None:
        # At rest the ledger is one plain file (rollback journal, no -wal or -shm), which
        # `status` can then read with nothing created beside it, from a read-only
        # directory too. Skipped, quietly, while a reader has it open or if it fails.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA busy_timeout = 0")
            self._db.execute("PRAGMA journal_mode = DELETE")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_existing(path: str | Path) -> Ledger:
    """Open, read-only and without locking, a ledger that must exist (status, export)."""
    return Ledger(path, read_only=True)


def _mismatch(path: Path, stored: dict[str, str], wanted: dict[str, str]) -> str:
    keys = sorted(set(stored) | set(wanted))
    differing = [key for key in keys if stored.get(key) != wanted.get(key)]
    return (
        f"{path}: this ledger belongs to another job ({', '.join(differing)} differ"
        f"{'s' if len(differing) == 1 else ''}); "
        "use --fresh to start it over, or --ledger to choose another file"
    )
