"""Issue 15: the pace from the server's own numbers, the limiter swap under waiting
callers, and the bound on rows under way. Every clock is injected (looptime or manual)."""

from __future__ import annotations

import asyncio

import pytest

from bulk.engine.pacing import Pacer
from bulk.engine.row_gate import RowGate
from bulk.engine.slots import Slots, level_of
from tests.engine.quota_sim import run_against_quota
from tests.engine.test_pacing_adaptive import ManualClock


def at(value: float) -> object:
    # A slot comes a microsecond or two after its time (slots.py: _LATE).
    return pytest.approx(value, abs=1e-4)


# -- the server's numbers ------------------------------------------------------------

async def test_told_the_limit_the_pace_is_set_at_once_without_a_climb() -> None:
    clock = ManualClock()
    pacer = Pacer(10, burst=2, clock=clock, auto=True, start=10)
    await pacer.acquire()
    pacer.observe(200, 199)  # the first answer: a bucket of 200, nearly full
    assert pacer.told
    # One second's worth per second until measured, plus the stock spent in HORIZON.
    assert pacer.rate == pytest.approx(200 + (199 - 20) / Pacer.HORIZON)


async def test_told_the_pace_follows_the_measured_refill_not_the_limit() -> None:
    # A bucket of 100 that refills at 20/s; we take 20/s and it stays near its reserve.
    clock = ManualClock()
    pacer = Pacer(1000, burst=2, clock=clock, start=10)
    for _ in range(60):  # three seconds of answers, 20 a second, remaining steady at 10
        clock.t += 0.05
        pacer.accepted()
        pacer.observe(100, 10)
    assert pacer.rate == pytest.approx(20, rel=0.06)


async def test_told_the_remaining_count_falling_slows_the_pace() -> None:
    clock = ManualClock()
    pacer = Pacer(1000, burst=2, clock=clock, start=10)
    for remaining in range(50, 0, -1):  # 20 a second taken, the stock falls by 20/s
        clock.t += 0.05
        pacer.accepted()
        pacer.observe(100, remaining)
    # The refill is ~0, the stock below the reserve: the floor.
    assert pacer.rate == pytest.approx(pacer.min_rate, abs=1.0)


async def test_told_a_429_pauses_but_does_not_settle_or_climb() -> None:
    clock = ManualClock()
    pacer = Pacer(1000, burst=2, clock=clock, start=50)
    pacer.observe(60, 0)
    told_rate = pacer.rate
    pacer.refused(2.0, sent_at=clock.t)
    assert pacer.cooling_for() == 2.0 and pacer.rate == told_rate
    sent = clock.t
    clock.t += 3
    pacer.accepted(sent)  # no climb from an answer either
    assert pacer.rate == told_rate


async def test_told_the_ceiling_given_is_never_exceeded() -> None:
    clock = ManualClock()
    pacer = Pacer(50, burst=2, clock=clock)
    pacer.observe(1000, 999)
    assert pacer.rate == 50


@pytest.mark.looptime(noop_cycles=1)
@pytest.mark.parametrize("quota", [5, 20, 60, 200])
async def test_told_a_job_runs_at_its_quota_without_a_429(quota):
    run = await run_against_quota(quota, rate=None, seconds=30, workers=32, latency=0.02,
                                  headers=True)
    assert run.refused == 0
    # The bucket's first second's worth counts on top: > 1 is possible, < 0.97 is not.
    assert run.utilization >= 0.97, run.timeline


# -- the slots: aiolimiter, swapped under waiting callers ----------------------------

@pytest.mark.looptime
async def test_a_new_pace_swaps_the_limiter_under_waiting_callers():
    loop = asyncio.get_running_loop()
    pacer = Pacer(2, burst=1)
    order: list[tuple[int, float]] = []

    async def caller(n: int) -> None:
        await pacer.acquire()
        order.append((n, loop.time()))

    tasks = [asyncio.create_task(caller(n)) for n in range(6)]
    await asyncio.sleep(0.25)  # the head waits for the slot at 0.5 (2/s)
    assert [n for n, _ in order] == [0]
    pacer._set_rate(8.0, loop.time())
    await asyncio.gather(*tasks)
    # First come, first served; the old limiter's half-used slot is carried over (0.5 of
    # a slot leaks at 8/s in 1/16 s), then one every 1/8 s: the head was woken, nobody
    # waited out the old pace, and the swap granted no burst.
    assert [n for n, _ in order] == list(range(6))
    times = [t for _, t in order]
    assert times == [at(0.0), at(0.3125), at(0.4375), at(0.5625), at(0.6875), at(0.8125)]
    assert pacer._slots.swaps == 1


@pytest.mark.looptime
async def test_a_swap_carries_the_level_over_no_fresh_burst():
    loop = asyncio.get_running_loop()
    slots = Slots(4, 4, clock=Pacer(4).clock)
    for _ in range(4):  # the whole burst at t=0
        await slots.take(lambda: 0.0)
    slots.set_rate(8)
    await slots.take(lambda: 0.0)
    assert loop.time() == at(0.125)  # one slot leaked at 8/s, not 4 more at once


@pytest.mark.looptime
async def test_a_pause_wakes_the_head_and_holds_everyone():
    loop = asyncio.get_running_loop()
    pacer = Pacer(1, burst=1)
    times: list[float] = []

    async def caller() -> None:
        await pacer.acquire()
        times.append(loop.time())

    tasks = [asyncio.create_task(caller()) for _ in range(3)]
    await asyncio.sleep(0.5)
    pacer.cool_down(4)  # a 429: the head, waiting on the limiter for t=1, must not go
    await asyncio.gather(*tasks)
    assert times == [at(0.0), at(4.5), at(5.5)]


