"""The pacer: a steady rate with a small burst, and a cooldown every caller obeys.

These run in looptime's fake loop time, so the rate is checked exactly and instantly.
The rates are powers of two (8/s: 0.125 s apart) on purpose: the pacer's slot
arithmetic in floats (0.3 - 0.2 != 0.1) leaves a residue of ~1e-16 that a real clock
simply passes, but looptime's 1e-6-resolution clock never moves past, so a rate such as
10/s spins forever at one fake instant under looptime. Binary-exact intervals avoid it.
"""

from __future__ import annotations

import asyncio

import pytest

from bulk.engine.clock import SkipClock
from bulk.engine.pacing import Pacer

pytestmark = pytest.mark.looptime


def on_time(expected: list[float]) -> object:
    # A slot comes a few microseconds after its time, never before (slots.py: _LATE).
    return pytest.approx(expected, abs=1e-4)


def loop_now() -> float:
    return round(asyncio.get_running_loop().time(), 5)  # a slot may come 2 µs early (slots.py)


async def test_rate_with_small_burst(looptime):
    pacer = Pacer(8, burst=2)
    times = []
    for _ in range(10):
        await pacer.acquire()
        times.append(loop_now())
    # Two at once (the burst), then one every 1/8 s: ten acquisitions end at t=1.0.
    assert times == on_time([0.0, 0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0])
    assert loop_now() == pytest.approx(1.0, abs=1e-4)


async def test_rate_is_shared_by_concurrent_callers(looptime):
    pacer = Pacer(4, burst=1)
    times: list[float] = []

    async def worker():
        for _ in range(3):
            await pacer.acquire()
            times.append(loop_now())

    await asyncio.gather(*(worker() for _ in range(4)))
    # 12 acquisitions in all, one every 0.25 s whoever asks.
    assert sorted(times) == on_time([n * 0.25 for n in range(12)])
    assert loop_now() == pytest.approx(2.75, abs=1e-4)


async def test_burst_does_not_build_up_while_idle(looptime):
    pacer = Pacer(8, burst=2)
    await asyncio.sleep(100)
    times = []
    for _ in range(4):
        await pacer.acquire()
        times.append(loop_now())
    assert times == on_time([100.0, 100.0, 100.125, 100.25])


async def test_cooldown_holds_back_every_other_task(looptime):
    pacer = Pacer(8, burst=2)
    times: dict[str, float] = {}

    async def refused():
        await pacer.acquire()
        pacer.cool_down(5)  # as JsonHttp does on a 429

    async def other(name: str):
        await asyncio.sleep(0.5)
        await pacer.acquire()
        times[name] = loop_now()

    await asyncio.gather(refused(), other("a"), other("b"), other("c"))
    # Nobody gets through before t=5; then the steady rate, no burst (the server has
    # just said "too many").
    assert sorted(times.values()) == on_time([5.0, 5.125, 5.25])
    assert pacer.cooldowns == 1
    assert pacer.waits == 3


async def test_cooldown_also_stops_callers_already_queued_for_a_slot(looptime):
    # One a second: three callers are queued inside the rate limiter when the 429
    # arrives at t=0.5; none of them may go out during the cooldown.
    pacer = Pacer(1, burst=1)
    times: list[float] = []

    async def caller():
        await pacer.acquire()
        times.append(loop_now())

    tasks = [asyncio.create_task(caller()) for _ in range(4)]
    await asyncio.sleep(0.5)
    pacer.cool_down(10)
    await asyncio.gather(*tasks)
    assert times == on_time([0.0, 10.5, 11.5, 12.5])


async def test_second_cooldown_extends_shorter_one_does_not_shorten(looptime):
    pacer = Pacer(8, burst=2)
    done: list[float] = []
    pacer.cool_down(5)
    assert pacer.cooling_for() == 5.0

    async def waiter():
        await pacer.acquire()
        done.append(loop_now())

    task = asyncio.create_task(waiter())
    await asyncio.sleep(1)
    pacer.cool_down(1)  # ends at t=2: must not shorten the one ending at t=5
    assert pacer.cooling_for() == pytest.approx(4.0)
    assert pacer.cooldowns == 1
    await asyncio.sleep(1)
    pacer.cool_down(5)  # ends at t=7: extends
    assert pacer.cooling_for() == pytest.approx(5.0)
    assert pacer.cooldowns == 2
    await task
    assert done == on_time([7.0])
    assert pacer.cooling_for() == 0.0
    assert pacer.waits == 1


async def test_negative_cooldown_is_ignored(looptime):
    pacer = Pacer(8)
    pacer.cool_down(-3)
    assert pacer.cooling_for() == 0.0
    assert pacer.cooldowns == 0
    await pacer.acquire()
    assert looptime == 0


async def test_cooldown_with_a_skip_clock_waits_through_the_clock(looptime):
    clock = SkipClock()
    pacer = Pacer(1000, burst=10, clock=clock)
    assert pacer.clock is clock
    pacer.cool_down(30)
    await pacer.acquire()
    assert looptime == 0  # the wait was skipped, not spent
    assert [seconds for _, seconds in clock.sleeps] == [pytest.approx(30.0)]
    assert clock.skipped == pytest.approx(30.0)
    assert pacer.cooling_for() == 0.0
    assert pacer.waits == 1


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate must be positive"):
        Pacer(0)
    with pytest.raises(ValueError):
        Pacer(-1)


def test_burst_is_at_least_one():
    assert Pacer(5, burst=0).burst == 1
    assert Pacer(5, burst=3).burst == 3
    assert Pacer(5, burst=3).rate == 5
