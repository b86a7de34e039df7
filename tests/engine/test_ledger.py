"""The SQLite ledger: identity (claim), buffered and durable writes, reads, crash safety."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from bulk.engine.errors import ConfigError, LedgerMismatch, LedgerWriteError
from bulk.engine.ledger import (
    CONFLICT,
    FAILED,
    IN_DOUBT,
    INVALID,
    OK,
    PENDING,
    STATUSES,
    UNCHANGED,
    Entry,
    Ledger,
    open_existing,
)

FINGERPRINT = {"input": "sha256:aaaa", "target": "runs", "org": "org1"}


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger(tmp_path / "job.ledger.db") as opened:
        yield opened


def rows_seen_by_another_connection(path: Path) -> dict[int, str]:
    with closing(sqlite3.connect(path)) as other:
        return dict(other.execute("SELECT row, status FROM rows"))


def trace_commits(ledger: Ledger) -> list[str]:
    statements: list[str] = []
    ledger._db.set_trace_callback(statements.append)
    return statements


# -- identity -----------------------------------------------------------------------


def test_claim_on_a_new_file_is_a_fresh_start(ledger):
    assert ledger.claim(FINGERPRINT) is False
    meta = ledger.meta()
    assert set(meta) == {"fingerprint", "created_at"}


def test_claim_again_with_entries_is_a_resume(ledger):
    assert ledger.claim(FINGERPRINT) is False
    assert ledger.claim(FINGERPRINT) is False  # same job, but nothing recorded yet
    ledger.record(Entry(row=1, status=OK))
    ledger.commit()
    assert ledger.claim(dict(FINGERPRINT)) is True
    assert ledger.count() == 1


def test_claim_survives_reopening(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as first:
        first.claim(FINGERPRINT)
        first.record(Entry(row=1, status=OK))
    with Ledger(path) as second:
        assert second.claim(FINGERPRINT) is True
        assert second.get(1).status == OK


@pytest.mark.parametrize(("key", "value"), [("input", "sha256:bbbb"), ("org", "org2")])
def test_claim_by_another_job_is_refused_naming_what_differs(ledger, key, value):
    ledger.claim(FINGERPRINT)
    ledger.record(Entry(row=1, status=OK))
    ledger.commit()
    other = {**FINGERPRINT, key: value}
    with pytest.raises(LedgerMismatch) as raised:
        ledger.claim(other)
    message = str(raised.value)
    assert f"({key} differs)" in message
    assert str(ledger.path) in message
    assert "--fresh" in message
    assert isinstance(raised.value, ConfigError)
    assert ledger.count() == 1  # nothing was cleared


def test_mismatch_lists_every_difference(ledger):
    ledger.claim(FINGERPRINT)
    with pytest.raises(LedgerMismatch, match=r"\(org, target differ\)"):
        ledger.claim({**FINGERPRINT, "target": "templates", "org": "org9"})


def test_a_stop_part_way_through_a_fresh_claim_leaves_the_ledger_as_it_was(
    ledger, monkeypatch
):
    # A Ctrl-C between clearing and stamping must not leave a ledger without its
    # fingerprint, which the next run would refuse as not one of ours.
    import bulk.engine.ledger as ledger_module

    ledger.claim(FINGERPRINT)
    ledger.record(Entry(row=1, status=OK))
    ledger.commit()

    def interrupted() -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(ledger_module, "now_iso", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ledger.claim({**FINGERPRINT, "input": "sha256:cccc"}, fresh=True)
    monkeypatch.undo()

    assert ledger.claim(FINGERPRINT) is True  # the old job, whole
    assert ledger.get(1).status == OK


def test_fresh_clears_the_ledger(ledger):
    ledger.claim(FINGERPRINT)
    ledger.record(Entry(row=1, status=OK))
    ledger.record(Entry(row=2, status=FAILED))
    ledger.commit()
    other = {**FINGERPRINT, "input": "sha256:cccc"}
    assert ledger.claim(other, fresh=True) is False
    assert ledger.count() == 0
    assert ledger.claim(other) is False
    # The same job with fresh=True starts over too.
    ledger.record(Entry(row=1, status=OK))
    ledger.commit()
    assert ledger.claim(other, fresh=True) is False
    assert ledger.count() == 0


# -- writing ------------------------------------------------------------------------


def test_record_is_buffered_until_commit(ledger):
    ledger.record(Entry(row=1, status=OK))
    ledger.record(Entry(row=2, status=FAILED))
    assert rows_seen_by_another_connection(ledger.path) == {}
    ledger.commit()
    assert rows_seen_by_another_connection(ledger.path) == {1: OK, 2: FAILED}


def test_record_commits_at_the_batch_size(tmp_path):
    with Ledger(tmp_path / "l.db", batch_size=3) as ledger:
        commits = trace_commits(ledger)
        ledger.record(Entry(row=1, status=OK))
        ledger.record(Entry(row=2, status=OK))
        assert rows_seen_by_another_connection(ledger.path) == {}
        ledger.record(Entry(row=3, status=OK))
        assert rows_seen_by_another_connection(ledger.path) == {1: OK, 2: OK, 3: OK}
        assert commits.count("COMMIT") == 1
        ledger.record(Entry(row=4, status=OK))
        assert len(rows_seen_by_another_connection(ledger.path)) == 3


def test_close_commits_what_is_buffered(tmp_path):
    path = tmp_path / "l.db"
    ledger = Ledger(path)
    ledger.record(Entry(row=1, status=UNCHANGED))
    ledger.close()
    assert rows_seen_by_another_connection(path) == {1: UNCHANGED}


def test_commit_with_nothing_buffered_writes_nothing(ledger):
    commits = trace_commits(ledger)
    ledger.commit()
    assert commits == []


async def test_record_durably_is_committed_when_it_returns(ledger):
    ledger.record(Entry(row=1, status=OK))  # buffered before: goes along
    await ledger.record_durably(Entry(row=2, status=IN_DOUBT, before={"name": "old"}))
    assert rows_seen_by_another_connection(ledger.path) == {1: OK, 2: IN_DOUBT}


async def test_concurrent_durable_records_share_one_commit(ledger):
    commits = trace_commits(ledger)
    await asyncio.gather(
        *(ledger.record_durably(Entry(row=n, status=IN_DOUBT)) for n in range(1, 7))
    )
    assert commits.count("COMMIT") == 1
    assert rows_seen_by_another_connection(ledger.path) == {n: IN_DOUBT for n in range(1, 7)}


async def test_durable_records_in_separate_turns_commit_separately(ledger):
    commits = trace_commits(ledger)
    await ledger.record_durably(Entry(row=1, status=IN_DOUBT))
    await ledger.record_durably(Entry(row=2, status=IN_DOUBT))
    assert commits.count("COMMIT") == 2


async def test_a_cancelled_durable_record_is_still_committed(ledger):
    task = asyncio.create_task(ledger.record_durably(Entry(row=1, status=IN_DOUBT)))
    await asyncio.sleep(0)  # it is now waiting for the shared commit
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert rows_seen_by_another_connection(ledger.path) == {1: IN_DOUBT}


def test_a_failed_commit_keeps_the_entries_buffered(ledger):
    ledger.record(Entry(row=1, status=OK))
    ledger.record(Entry(row=2, status=OK))
    with closing(sqlite3.connect(ledger.path, timeout=0, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        ledger._db.execute("PRAGMA busy_timeout = 0")
        with pytest.raises(LedgerWriteError, match=r"cannot write to the ledger.*locked"):
            ledger.commit()
        other.execute("ROLLBACK")
    ledger.commit()  # the entries were not lost with the failed attempt
    assert rows_seen_by_another_connection(ledger.path) == {1: OK, 2: OK}


def test_upsert_replaces_the_entry_but_keeps_started_at(ledger):
    ledger.record(Entry(row=1, status=IN_DOUBT, started_at="2024-01-01T00:00:00.000+00:00"))
    ledger.commit()
    ledger.record(Entry(row=1, status=OK, http_status=200, attempts=2))
    ledger.commit()
    entry = ledger.get(1)
    assert (entry.status, entry.http_status, entry.attempts) == (OK, 200, 2)
    assert entry.started_at == "2024-01-01T00:00:00.000+00:00"
    assert entry.updated_at > entry.started_at
    assert ledger.count() == 1


# -- reading ------------------------------------------------------------------------


def test_fields_round_trip(ledger):
    before = {"name": "Old ünïcode", "users": [1, 2], "nested": {"a": None}}
    after = {"name": "New", "users": [1, 2, 3], "nested": {"a": True}}
    row = {"id": "a" * 32, "name": "New", "add_users": "3"}
    ledger.record(
        Entry(
            row=7,
            status=FAILED,
            record_id="a" * 32,
            http_status=422,
            attempts=3,
            error="HTTP 422: name: too long",
            request_id="req-7",
            before=before,
            after=after,
            input=row,
        )
    )
    ledger.commit()
    entry = ledger.get(7)
    assert entry.before == before
    assert entry.after == after
    assert entry.input == row
    assert (entry.record_id, entry.http_status, entry.attempts) == ("a" * 32, 422, 3)
    assert (entry.error, entry.request_id) == ("HTTP 422: name: too long", "req-7")
    assert entry.started_at is not None and entry.started_at.endswith("+00:00")
    assert ledger.get(8) is None


def test_none_values_stay_none(ledger):
    ledger.record(Entry(row=1, status=PENDING))
    ledger.commit()
    entry = ledger.get(1)
    assert (entry.before, entry.after, entry.input, entry.error) == (None, None, None, None)


def fill(ledger: Ledger) -> None:
    statuses = {5: OK, 1: FAILED, 3: OK, 2: INVALID, 4: IN_DOUBT, 9: PENDING, 7: UNCHANGED}
    for row, status in statuses.items():
        ledger.record(Entry(row=row, status=status))
    ledger.commit()


def test_counts_cover_every_status(ledger):
    assert ledger.counts() == dict.fromkeys(STATUSES, 0)
    fill(ledger)
    assert ledger.counts() == {PENDING: 1, IN_DOUBT: 1, OK: 2, UNCHANGED: 1, INVALID: 1, FAILED: 1,
                               CONFLICT: 0}
    assert list(ledger.counts()) == list(STATUSES)
    assert ledger.count() == 7


def test_entries_are_in_row_order(ledger):
    fill(ledger)
    assert [e.row for e in ledger.entries()] == [1, 2, 3, 4, 5, 7, 9]
    assert [e.row for e in ledger.entries(OK)] == [3, 5]
    assert [e.row for e in ledger.entries(FAILED)] == [1]
    assert list(ledger.entries("no-such-status")) == []


def test_window_and_statuses(ledger):
    fill(ledger)
    assert ledger.statuses(3, 7) == {3: OK, 4: IN_DOUBT, 5: OK, 7: UNCHANGED}
    assert ledger.statuses(10, 20) == {}
    window = ledger.window(1, 4)
    assert sorted(window) == [1, 2, 3, 4]
    assert window[4].status == IN_DOUBT
    assert isinstance(window[1], Entry)


def test_the_file_is_in_wal_mode(ledger):
    with closing(sqlite3.connect(ledger.path)) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_existing(tmp_path):
    with pytest.raises(ConfigError, match="no such ledger"):
        open_existing(tmp_path / "missing.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all, not even close" * 100)
    with pytest.raises(ConfigError, match=r"garbage\.db"):
        open_existing(garbage)
    path = tmp_path / "real.db"
    with Ledger(path) as ledger:
        ledger.claim(FINGERPRINT)
    with open_existing(path) as reopened:
        assert "fingerprint" in reopened.meta()


# -- crash safety -------------------------------------------------------------------

CRASH = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from bulk.engine.ledger import Entry, Ledger, IN_DOUBT, OK

    ledger = Ledger(sys.argv[1])
    ledger.claim({"input": "x", "target": "runs", "org": "o"})

    async def main():
        ledger.record(Entry(row=1, status=OK, after={"name": "done"}))
        await asyncio.gather(
            ledger.record_durably(Entry(row=2, status=IN_DOUBT, before={"name": "a"})),
            ledger.record_durably(Entry(row=3, status=IN_DOUBT, before={"name": "b"})),
        )
        ledger.record(Entry(row=4, status=OK))  # buffered only: lost with the process
        print("recorded", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_durable_entries_survive_a_hard_kill(tmp_path):
    path = tmp_path / "crash.db"
    result = subprocess.run(
        [sys.executable, "-c", CRASH, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.stdout == "recorded\n", result.stderr
    assert result.returncode == -9
    assert Path(f"{path}-wal").exists()  # the process never checkpointed
    with Ledger(path) as ledger:
        assert ledger.claim({"input": "x", "target": "runs", "org": "o"}) is True
        assert {e.row: e.status for e in ledger.entries()} == {1: OK, 2: IN_DOUBT, 3: IN_DOUBT}
        assert ledger.get(2).before == {"name": "a"}
        assert ledger.get(1).after == {"name": "done"}
    with closing(sqlite3.connect(path)) as other:
        assert other.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_final_entry_keeps_its_marks_values_and_new_ones_are_written(ledger):
    # The final entry of a marked row reuses the mark's text for the very same dicts;
    # other dicts (a new plan after a re-read) are written as they are.
    before, after = {"name": "Old", "users": [1]}, {"name": "New"}
    ledger.record(Entry(row=1, status=IN_DOUBT, before=before, after=after))
    ledger.record(Entry(row=2, status=IN_DOUBT, before={"name": "A"}, after={"name": "B"}))
    ledger.commit()
    ledger.record(Entry(row=1, status=OK, before=before, after=after))
    ledger.record(Entry(row=2, status=OK, before={"name": "C"}, after={"name": "D"}))
    ledger.record(Entry(row=3, status=OK, before={"name": "E"}, after=None))
    ledger.commit()
    found = {n: ledger.get(n) for n in (1, 2, 3)}
    assert (found[1].status, found[1].before, found[1].after) == (OK, before, after)
    assert (found[2].before, found[2].after) == ({"name": "C"}, {"name": "D"})
    assert (found[3].before, found[3].after) == ({"name": "E"}, None)
