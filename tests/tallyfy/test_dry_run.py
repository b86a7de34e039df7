"""--dry-run: every record read and planned, nothing written, the plan in its own ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk.engine.errors import ConfigError
from bulk.engine.ledger import Ledger
from tests.support.helpers import rename_csv, run_ids, run_job


async def test_a_dry_run_plans_every_row_and_writes_nothing(sandbox, tmp_path: Path) -> None:
    ids = run_ids(sandbox, 6)
    names = {rid: sandbox.store.runs[rid]["name"] for rid in ids}
    path = rename_csv(tmp_path / "r.csv", ids, "Planned")

    summary, entries = await run_job(sandbox, path, dry_run=True)

    assert sum(sandbox.stats.writes_per_record.values()) == 0
    assert {rid: sandbox.store.runs[rid]["name"] for rid in ids} == names
    assert summary.line().startswith("dry run done, nothing written")
    assert [e.status for e in entries] == ["ok"] * 6
    assert [e.before for e in entries] == [{"name": names[rid]} for rid in ids]
    assert [e.after for e in entries] == [{"name": f"Planned {n}"} for n in range(6)]
    assert (tmp_path / "r.csv.dry-run.ledger.db").exists()
    assert not (tmp_path / "r.csv.ledger.db").exists()

    # The real run afterwards is untouched by the rehearsal: it writes every row.
    real, written = await run_job(sandbox, path)
    assert real.skipped == 0 and [e.status for e in written] == ["ok"] * 6
    assert sum(sandbox.stats.writes_per_record.values()) == 6


async def test_a_dry_run_always_starts_its_ledger_over(sandbox, tmp_path: Path) -> None:
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 3), "Again")
    await run_job(sandbox, path, dry_run=True)
    sandbox.reset_stats()

    summary, _ = await run_job(sandbox, path, dry_run=True)

    assert summary.skipped == 0
    assert sandbox.stats.requests == 1 + 3  # preflight, read again, one GET a row, no PUT


async def test_a_dry_run_never_touches_a_real_runs_ledger(sandbox, tmp_path: Path) -> None:
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 2), "Real")
    real_ledger = tmp_path / "real.db"
    await run_job(sandbox, path, ledger=real_ledger)

    with pytest.raises(ConfigError, match="ledger of a real run"):
        await run_job(sandbox, path, ledger=real_ledger, dry_run=True, fresh=True)

    with Ledger(real_ledger) as book:
        assert book.counts()["ok"] == 2