@pytest.mark.looptime
async def test_the_level_is_read_through_has_capacity():
    slots = Slots(10, 5, clock=Pacer(10).clock)
    for _ in range(3):
        await slots.take(lambda: 0.0)
    assert slots._limiter is not None
    assert level_of(slots._limiter) == pytest.approx(3.0, abs=1e-4)


@pytest.mark.looptime
async def test_a_cancelled_caller_leaves_the_queue_to_the_others():
    loop = asyncio.get_running_loop()
    pacer = Pacer(2, burst=1)
    await pacer.acquire()
    head = asyncio.create_task(pacer.acquire())
    second = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0.1)
    head.cancel()
    await asyncio.gather(head, return_exceptions=True)
    await second
    assert loop.time() == at(0.5)


@pytest.mark.looptime
async def test_a_write_slot_is_served_before_reads_queued_earlier():
    # Three reads queue, then a write (a row that has read): the write takes the next
    # slot, so its read does not age behind reads of rows begun after it.
    loop = asyncio.get_running_loop()
    pacer = Pacer(2, burst=1)
    await pacer.acquire()
    order: list[str] = []

    async def take(name: str, first: bool) -> None:
        await pacer.acquire(first=first)
        order.append(name)

    reads = [asyncio.create_task(take(f"read{n}", False)) for n in range(3)]
    await asyncio.sleep(0.1)
    write = asyncio.create_task(take("write", True))
    await asyncio.gather(write, *reads)
    # The head read already waits on the limiter and keeps its slot; the write is next.
    assert order == ["read0", "write", "read1", "read2"]
    assert loop.time() == at(2.0)


# -- the bound on rows under way ------------------------------------------------------

def test_rows_in_flight_follow_the_pace() -> None:
    clock = ManualClock()
    # At 5/s a row (a GET and a PUT) waits for its write at most a second of slots.
    assert Pacer(5, clock=clock).rows_in_flight(2.0) == 2
    assert Pacer(200, clock=clock).rows_in_flight(2.0) == 100
    assert Pacer(0.5, clock=clock).rows_in_flight(2.0) == 1


async def test_the_gate_holds_rows_beyond_its_limit_first_come_first_served() -> None:
    limit = 2
    gate = RowGate(lambda: limit)
    began: list[int] = []
    release = asyncio.Event()

    async def row(n: int) -> int:
        began.append(n)
        await release.wait()
        return n

    gated = gate.wrap(row)
    tasks = [asyncio.create_task(gated(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert began == [0, 1] and gate.busy == 2 and gate.held_back == 3
    limit = 4  # the pace rose: the next row to finish lets more in
    release.set()
    assert await asyncio.gather(*tasks) == list(range(5))
    assert began == [0, 1, 2, 3, 4] and gate.busy == 0


async def test_a_row_cancelled_while_held_back_leaves_no_place_taken() -> None:
    gate = RowGate(lambda: 1)
    await gate.enter()
    waiting = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    gate.leave()
    assert gate.busy == 0
    await gate.enter()
    assert gate.busy == 1


async def test_rows_cancelled_while_held_back_when_the_others_leave() -> None:
    # A stop cancels every worker at once: the gate must let each cancellation through
    # as a cancellation (not as an error that the job would record against the row).
    gate = RowGate(lambda: 1)
    await gate.enter()
    held = [asyncio.create_task(gate.enter()) for _ in range(3)]
    await asyncio.sleep(0)
    held[0].cancel()
    gate.leave()  # wakes the next live one, dropping the cancelled one
    held[1].cancel()
    held[2].cancel()
    results = await asyncio.gather(*held, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    assert gate.busy == 0


@pytest.mark.looptime
async def test_slots_free_when_the_head_lets_go_go_to_the_whole_queue_at_once():
    # Twenty callers queue behind a pause; when it ends the limiter has room for them all.
    # They are served in the loop turn the head lets go, not one loop turn each (a line
    # handed from caller to caller stayed held, so every caller arriving meanwhile queued
    # as well: a convoy that lasted as long as callers kept coming).
    loop = asyncio.get_running_loop()
    slots = Slots(100, 100, clock=Pacer(100).clock)
    await slots.take(lambda: 0.0)  # a limiter in place, with room for 99 more

    def cooling() -> float:
        return max(0.0, 1.0 - loop.time())

    tasks = [asyncio.create_task(slots.take(cooling)) for _ in range(20)]
    turns: list[int] = []

    async def count_turns() -> None:  # bounded: looptime moves on only when idle
        for turn in range(60):
            if all(task.done() for task in tasks):
                turns.append(turn)
                return
            await asyncio.sleep(0)

    await asyncio.sleep(0.5)  # all queued; the head sleeps out the pause until t=1
    counting = loop.create_future()
    loop.call_at(1.0, lambda: counting.set_result(loop.create_task(count_turns())))
    await (await counting)
    assert [task.result() for task in tasks] == [False] * 20  # each waited out the pause
    assert loop.time() == at(1.0)
    assert turns and turns[0] <= 4
    assert slots.free_now()  # nobody holds the line: the next caller takes a slot at once
    assert await slots.take(cooling) is True
