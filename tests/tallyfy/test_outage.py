"""The API goes down in the middle of a job: every worker waits (a probe at a time),
no row spends its attempts on the outage, and the job goes on when the API is back, or
stops after the outage limit with the rows not done left pending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bulk.engine.clock import SkipClock
from bulk.sandbox import Faults, Sandbox
from tests.support.helpers import rename_csv, run_ids, run_job

DOWN = Faults(error_rate=1.0)  # nothing gets through: every answer a proxy 5xx page


class OutageClock(SkipClock):
    """Skipped time that also ends the sandbox's outage once `until` is passed."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.until: float | None = None

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        if self.until is not None and self.now() >= self.until:
            self.sandbox.faults = Faults()
            self.until = None


class DownAfter:
    """An observer that takes the API down once `rows` rows are done."""

    def __init__(self, sandbox: Sandbox, clock: OutageClock, rows: int,
                 seconds: float | None) -> None:
        self.sandbox, self.clock, self.rows, self.seconds = sandbox, clock, rows, seconds
        self.done = 0
        self.failures_before = 0

    def start(self, total: int) -> None:
        pass

    def advance(self, entry: Any) -> None:
        self.done += 1
        if self.done == self.rows:
            self.failures_before = sum(self.sandbox.stats.faults.values())
            self.sandbox.faults = DOWN
            if self.seconds is not None:
                self.clock.until = self.clock.now() + self.seconds

    def skip(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


async def run_with_outage(sandbox, path: Path, *, seconds: float | None, **options: Any):
    clock = OutageClock(sandbox)
    observer = DownAfter(sandbox, clock, rows=10, seconds=seconds)
    settings: dict[str, Any] = {"max_attempts": 3, **options}
    summary, entries = await run_job(sandbox, path, clock=clock, observer=observer, **settings)
    return summary, entries, observer


async def test_a_30_s_outage_mid_job_costs_no_row_and_few_requests(sandbox, tmp_path):
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 40), "Outage")

    summary, entries, observer = await run_with_outage(sandbox, path, seconds=30)

    assert [e.status for e in entries] == ["ok"] * 40, [e.error for e in entries]
    assert summary.exit_code == 0
    assert max(sandbox.stats.writes_per_record.values()) == 1
    # Requests that met the outage: the ones that opened the breaker, those in flight
    # then, and one probe at a time with growing waits; not every row's attempts.
    failed_during = sum(sandbox.stats.faults.values()) - observer.failures_before
    assert failed_during <= 25, failed_during
    assert summary.outage_seconds >= 25


async def test_an_outage_past_the_limit_stops_with_rows_pending_and_resume_finishes(
    sandbox, tmp_path
):
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 40), "Outage")

    summary, entries, _ = await run_with_outage(sandbox, path, seconds=None, outage_limit=60)

    assert summary.exit_code == 3
    assert summary.aborted == "the API stayed unreachable for 1 min; run again to resume"
    statuses = {e.status for e in entries}
    assert "failed" not in statuses, [e.error for e in entries if e.status == "failed"]
    assert statuses <= {"ok", "pending", "in_doubt"}
    assert summary.ledger_counts["ok"] >= 10

    sandbox.faults = Faults()
    again, entries = await run_job(sandbox, path)
    assert again.exit_code == 0
    assert [e.status for e in entries] == ["ok"] * 40
    assert max(sandbox.stats.writes_per_record.values()) == 1
