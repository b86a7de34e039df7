"""Resume: nothing lost, nothing applied twice, in-doubt rows settled by reading back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bulk.engine.errors import LedgerMismatch
from bulk.engine.ledger import Entry, Ledger
from bulk.sandbox import Faults, Sandbox
from tests.support.helpers import (
    config,
    rename_csv,
    run_ids,
    run_job,
    start_apply,
    wait_for_rows,
    write_csv,
)

ROOT = Path(__file__).resolve().parents[2]


async def test_a_finished_job_resumes_with_zero_requests(sandbox, tmp_path: Path) -> None:
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 10), "N")
    await run_job(sandbox, path)
    sandbox.reset_stats()

    summary, entries = await run_job(sandbox, path)

    assert sandbox.stats.requests == 0
    assert summary.skipped == 10 and summary.requests == 0
    assert [e.status for e in entries] == ["ok"] * 10
    assert summary.exit_code == 0


async def test_failed_rows_are_retried_only_when_asked(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 1)[0]
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[rid, "x"]])
    sandbox.mark_forbidden(rid)
    first, _ = await run_job(sandbox, path)
    assert first.exit_code == 1
    sandbox.reset_stats()

    again, _ = await run_job(sandbox, path)
    assert sandbox.stats.requests == 0 and again.skipped == 1

    sandbox.mark_forbidden(rid, forbidden=False)
    retried, _ = await run_job(sandbox, path, retry_failed=True)
    assert sandbox.stats.requests > 0
    assert retried.skipped == 0


async def test_an_in_doubt_row_whose_write_landed_is_settled_without_a_second_write(
    sandbox, tmp_path: Path
) -> None:
    ids = run_ids(sandbox, 2)
    old = [sandbox.store.runs[rid]["name"] for rid in ids]
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[ids[0], "Landed"], [ids[1], "Lost"]])
    ledger_path = tmp_path / "l.db"
    # An earlier run: both rows marked in doubt; only the first write reached the server.
    await run_job(sandbox, path, ledger=ledger_path)  # creates the ledger with the fingerprint
    sandbox.store.runs[ids[0]]["name"], sandbox.store.runs[ids[1]]["name"] = "Landed", old[1]
    with Ledger(ledger_path) as ledger:
        for row, rid, name in ((1, ids[0], "Landed"), (2, ids[1], "Lost")):
            ledger.record(Entry(row=row, record_id=rid, status="in_doubt", attempts=1,
                                before={"name": old[row - 1]}, after={"name": name}))
    sandbox.reset_stats()

    summary, entries = await run_job(sandbox, path, ledger=ledger_path)

    assert [e.status for e in entries] == ["ok", "ok"]
    assert summary.settled == 2
    assert sandbox.stats.writes_per_record.get(ids[0], 0) == 0  # read back, not rewritten
    assert sandbox.stats.writes_per_record[ids[1]] == 1
    assert entries[0].before == {"name": old[0]} and entries[1].before == {"name": old[1]}
    assert sandbox.store.runs[ids[1]]["name"] == "Lost"


async def test_a_ledger_of_another_input_is_refused_unless_fresh(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 1)[0]
    ledger_path = tmp_path / "l.db"
    # `summary` is a field of runs and of templates alike, so only the fingerprint differs.
    one = write_csv(tmp_path / "one.csv", ["id", "summary"], [[rid, "A"]])
    two = write_csv(tmp_path / "two.csv", ["id", "summary"], [[rid, "B"]])
    await run_job(sandbox, one, ledger=ledger_path)

    with pytest.raises(LedgerMismatch, match="input_sha256"):
        await run_job(sandbox, two, ledger=ledger_path)
    with pytest.raises(LedgerMismatch, match="target"):
        await run_job(sandbox, one, ledger=ledger_path, target="templates")

    summary, entries = await run_job(sandbox, two, ledger=ledger_path, fresh=True)
    assert summary.exit_code == 0 and entries[0].after == {"summary": "B"}


async def test_kill_9_then_resume_settles_in_doubt_rows_and_writes_nothing_twice(
    tmp_path: Path,
) -> None:
    # Slow writes so that the kill lands while many PUTs are in flight.
    async with Sandbox(config(runs=60, latency_ms=60), port=0) as sandbox:
        ids = run_ids(sandbox)
        old = {rid: sandbox.store.runs[rid]["name"] for rid in ids}
        members = {rid: list(sandbox.store.runs[rid]["users"]) for rid in ids}
        path = rename_csv(tmp_path / "r.csv", ids, "Killed")
        ledger_path = tmp_path / "kill.db"
        process = await start_apply(sandbox, path, ledger_path)
        try:
            await wait_for_rows(ledger_path, "in_doubt", 4)
        finally:
            process.kill()  # SIGKILL: no cleanup, no last commit
            await process.wait()
        assert process.returncode == -9
        with sqlite3.connect(ledger_path) as db:
            in_doubt = db.execute("SELECT COUNT(*) FROM rows WHERE status='in_doubt'").fetchone()[0]
            bare = db.execute("SELECT COUNT(*) FROM rows WHERE status='in_doubt' "
                              "AND before IS NULL").fetchone()[0]
        assert in_doubt >= 4
        assert bare == 0, "an in-doubt mark must hold the before-values"

        summary, entries = await run_job(sandbox, path, ledger=ledger_path)

        assert [e.status for e in entries] == ["ok"] * 60, [e.error for e in entries]
        assert summary.settled >= in_doubt
        assert max(sandbox.stats.writes_per_record.values()) == 1
        for i, rid in enumerate(ids):
            record = sandbox.store.runs[rid]
            assert record["name"] == f"Killed {i}"
            assert record["users"] == members[rid]
        for entry in entries:
            assert entry.before == {"name": old[entry.record_id]}


async def test_a_write_never_acknowledged_stays_in_doubt_until_a_resume_reads_it_back(
    sandbox, tmp_path: Path
) -> None:
    ids = run_ids(sandbox, 3)
    old = {rid: sandbox.store.runs[rid]["name"] for rid in ids}
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[rid, "Unacknowledged"] for rid in ids])
    # Every write lands and is answered 503, and there is no second attempt.
    sandbox.faults = Faults(applied_503_rate=1.0)

    first, entries = await run_job(sandbox, path, max_attempts=1)

    assert [e.status for e in entries] == ["in_doubt"] * 3
    assert all("503" in e.error for e in entries)
    assert first.exit_code == 1
    sandbox.faults = Faults()
    sandbox.reset_stats()

    second, entries = await run_job(sandbox, path)

    assert [e.status for e in entries] == ["ok"] * 3
    assert second.settled == 3 and second.exit_code == 0
    assert sum(sandbox.stats.writes_per_record.values()) == 0  # read back, nothing rewritten
    assert [e.before for e in entries] == [{"name": old[rid]} for rid in ids]
