"""Items with one key run one at a time, in feed order; others flow (issue 13, point 1).

The engine knows keys only as strings the caller computes (`Job(key_of=...)`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulk.engine.clock import SkipClock
from bulk.engine.job import Job
from bulk.engine.ledger import FAILED, IN_DOUBT, OK, PENDING, Entry, Ledger
from bulk.engine.row_context import RowContext, WorkItem
from bulk.engine.stops import TRANSIENT


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "job.ledger.db") as opened:
        yield opened


def keyed_rows(keys: str) -> list[tuple[int, dict[str, str]]]:
    """One row per letter, keyed by the letter: "abab" = rows 1..4 on keys a, b, a, b."""
    return [(n, {"key": key}) for n, key in enumerate(keys, start=1)]


def make_job(ledger: Ledger, keys: str, handler, **options) -> Job:
    options.setdefault("concurrency", 4)
    return Job(rows=keyed_rows(keys), total=len(keys), handler=handler, ledger=ledger,
               key_of=lambda payload: payload["key"], flush_every=0.01,
               clock=SkipClock(), second_chance_pause=0.0, **options)


class Watch:
    """A handler that notes what runs at once, per key and overall."""

    def __init__(self, outcome=None) -> None:
        self.running: dict[str, int] = {}
        self.overlap = 0
        self.most_at_once = 0
        self.order: list[int] = []
        self.outcome = outcome or (lambda item, calls: OK)
        self.calls: dict[int, int] = {}

    async def __call__(self, item: WorkItem, context: RowContext) -> Entry:
        key = item.payload["key"]
        self.calls[item.row] = self.calls.get(item.row, 0) + 1
        self.running[key] = self.running.get(key, 0) + 1
        self.overlap = max(self.overlap, self.running[key])
        self.most_at_once = max(self.most_at_once, sum(self.running.values()))
        self.order.append(item.row)
        for _ in range(3):
            await asyncio.sleep(0)
        self.running[key] -= 1
        status = self.outcome(item, self.calls[item.row])
        entry = Entry(row=item.row, status=status)
        if status == FAILED:
            entry.error_kind = TRANSIENT
        return entry


async def test_rows_of_one_key_never_overlap_and_keep_their_order(ledger: Ledger) -> None:
    keys = "aaaaabcdbcdaaaaefgh"
    watch = Watch()
    summary = await make_job(ledger, keys, watch, concurrency=8).run()
    assert summary.done[OK] == len(keys)
    assert watch.overlap == 1
    for key in set(keys):
        own = [row for row, k in keyed_rows(keys) if k == key]
        assert [row for row in watch.order if row in own] == own
    assert watch.most_at_once > 1  # other keys flowed meanwhile


async def test_rows_without_a_key_are_not_ordered(ledger: Ledger) -> None:
    watch = Watch()
    job = Job(rows=keyed_rows("aaaa"), total=4, handler=watch, ledger=ledger,
              key_of=lambda payload: None, concurrency=4)
    await job.run()
    assert watch.overlap > 1


async def test_a_row_in_doubt_holds_the_later_rows_of_its_key_back(ledger: Ledger) -> None:
    def outcome(item: WorkItem, calls: int) -> str:
        return IN_DOUBT if item.row == 2 else OK

    watch = Watch(outcome)
    summary = await make_job(ledger, "babab", watch).run()
    found = {entry.row: entry for entry in ledger.entries()}
    assert found[2].status == IN_DOUBT
    assert found[4].status == PENDING and "row 2" in (found[4].error or "")
    assert 4 not in watch.order  # never ran
    assert [found[n].status for n in (1, 3, 5)] == [OK, OK, OK]
    assert summary.exit_code == 1

    # The next run settles row 2 first, then row 4.
    def settled(item: WorkItem, calls: int) -> str:
        return OK

    again = Watch(settled)
    await make_job(ledger, "babab", again).run()
    assert again.order == [2, 4]
    assert {entry.status for entry in ledger.entries()} == {OK}


async def test_a_transient_failure_and_its_followers_run_again_in_order_at_the_end(
        ledger: Ledger) -> None:
    def outcome(item: WorkItem, calls: int) -> str:
        return FAILED if item.row == 1 and calls == 1 else OK

    watch = Watch(outcome)
    summary = await make_job(ledger, "aab", watch).run()
    assert watch.order.index(3) < len(watch.order)
    assert watch.order[-2:] == [1, 2]  # the end pass: row 1, then the row held behind it
    assert summary.exit_code == 0
    assert {entry.status for entry in ledger.entries()} == {OK}


async def test_parked_rows_stay_few_however_many_rows_name_one_key(ledger: Ledger) -> None:
    watch = Watch()
    job = make_job(ledger, "a" * 3000, watch, concurrency=2)
    job._order.limit = 10
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, job._order._parked)
            await asyncio.sleep(0)

    sampler = asyncio.create_task(sample())
    summary = await job.run()
    sampler.cancel()
    assert summary.done[OK] == 3000
    assert peak <= 10
