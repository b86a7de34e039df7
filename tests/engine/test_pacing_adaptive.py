"""The pacer finds the quota: it settles just under what the server accepts, probes
gently above it, and a `--rate` given stays a ceiling.

The convergence tests drive the sandbox's own token bucket (`Quota`) and the pacer from
one fake loop clock (looptime): 60 s of job in well under a second, exactly."""

from __future__ import annotations

import itertools

import pytest

from bulk.engine.pacing import Pacer
from bulk.sandbox._faults import Quota
from tests.engine.quota_sim import run_against_quota


def first_estimate(sent: list[float], edge: float) -> float:
    """The rate a first 429 at `edge` reads from requests accepted at `sent` (a burst of
    Pacer.BURST_SECONDS of the rate, plus the part of a request left in the bucket,
    counted whole)."""
    return first_cycle(sent, edge)[0]


def first_cycle(sent: list[float], edge: float) -> tuple[float, float]:
    """(estimate, spread): the spread is one request over the time the estimate spans."""
    estimate, span = max(((len(sent) - n + 1) / (edge - at + Pacer.BURST_SECONDS),
                          edge - at + Pacer.BURST_SECONDS) for n, at in enumerate(sent))
    return estimate, 1 / span


def with_credit(settled: float, estimate: float, spread: float, pause: float = 1.0) -> float:
    """The pace during the SPEND seconds after a pause: the refill of the pause spent,
    less one request and a reserve for the estimate's excess."""
    refill = estimate * min(pause, Pacer.BURST_SECONDS)
    low, high = Pacer.GUARD
    reserve = min(max((1 - Pacer.CREDIT) * refill, low * spread), high * spread)
    return settled + max(0.0, refill - Pacer.KEEP - reserve) / Pacer.SPEND


