"""The pacer's record of accepted sends: bounded whatever the rate, exact when slow."""

from __future__ import annotations

import pytest

from bulk.engine.accepted_sends import RESOLUTION, AcceptedSends
from bulk.engine.pacing import Pacer
from tests.engine.test_pacing_adaptive import ManualClock


def test_a_minute_at_5000_a_second_is_kept_in_bounded_space():
    # 300,000 sends in a minute (then more): one entry per bin of the last minute at most.
    clock = ManualClock()
    pacer = Pacer(10, clock=clock, auto=True)
    for n in range(400_000):
        clock.t = 100.0 + n / 5000
        pacer.accepted(clock.t - 0.002)  # answered 2 ms after it was sent
    assert len(pacer._accepted) <= Pacer.WINDOW / RESOLUTION + 2


def test_slow_sends_are_kept_exactly():
    sends = AcceptedSends(window=60.0)
    times = [100.0 + n * 0.2 + 0.0123 for n in range(50)]  # 5/s, one per bin
    for at in times:
        sends.add(at, at + 0.02)
    assert sends.between(times[0], times[-1], from_start=True) == [(at, 1) for at in times]
    assert sends.between(times[0], times[-1], from_start=False) == [(at, 1) for at in times[1:]]


def test_fast_sends_are_counted_per_bin_with_each_bins_first_time():
    sends = AcceptedSends(window=60.0)
    times = [100.0005 + n / 1000 for n in range(1000)]  # 1000/s: ten per bin
    for at in reversed(times[-5:]):  # answers out of order: the bin keeps its first
        sends.add(at, 101.1)
    for at in times[:-5]:
        sends.add(at, 101.1)
    found = sends.between(0.0, 200.0, from_start=True)
    assert sum(count for _, count in found) == 1000
    assert len(found) == pytest.approx(1000 / (RESOLUTION * 1000), abs=1)
    assert found[-1] == (pytest.approx(times[-10]), 10)
    assert [at for at, _ in found] == sorted(at for at, _ in found)


def test_what_is_older_than_the_window_is_forgotten():
    sends = AcceptedSends(window=1.0)
    for n in range(300):
        sends.add(100.0 + n / 100, 100.0 + n / 100)
    assert sends.between(0.0, 1000.0, from_start=True)[0][0] >= 101.99 - 1.0 - RESOLUTION
