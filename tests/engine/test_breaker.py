"""The outage breaker, on a skipping clock: opens on a streak across records, one probe
at a time with growing waits, closes on the first answer, gives up after its limit."""

from __future__ import annotations

import asyncio

import pytest

from bulk.engine.breaker import Breaker, OutageError
from bulk.engine.clock import SkipClock


def open_breaker(breaker: Breaker) -> None:
    for n in range(Breaker.THRESHOLD):
        breaker.failed(f"runs/{n % 4}", probe=False)
    assert breaker.is_open


async def test_a_streak_on_one_record_does_not_open_it():
    breaker = Breaker(SkipClock(), limit=600.0)
    for _ in range(50):
        assert breaker.failed("runs/a", probe=False) is False
    assert not breaker.is_open


async def test_scattered_failures_do_not_open_it():
    breaker = Breaker(SkipClock(), limit=600.0)
    for n in range(100):
        breaker.failed(f"runs/{n}", probe=False)
        if n % 5 == 0:
            breaker.answered(probe=False)
    assert not breaker.is_open


async def test_the_failure_that_opens_it_and_those_after_belong_to_the_outage():
    breaker = Breaker(SkipClock(), limit=600.0)
    flags = [breaker.failed(f"runs/{n % 4}", probe=False) for n in range(Breaker.THRESHOLD + 2)]
    assert flags == [False] * (Breaker.THRESHOLD - 1) + [True] * 3


async def test_one_probe_at_a_time_with_growing_waits_then_everyone_goes_on():
    clock = SkipClock()
    outages = []
    breaker = Breaker(clock, limit=600.0, on_outage=lambda start, end: outages.append(end - start))
    open_breaker(breaker)
    admitted: list[str] = []

    async def worker(name: str):
        probe = await breaker.admit()
        admitted.append(name)
        return probe

    tasks = [asyncio.create_task(worker(f"w{n}")) for n in range(5)]
    first = await tasks[0]
    assert first is True and admitted == ["w0"]  # the others wait at the door
    breaker.failed("runs/x", probe=True)  # still down: the next probe waits longer
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(admitted) == 2
    breaker.answered(probe=True)  # up again
    results = await asyncio.gather(*tasks[1:])
    assert results[0] is True and results[1:] == [False, False, False]
    assert not breaker.is_open
    assert [seconds for _, seconds in clock.sleeps] == [pytest.approx(1.0, abs=0.01),
                                                        pytest.approx(2.0, abs=0.01)]
    assert breaker.probes == 2
    assert outages == [pytest.approx(3.0, abs=0.1)]
    assert breaker.outage_seconds == pytest.approx(3.0, abs=0.1)


async def test_it_gives_up_after_its_limit():
    clock = SkipClock()
    breaker = Breaker(clock, limit=60)
    open_breaker(breaker)
    with pytest.raises(OutageError, match="unreachable for 1 min"):
        while True:
            probe = await breaker.admit()
            breaker.failed("runs/x", probe=probe)
    assert 55 <= clock.skipped <= 61
    with pytest.raises(OutageError):  # and for everyone after
        await breaker.admit()
