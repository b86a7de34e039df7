"""The pacer finds the quota: a 429 lowers the pace, quiet time brings it back."""

from __future__ import annotations

import pytest

from bulk.engine.pacing import Pacer


class ManualClock:
    """Time moves only when the test says so (sleeps move it too)."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


async def test_a_429_lowers_the_pace_once_per_storm() -> None:
    clock = ManualClock()
    pacer = Pacer(50, burst=1000, clock=clock)

    pacer.slow_down()
    pacer.cool_down(2)
    assert pacer.rate == pytest.approx(35.0)
    # More 429s inside that cooldown answer requests sent before it: no further drop.
    pacer.slow_down()
    pacer.slow_down()
    assert pacer.rate == pytest.approx(35.0)

    clock.t += 2.5  # a 429 after the cooldown is news about the quota
    pacer.slow_down()
    assert pacer.rate == pytest.approx(24.5)


async def test_the_pace_never_drops_below_its_floor() -> None:
    clock = ManualClock()
    pacer = Pacer(3, burst=1000, clock=clock)
    for _ in range(20):
        pacer.slow_down()
    assert pacer.rate == pytest.approx(1.0)
    assert Pacer(0.5, clock=clock).min_rate == 0.5  # a pace asked below 1/s is kept


async def test_quiet_time_brings_the_pace_back_but_never_above_what_was_asked() -> None:
    clock = ManualClock()
    pacer = Pacer(50, burst=1000, clock=clock)
    pacer.slow_down()
    assert pacer.rate == pytest.approx(35.0)

    clock.t += Pacer.RECOVER_AFTER - 0.1
    await pacer.acquire()
    assert pacer.rate == pytest.approx(35.0)  # not quiet for long enough yet
    clock.t += 0.2
    await pacer.acquire()
    assert pacer.rate == pytest.approx(42.0)
    for _ in range(5):
        clock.t += Pacer.RECOVER_AFTER
        await pacer.acquire()
    assert pacer.rate == 50


async def test_a_pace_never_slowed_stays_as_asked() -> None:
    clock = ManualClock()
    pacer = Pacer(50, burst=1000, clock=clock)
    clock.t += 1000
    await pacer.acquire()
    assert pacer.rate == 50
