"""--fresh while another process reads the ledger (`bulk status` in a second terminal):
the ledger is still in WAL mode when kept aside, and its -wal and -shm files go with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bulk.engine.ledger import open_existing
from bulk.sandbox import Sandbox
from bulk.tallyfy.apply_job import PreparedJob
from bulk.tallyfy.undo import write_undo
from tests.support.helpers import rename_csv, run_ids, run_job, write_jsonl


def _statuses(path: Path) -> list[str]:
    with open_existing(path) as ledger:
        return [entry.status for entry in ledger.entries()]


async def test_fresh_while_the_ledger_is_read_keeps_it_whole_and_undo_of_it_works(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_ids = run_ids(sandbox, 4)[:2]
    names = {rid: sandbox.store.runs[rid]["name"] for rid in first_ids}
    ledger = tmp_path / "job.ledger.db"
    path = rename_csv(tmp_path / "r.csv", first_ids, "First")
    await run_job(sandbox, path, ledger=ledger, max_attempts=1)  # a history: two runs
    summary, _ = await run_job(sandbox, path, ledger=ledger)
    assert summary.exit_code == 0 and _statuses(ledger) == ["ok", "ok"]

    reader: list[sqlite3.Connection] = []
    real_start = PreparedJob.start_fresh

    def start_fresh(self: PreparedJob) -> Path:
        # `bulk status` in another terminal: a reader holds the ledger open (WAL mode)
        # just as --fresh keeps it aside, so it cannot be put at rest first.
        reader.append(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True))
        reader[0].execute("SELECT COUNT(*) FROM rows").fetchone()
        return real_start(self)

    monkeypatch.setattr(PreparedJob, "start_fresh", start_fresh)
    other = write_jsonl(tmp_path / "o.jsonl", [{"id": rid, "name": "Second"}
                                               for rid in run_ids(sandbox, 4)[2:]])
    try:
        summary, entries = await run_job(sandbox, other, ledger=ledger, fresh=True)
    finally:
        for db in reader:
            db.close()
    assert summary.exit_code == 0 and [e.status for e in entries] == ["ok", "ok"]
    kept = sorted(tmp_path.glob("job.ledger.*.db"))  # noqa: ASYNC240
    assert len(kept) == 1
    assert _statuses(kept[0]) == ["ok", "ok"]
    assert _statuses(ledger) == ["ok", "ok"]
    undo = tmp_path / "undo.jsonl"
    assert write_undo(kept[0], undo).rows == 2
    result, undone = await run_job(sandbox, undo, ledger=tmp_path / "u.ledger.db")
    assert result.exit_code == 0, [e.error for e in undone]
    assert {rid: sandbox.store.runs[rid]["name"] for rid in first_ids} == names
    with sqlite3.connect(f"file:{kept[0]}?mode=ro", uri=True) as old:  # its history too
        assert old.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2
