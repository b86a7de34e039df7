"""The quota belongs to the job: a 429 never spends a row's attempts."""

from __future__ import annotations

from pathlib import Path

from bulk.engine.clock import SkipClock
from bulk.sandbox import Sandbox
from tests.apply.helpers import config, rename_csv, run_ids, run_job


async def test_rows_refused_for_the_quota_do_not_spend_their_attempts(tmp_path: Path) -> None:
    # One virtual clock for both sides, a quota far below the pace asked, and a single
    # attempt per row: every 429 would otherwise end its row as failed.
    clock = SkipClock()
    async with Sandbox(config(rate_limit=2, burst=1, clock=clock.now), port=0) as sandbox:
        path = rename_csv(tmp_path / "rename.csv", run_ids(sandbox, 20), "Quota")

        summary, entries = await run_job(sandbox, path, clock=clock, concurrency=8,
                                         max_attempts=1)

        assert [e.status for e in entries] == ["ok"] * 20, [e.error for e in entries]
        assert sandbox.stats.rate_limited > 0
        assert summary.exit_code == 0
