"""A bad day: every fault kind ends with every row ok, and no record written twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk.engine.clock import SkipClock
from bulk.sandbox import Faults, Sandbox
from tests.support.helpers import config, rename_csv, run_ids, run_job


def rename_all(sandbox, tmp_path: Path, n: int = 30) -> Path:
    return rename_csv(tmp_path / "rename.csv", run_ids(sandbox, n), "Bad day")


@pytest.mark.parametrize(
    "faults",
    [
        Faults(error_rate=0.3),
        Faults(drop_rate=0.3),
        Faults(applied_503_rate=0.5),
        Faults(error_rate=0.1, drop_rate=0.1, applied_503_rate=0.2),
    ],
    ids=["proxy-5xx", "dropped", "applied-then-503", "mixed"],
)
async def test_every_row_ends_ok_and_nothing_is_written_twice(sandbox, tmp_path, faults) -> None:
    path = rename_all(sandbox, tmp_path)
    sandbox.faults = faults

    summary, entries = await run_job(sandbox, path, max_attempts=12)

    assert [e.status for e in entries] == ["ok"] * 30, [e.error for e in entries]
    assert summary.exit_code == 0
    assert max(sandbox.stats.writes_per_record.values()) == 1
    assert sum(e.attempts for e in entries) > 30, "the faults must have caused retries"
    for i, rid in enumerate(run_ids(sandbox, 30)):
        assert sandbox.store.runs[rid]["name"] == f"Bad day {i}"


async def test_a_write_slower_than_the_timeout_is_settled_by_reading_back(sandbox, tmp_path):
    path = rename_all(sandbox, tmp_path, 10)
    # The sandbox applies the PUT, then answers after 400 ms; the client gives up at 150 ms.
    sandbox.faults = Faults(slow_rate=0.4, slow_ms=400)

    _summary, entries = await run_job(sandbox, path, timeout=0.15, max_attempts=15)

    assert [e.status for e in entries] == ["ok"] * 10, [e.error for e in entries]
    assert max(sandbox.stats.writes_per_record.values()) == 1


async def test_a_429_holds_back_every_worker(tmp_path: Path) -> None:
    # One virtual clock for both sides: when the client waits out a Retry-After, the
    # sandbox's quota sees that time pass too, and nobody sleeps for real.
    clock = SkipClock()
    async with Sandbox(config(rate_limit=5, burst=5, clock=clock.now), port=0) as sandbox:
        path = rename_all(sandbox, tmp_path, 30)

        _summary, entries = await run_job(sandbox, path, clock=clock, concurrency=8)

        assert [e.status for e in entries] == ["ok"] * 30, [e.error for e in entries]
        assert sandbox.stats.rate_limited > 0
    # Workers other than the refused one waited out the shared cooldown.
    waiting_workers = {name for name, seconds in clock.sleeps if seconds > 0}
    assert len(waiting_workers) > 1, clock.sleeps
