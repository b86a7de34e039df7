"""--fresh never loses a ledger (issue 13, point 6)."""

from __future__ import annotations

from pathlib import Path

from bulk.engine.ledger import open_existing
from bulk.sandbox import Sandbox
from tests.support.helpers import rename_csv, run_ids, run_job


def _ledgers(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


def _statuses(path: Path) -> list[str]:
    with open_existing(path) as ledger:
        return [entry.status for entry in ledger.entries()]


async def test_fresh_with_a_wrong_token_keeps_the_ledger_and_fresh_later_keeps_it_aside(
        sandbox: Sandbox, tmp_path: Path) -> None:
    ledger = tmp_path / "job.ledger.db"
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 2), "First")
    summary, _ = await run_job(sandbox, path, ledger=ledger)
    assert summary.exit_code == 0 and _statuses(ledger) == ["ok", "ok"]

    refused, _ = await run_job(sandbox, path, ledger=ledger, fresh=True, token="wrong")
    assert refused.exit_code == 3
    assert "previous ledger is kept as it was" in refused.line()
    assert _statuses(ledger) == ["ok", "ok"]  # the before-values undo needs, still there
    assert [p.name for p in _ledgers(tmp_path, "*.db")] == ["job.ledger.db"]

    again = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 3), "Second")
    summary, entries = await run_job(sandbox, again, ledger=ledger, fresh=True)
    assert summary.exit_code == 0 and len(entries) == 3
    kept = _ledgers(tmp_path, "job.ledger.*.db")
    assert len(kept) == 1
    assert _statuses(kept[0]) == ["ok", "ok"]
    assert str(kept[0]) in summary.line()
    with open_existing(kept[0]) as old:
        assert old.meta()["finished_at"][:4] in kept[0].name  # its finish time, by name