class ManualClock:
    """Time moves only when the test says so (sleeps move it too)."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


@pytest.mark.looptime(noop_cycles=1)
@pytest.mark.parametrize("quota", [5, 20, 60, 200])
@pytest.mark.parametrize("rate", [1000.0, None], ids=["rate-above-quota", "rate-auto"])
async def test_the_job_converges_to_the_hidden_quota(quota, rate):
    # Retry-After in whole seconds, every other one absent.
    run = await run_against_quota(quota, rate=rate, retry_after="sometimes", seconds=60)

    assert run.utilization >= 0.9, run.timeline
    assert run.refused_share <= 0.05
    assert run.pacer is not None and run.pacer.rate <= (rate or Pacer.AUTO_CEILING)


@pytest.mark.looptime(noop_cycles=1)
@pytest.mark.parametrize("retry_after", ["always", "never"])
async def test_converges_with_or_without_retry_after(retry_after):
    run = await run_against_quota(60, rate=None, retry_after=retry_after, seconds=60)
    assert run.utilization >= 0.9
    assert run.refused_share <= 0.05


@pytest.mark.looptime(noop_cycles=1)
async def test_a_rate_below_the_quota_is_a_ceiling_never_exceeded():
    run = await run_against_quota(200, rate=50.0, retry_after="always", seconds=30)
    assert run.refused == 0
    assert run.accepted <= 50 * 30 + 2  # the burst of 2 at the start
    assert run.accepted >= 0.95 * 50 * 30
    assert run.pacer is not None and run.pacer.rate == 50.0


async def test_a_429_settles_at_a_share_of_what_the_server_accepted() -> None:
    clock = ManualClock()
    pacer = Pacer(100, burst=1000, clock=clock)
    await pacer.acquire()  # the job has begun
    sent = []
    for _ in range(40):  # 40 accepted over the last second
        clock.t += 0.025
        sent.append(clock.t)
        pacer.accepted()

    pacer.refused(1.0, sent_at=clock.t)

    # 40 in a second are a burst (a second's worth) and a second of the rate: ~20/s
    # (with the part of a request the bucket held at the 429, counted whole).
    estimate, spread = first_cycle(sent, clock.t)
    assert estimate == pytest.approx(41 / 1.975)
    assert pacer.settled_rate == pytest.approx(Pacer.SETTLE * estimate)
    assert pacer.cooling_for() == 1.0
    assert (pacer.rate_limited, pacer.pauses) == (1, 1)
    # The bucket refilled during the pause: spent over SPEND seconds after it, then the
    # settled pace.
    assert pacer.rate == pytest.approx(with_credit(pacer.settled_rate, estimate, spread))
    clock.t += 1.0 + Pacer.SPEND
    await pacer.acquire()
    assert pacer.rate == pytest.approx(Pacer.SETTLE * estimate)


async def test_429s_of_one_storm_settle_the_pace_once() -> None:
    clock = ManualClock()
    pacer = Pacer(100, burst=1000, clock=clock)
    await pacer.acquire()  # the job has begun
    for _ in range(40):
        clock.t += 0.025
        pacer.accepted()
    sent = clock.t
    clock.t += 0.005
    pacer.refused(1.0, sent_at=sent)
    settled = pacer.rate
    first_edge = sent
    # Sent before the pause began: they say nothing new about the quota.
    for _ in range(5):
        clock.t += 0.001
        pacer.refused(1.0, sent_at=sent)
    assert pacer.rate == settled
    assert pacer.rate_limited == 6
    assert pacer.pauses == 1
    # One sent after the pause is news: it settles again (from what was accepted since).
    clock.t += 2.0
    for _ in range(10):
        pacer.accepted()
    pacer.refused(None, sent_at=clock.t)
    assert pacer.pauses == 2
    assert pacer.cooling_for() == Pacer.DEFAULT_PAUSE
    # Counted by send time from the 429 that ended the last cycle.
    assert pacer.settled_rate == pytest.approx(Pacer.SETTLE * 11 / (clock.t - first_edge),
                                               rel=0.001)


async def test_the_pace_never_drops_below_its_floor() -> None:
    clock = ManualClock()
    pacer = Pacer(3, burst=1000, clock=clock)
    await pacer.acquire()
    for _ in range(20):
        clock.t += 5
        pacer.refused(1.0, sent_at=clock.t)  # nothing accepted at all
    assert pacer.settled_rate == pytest.approx(1.0)
    assert Pacer(0.5, clock=clock).min_rate == 0.5  # a pace asked below 1/s is kept


async def test_quiet_time_probes_upward_gently_and_never_above_the_ceiling() -> None:
    clock = ManualClock()
    pacer = Pacer(50, burst=1, clock=clock)
    await pacer.acquire()
    sent = []
    for _ in range(20):
        clock.t += 0.05
        sent.append(clock.t)
        pacer.accepted()
    pacer.refused(1.0, sent_at=clock.t)
    first_at = clock.t
    estimate, spread = first_cycle(sent, clock.t)
    first = pacer.settled_rate
    assert first == pytest.approx(Pacer.SETTLE * estimate)
    assert pacer.rate == pytest.approx(with_credit(first, estimate, spread))
    # Once the pause's credit is spent the pace holds, QUIET seconds from the 429: the
    # estimate is at or above the rate already, a probe would only hasten the next 429.
    clock.t += 1.0 + Pacer.SPEND
    accepted = 0
    while clock.t < first_at + Pacer.QUIET - 0.5:
        pacer.accepted(await pacer.acquire())  # saturated: every slot is waited for
        accepted += 1
        assert pacer.rate == pytest.approx(first)
    # Then PROBE_FIRST of the pace per quiet second until the next 429: the first
    # estimate assumed the server's burst, and were it smaller, the estimate is low.
    rates = []
    for _ in range(120):
        pacer.accepted(await pacer.acquire())
        accepted += 1
        rates.append(pacer.rate)
    assert rates[0] == pytest.approx(first)
    grown = sorted({round(b / a, 6) for a, b in itertools.pairwise(rates)} - {1.0})
    assert grown == [pytest.approx(1 + Pacer.PROBE_FIRST)]
    # The second 429 measures a whole cycle: what was accepted since the first.
    for _ in range(36):
        clock.t += 1.0 / 36
        accepted += 1
        pacer.accepted()
    pacer.refused(1.0, sent_at=clock.t)
    second_at = clock.t
    settled = pacer.settled_rate
    assert settled == pytest.approx(Pacer.SETTLE * (accepted + 1) / (clock.t - first_at))
    clock.t = second_at + Pacer.QUIET
    rates = []
    for _ in range(400):
        await pacer.acquire()  # saturated: every slot is waited for
        rates.append(pacer.rate)
    # From then on one step of 1% of the settled pace per quiet second: additive.
    steps = sorted({round(b - a, 6) for a, b in itertools.pairwise(rates)} - {0.0})
    assert steps == [pytest.approx(0.01 * settled, abs=1e-6)]
    assert max(rates) <= 50


async def test_the_climb_grows_per_round_trip_while_everything_is_accepted() -> None:
    # Each slot is waited for (callers are held back by the pace) and its answer comes
    # back accepted 0.5 ms later: the pace grows per round trip, not per half second.
    clock = ManualClock()
    pacer = Pacer(10, burst=1, clock=clock, auto=True)
    began = clock.now()
    rates = [pacer.rate]
    while pacer.rate < Pacer.AUTO_CEILING:
        sent = await pacer.acquire()
        clock.t += 0.0005
        pacer.accepted(sent)
        rates.append(pacer.rate)
    distinct = sorted(set(rates))
    assert distinct == [10, 40, 160, 640, 1000]
    # From 10/s to 1000/s: one slot at each pace once callers wait (1/10 + 1/40 + ...).
    assert clock.now() - began < 0.15
    assert pacer.max_rate == Pacer.AUTO_CEILING


async def test_the_climb_waits_for_an_answer_sent_at_the_new_pace() -> None:
    # Answers to requests sent before the last change say nothing about the new pace.
    clock = ManualClock()
    pacer = Pacer(10, burst=1, clock=clock, auto=True)
    first = await pacer.acquire()
    second = await pacer.acquire()  # waited for: the pace holds callers back
    pacer.accepted(second)
    assert pacer.rate == 10 * Pacer.CLIMB
    pacer.accepted(first)  # sent before the climb
    pacer.accepted(second)
    assert pacer.rate == 10 * Pacer.CLIMB


async def test_a_given_rate_starts_low_and_climbs_to_its_ceiling() -> None:
    clock = ManualClock()
    pacer = Pacer(40, burst=1, clock=clock, start=10)
    assert pacer.rate == 10
    for _ in range(20):
        pacer.accepted(await pacer.acquire())
    assert pacer.rate == 40


async def test_an_unsaturated_pace_is_not_raised() -> None:
    clock = ManualClock()
    pacer = Pacer(10, burst=1, clock=clock, auto=True)
    for _ in range(20):
        clock.t += 1.0  # the callers come slower than the pace: it is not the limit
        await pacer.acquire()
    assert pacer.rate == 10


async def test_a_first_429_soon_after_the_start_is_read_as_a_burst_and_a_rate() -> None:
    # The climb reached a high pace within a round trip or two; the server took a burst
    # of 20 in the first 50 ms, then refused. 20 in 50 ms is the bucket, not the rate:
    # the bucket is taken as a second's worth, so ~20.5 in 1.05 s: ~19.5/s.
    clock = ManualClock()
    pacer = Pacer(1000, burst=5, clock=clock, start=1000)
    await pacer.acquire()
    sent = []
    for _ in range(20):
        clock.t += 0.0025
        sent.append(clock.t)
        pacer.accepted()
    pacer.refused(1.0, sent_at=clock.t)
    assert pacer.settled_rate == pytest.approx(Pacer.SETTLE * first_estimate(sent, clock.t))


@pytest.mark.parametrize("fill_seconds", [0.0, 0.5, 2.0])
async def test_the_first_estimate_skips_time_the_bucket_stood_full(fill_seconds) -> None:
    # A server of 20/s with a bucket of 20. The climb first sends at 10/s (below its rate:
    # the bucket stays full, its refill overflows) for `fill_seconds`, then at 100/s until
    # the bucket is empty. Counted from the start, the slow part would pull the estimate
    # down; counted from when the bucket began to empty, it is the server's rate.
    clock = ManualClock()
    pacer = Pacer(1000, burst=5, clock=clock, start=1000)
    await pacer.acquire()
    for _ in range(int(fill_seconds * 10)):
        clock.t += 0.1
        pacer.accepted()
    tokens = 20.0
    while tokens >= 1.0:  # at 100/s: the bucket (20) plus the refill (20/s) meanwhile
        clock.t += 0.01
        tokens += 20 * 0.01 - 1
        pacer.accepted()
    pacer.refused(1.0, sent_at=clock.t + 0.01)
    assert pacer.settled_rate == pytest.approx(Pacer.SETTLE * 20, rel=0.08)
    assert pacer.pauses == 1


async def test_event_callbacks_for_a_report() -> None:
    clock = ManualClock()
    events = []
    pacer = Pacer(10, clock=clock, on_429=lambda at: events.append(("429", at)),
                  on_pause=lambda start, seconds: events.append(("pause", start, seconds)))
    pacer.refused(3.0, sent_at=clock.t)
    assert events == [("429", 100.0), ("pause", 100.0, 3.0)]
    assert pacer.paused_seconds == 3.0


async def test_a_burst_taken_at_the_starting_pace_does_not_stall_the_climb() -> None:
    # 100 slots at once at the starting 10/s fill the limiter; each new pace's limiter
    # takes over that level (no new burst), and it drains at the new pace: the climb goes
    # on, and the head of the queue wakes for each new pace.
    clock = ManualClock()
    pacer = Pacer(1000.0, burst=100, clock=clock, start=10.0)
    began = clock.now()
    for _ in range(300):
        sent = await pacer.acquire()
        clock.t += 0.002
        pacer.accepted(sent)
    assert clock.now() - began < 3.0
    assert pacer.rate >= 320.0


async def _to_the_first_429(quota: float, gap: float) -> tuple[ManualClock, Pacer, list[float]]:
    """A pacer sending every `gap` s into the sandbox's bucket (a second's worth of
    `quota`, full at the start) until its first 429 (Retry-After 1): the send times."""
    clock = ManualClock()
    bucket = Quota(quota, None, clock.now)
    pacer = Pacer(1000, burst=5, clock=clock, start=1000)
    await pacer.acquire()
    sent = []
    while not bucket.take("token"):
        sent.append(clock.t)
        pacer.accepted(clock.t)
        clock.t += gap
    pacer.refused(1.0, sent_at=clock.t)
    return clock, pacer, sent


@pytest.mark.parametrize("quota", [5, 20, 60])
async def test_the_first_estimate_is_never_below_the_rate(quota) -> None:
    # The sandbox's own bucket (a second's worth, full at the start), drained at many
    # paces until its first 429, so the part of a request it holds then takes every
    # value: counted whole, the estimate is at or above the rate, by at most one request
    # over the time it spans (the spread). Below, the pace would leave the bucket full
    # after the pause, wasting what it gathers, until a probe found it.
    for step in range(60):
        gap = (0.02 + 0.9 * step / 60 + 0.001 * (step % 7)) / quota  # between sends
        clock, pacer, sent = await _to_the_first_429(quota, gap)
        estimate, spread = first_cycle(sent, clock.t)
        assert quota <= pacer.settled_rate <= quota + spread + 1e-9, (gap, sent)
        assert pacer.settled_rate == pytest.approx(Pacer.SETTLE * estimate)


@pytest.mark.parametrize(("quota", "bound"), [(5, "floor"), (40, "share"), (200, "ceiling")])
async def test_the_pause_refill_is_spent_but_a_reserve_for_the_excess_stays(quota,
                                                                            bound) -> None:
    # After the first 429 the pace may exceed the rate by up to the spread (one request
    # over the time measured); the bucket's stock absorbs that. So the refill of the
    # pause is spent less one request and a reserve: 15% of it, but at least 2 s and at
    # most 10 s of the spread. At 5/s 15% (0.75) would run out within the job (a second
    # 429, over the 2% of its 61 requests); at 200/s 15% (30) would mostly stay unspent
    # when a short job ends.
    clock, pacer, sent = await _to_the_first_429(quota, 0.2 / quota)
    estimate, spread = first_cycle(sent, clock.t)
    settled = pacer.settled_rate
    credit = (pacer.rate - settled) * Pacer.SPEND
    reserve = estimate - Pacer.KEEP - credit  # the pause is 1 s: the refill is the estimate
    expected = {"floor": 2 * spread, "share": 0.15 * estimate, "ceiling": 10 * spread}
    assert reserve == pytest.approx(expected[bound])
    assert credit > 0
