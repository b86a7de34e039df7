"""Rows whose attempts ran out on transient errors get a second chance: in a pass at the
end of the job, and on a plain re-run (no --retry-failed needed)."""

from __future__ import annotations

from bulk.engine.clock import SkipClock
from bulk.sandbox import Faults
from tests.support.helpers import run_ids, run_job, write_csv


def down_after_preflight(sandbox):
    """on_job hook: the API answers the preflight, then only 5xx."""

    def hook(job):
        check = job._before_first_row

        async def then_down():
            await check()
            sandbox.faults = Faults(error_rate=1.0)

        job._before_first_row = then_down

    return hook


class HealingClock(SkipClock):
    """Skipped time; the sandbox's 5xx stop once a long wait (the end pass's) is skipped."""

    def __init__(self, sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        if seconds >= 10:
            self.sandbox.faults = Faults()


async def test_a_row_whose_attempts_ran_out_on_5xx_finishes_in_the_end_pass(sandbox, tmp_path):
    ids = run_ids(sandbox, 3)
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[rid, "Again"] for rid in ids])
    clock = HealingClock(sandbox)

    summary, entries = await run_job(sandbox, path, clock=clock, max_attempts=2,
                                     concurrency=1, on_job=down_after_preflight(sandbox))

    assert [e.status for e in entries] == ["ok"] * 3, [e.error for e in entries]
    assert summary.second_chance == 3 and summary.exit_code == 0
    assert "3 tried again at the end" in summary.line()
    assert [s for _, s in clock.sleeps if s >= 10] == [30.0]  # one pause, then the pass
    assert [sandbox.store.runs[rid]["name"] for rid in ids] == ["Again"] * 3


async def test_a_plain_rerun_retries_transient_failures_but_not_definitive_ones(
    sandbox, tmp_path
):
    ids = run_ids(sandbox, 2)
    stale = "f" * 32
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[stale, "Gone"]] + [[rid, "Later"] for rid in ids])

    first, entries = await run_job(sandbox, path, max_attempts=1, concurrency=1,
                                   on_job=down_after_preflight(sandbox))
    assert first.exit_code == 1
    assert [(e.status, e.error_kind) for e in entries] == [("failed", "transient")] * 3
    assert first.second_chance == 3  # the end pass met the same down API

    sandbox.faults = Faults()
    second, entries = await run_job(sandbox, path)  # no --retry-failed

    assert [e.status for e in entries] == ["failed", "ok", "ok"]
    assert (entries[0].http_status, entries[0].error_kind) == (404, "definitive")
    assert second.exit_code == 1

    sandbox.reset_stats()
    third, _ = await run_job(sandbox, path)
    assert sandbox.stats.requests == 0, "a definitive failure waits for --retry-failed"
    assert third.skipped == 3


async def test_a_row_failing_again_in_the_end_pass_counts_once_for_max_failures(
    sandbox, tmp_path
):
    ids = run_ids(sandbox, 2)
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[rid, "Twice"] for rid in ids])

    summary, entries = await run_job(sandbox, path, max_attempts=1, concurrency=1,
                                     max_failures=3, on_job=down_after_preflight(sandbox))

    assert summary.aborted is None  # 2 rows failed, each twice: 2 failures, not 4
    assert summary.second_chance == 2
    assert [e.status for e in entries] == ["failed", "failed"]
