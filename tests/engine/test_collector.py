"""The collector is kept out of a job's way while it runs, and put back after."""

from __future__ import annotations

import gc

import pytest

from bulk.engine import collector
from bulk.engine.collector import fewer_collections


def test_collections_are_rarer_inside_and_as_they_were_after():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= collector.THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before


def test_nested_and_failing_bodies_put_everything_back():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        with fewer_collections():
            pass
        assert gc.get_threshold()[0] >= collector.THRESHOLD  # the outer one still holds
        raise RuntimeError("a job that failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_a_job_runs_with_fewer_collections(tmp_path):
    from bulk.engine.job import Job
    from bulk.engine.ledger import OK, Entry, Ledger

    seen: list[int] = []

    async def handler(item, context):
        seen.append(gc.get_threshold()[0])
        return Entry(row=item.row, status=OK)

    before = gc.get_threshold()
    with Ledger(tmp_path / "l.db") as ledger:
        await Job(rows=[(1, {}), (2, {})], handler=handler, ledger=ledger, concurrency=2,
                  total=2).run()
    assert seen and min(seen) >= collector.THRESHOLD
    assert gc.get_threshold() == before
