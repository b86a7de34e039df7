"""LoopClock follows the event loop; SkipClock records sleeps and skips them."""

from __future__ import annotations

import asyncio

import pytest

from bulk.engine.clock import LoopClock, SkipClock


@pytest.mark.looptime
async def test_loop_clock_is_the_loop_time(looptime):
    clock = LoopClock()
    assert clock.now() == asyncio.get_running_loop().time()
    await clock.sleep(2.5)
    assert looptime == 2.5
    assert clock.now() == asyncio.get_running_loop().time()


@pytest.mark.looptime
async def test_loop_clock_negative_sleep_returns_at_once(looptime):
    await LoopClock().sleep(-3)
    assert looptime == 0


@pytest.mark.looptime
async def test_skip_clock_moves_its_time_not_the_loop(looptime):
    clock = SkipClock()
    start = clock.now()
    await asyncio.create_task(clock.sleep(4.0), name="sleeper")
    await clock.sleep(1.5)
    await clock.sleep(-2.0)  # recorded, but time never goes back
    assert looptime == 0  # nothing really waited
    assert clock.skipped == 5.5
    assert clock.now() - start == pytest.approx(5.5)
    assert [seconds for _, seconds in clock.sleeps] == [4.0, 1.5, -2.0]
    assert clock.sleeps[0][0] == "sleeper"


async def test_skip_clock_sleep_yields_to_other_tasks():
    clock = SkipClock()
    ran = []

    async def other():
        ran.append("other")

    task = asyncio.create_task(other())
    await clock.sleep(0)
    assert ran == ["other"]
    await task
