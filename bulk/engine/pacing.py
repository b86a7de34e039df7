"""One shared pacer for every request of a job: it keeps under the server's quota.

Every HTTP attempt (GET or PUT, first try or retry) passes through `Pacer.acquire`, so
retries pay for their budget. The quota belongs to the token, not to a worker, so a 429
pauses *every* worker. The slots themselves are handed out by `aiolimiter` (see slots.py);
this module decides the pace they come at.

The server's own numbers first. When answers carry `X-RateLimit-Limit` and
`X-RateLimit-Remaining` (Laravel's pair, which Tallyfy's older pages show), the pace comes
from them at once (`observe`): the refill rate is measured as what the server let through
plus how much its remaining count grew, over the last second or so, and the pace is that
rate plus whatever keeps the remaining count near a small reserve (spent within
`HORIZON` seconds). Until a second has been measured, the limit is taken as one second's
worth (the documents speak of short-window burst protection). No climb, no probing: a
429 then only pauses everyone for its Retry-After (or X-RateLimit-Reset).

Without them, the quota is found. Until the first 429 the pace climbs per round trip:
as soon as a request sent at the current pace comes back accepted while callers had to
wait for slots, the pace is multiplied by `CLIMB`, up to the ceiling (the rate the user gave, never
exceeded, or `AUTO_CEILING` with `auto`), so a fast server costs a few round trips. On a
429 that is news (sent after the last pause began), it settles at `SETTLE` of the rate
the server accepted, counted by send time up to the refused request (late answers of
requests sent before it still count while the pause lasts). Since the previous 429: a
token bucket is (nearly) empty at each 429, so in between it let through its refill
rate, whatever its burst. Before the first one: what it let through from any moment on
is at most its burst (taken as `BURST_SECONDS` of its rate) plus its rate since, so the
highest rate those moments give is the estimate (the climb may have sent below the rate
a while, with the bucket full). At the 429 the bucket held less than a request: counted
as a whole one (`HELD`), the estimate is the highest rate the answers allow, above the
rate by at most one request over the time measured (its `spread`). So the pace stands at
or just above the rate, never below it while the bucket holds stock (which would waste
quota); the stock absorbs the excess, and should it run out, the next 429 measures a
whole cycle. Everyone pauses for the Retry-After; the bucket refills meanwhile, and that
refill is spent over `SPEND` seconds after the pause, less what stays: one request
(`KEEP`, what a send at the rate needs) and a reserve for the excess (`CREDIT`,
`GUARD`). Probing upward waits
`QUIET` seconds after a 429 (the pace is at or above the rate already: a probe would
only bring the next 429 sooner, and a pause near a job's end is never won back); then by
`PROBE_FIRST` per quiet second until the next 429 (in case the server's burst is smaller
than assumed and the estimate low), then by a small step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from bulk.engine.accepted_sends import AcceptedSends
from bulk.engine.clock import Clock, LoopClock
from bulk.engine.slots import Slots

#: Float noise allowance when comparing clock readings (looptime counts in microseconds).
_EPSILON = 1e-4


class Pacer:
    """Requests per second with a small burst, a shared pause, and the quota's pace.

    Counts for a report: `rate_limited` (429s seen), `pauses` (shared pauses begun),
    `paused_seconds`. Callbacks for a later event log: `on_429(now)`,
    `on_pause(start, seconds)`.
    """

    #: On a 429, settle at this share of the rate the server accepted (counted by send
    #: time, it is the rate itself; below it a share of the quota stays unused, and an
    #: estimate a little high is corrected by the next 429, which measures a whole cycle).
    SETTLE = 1.0
    #: While quiet, every PROBE_EVERY seconds the pace climbs by PROBE_STEP of the
    #: settled pace (additive: a gentle probe, not a doubling).
    PROBE_EVERY = 1.0
    PROBE_STEP = 0.01
    #: After the first 429 only (its estimate assumed the server's burst: were the burst
    #: smaller, it would be low): PROBE_FIRST of the pace per quiet second, until the
    #: next 429 measures a whole cycle.
    PROBE_FIRST = 0.05
    #: Probing waits this long after a 429: the estimate is at or above the rate already
    #: (see HELD), so within a job of seconds a probe only brings a 429 whose pause costs
    #: the job its last second; over a long job it still finds a quota that grew.
    QUIET = 30.0
    #: Before the first 429: the pace is multiplied by CLIMB per round trip (10/s to
    #: 1000/s in four).
    CLIMB = 4.0
    AUTO_CEILING = 1000.0
    #: A 429 without Retry-After pauses everyone this long (a quota window is ~1 s).
    DEFAULT_PAUSE = 1.0
    #: Before the first 429 the server's burst is taken as this many seconds of its rate
    #: (Tallyfy's documents speak of short-window burst protection; the sandbox's bucket
    #: holds one second's worth): what it let through by then is BURST_SECONDS + the
    #: time it took, of its rate.
    BURST_SECONDS = 1.0
    #: At a 429 the server's bucket held less than one request: counted as a whole one,
    #: the estimate is the highest rate the answers allow, never below the rate (half a
    #: one, as before, put the pace at Q=5 in the benchmark 8% below the quota, and all
    #: that while the bucket stood full, wasting what it gathered).
    HELD = 1.0
    #: During a pause the server's bucket refills (the rate times the pause, at most a
    #: burst): it is spent over SPEND seconds after the pause, above the settled pace,
    #: so a pause costs no quota, less what stays in the bucket: KEEP requests (a send at
    #: the rate needs one there) and a reserve for the estimate's excess over the rate.
    #: The reserve is 1 - CREDIT of the refill, but lasts at least GUARD[0] and at most
    #: GUARD[1] seconds of the excess at its most (the spread): a reserve that runs out
    #: in a job's last seconds brings a 429 whose pause is never won back, one left
    #: unspent at its end is quota lost. (At a quota of 5 the floor is a third of the
    #: refill; at 200, the ceiling 4%.) Probing waits until it is spent.
    CREDIT = 0.85
    SPEND = 1.0
    KEEP = 1.0
    GUARD = (2.0, 10.0)
    #: Accepted requests are remembered this long for the estimate.
    WINDOW = 60.0
    #: From the headers: the server's remaining count is brought to RESERVE of its limit
    #: within HORIZON seconds; the refill rate is measured over
    #: MEASURE seconds at least.
    RESERVE = 0.1
    HORIZON = 1.0
    MEASURE = 1.0
    #: A pace from the headers replaces the current one when it differs by this share
    #: (a new limiter per answer would cost more than it gains).
    RETUNE = 0.05

    def __init__(
        self,
        rate: float,
        burst: int = 2,
        clock: Clock | None = None,
        *,
        auto: bool = False,
        start: float | None = None,
        on_429: Callable[[float], None] | None = None,
        on_pause: Callable[[float, float], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.burst = max(1, int(burst))
        self.auto = auto
        self.max_rate = self.AUTO_CEILING if auto else rate  # never exceeded
        self.min_rate = min(rate, 1.0)  # never slower than this, however many 429s
        self._clock = clock or LoopClock()
        # The pace now: it may start below the ceiling and climb to find the quota.
        self._slots = Slots(min(start, self.max_rate) if start else rate, self.burst,
                            self._clock)
        self.on_429 = on_429
        self.on_pause = on_pause
        self._cooldown_until = 0.0
        self._pause_began: float | None = None  # when the last 429 event paused everyone
        self._accepted = AcceptedSends(self.WINDOW)  # send times of requests not refused
        # The cycle the pace was settled on: (from, to, extra seconds) in send times, `to`
        # the 429 that ended it; answers arriving late for it (sent before that 429)
        # count still, while the pause lasts.
        self._cycle: tuple[float, float, float] | None = None
        self._settled = 0.0  # the pace settled on, without the credit
        self._spend_until: float | None = None
        self._accepted_total = 0
        self._changed_at: float | None = None  # when the pace last changed
        self._started: float | None = None  # the first request (the preflight, or the first slot)
        self._saturated = False  # a caller waited for its slot since the last change
        self._found = False  # a 429 has been seen: probe from now on
        self._cycles = 0  # 429 events that settled the pace
        self._step = 0.0
        self._pause = self.DEFAULT_PAUSE  # the pause that ended the last cycle
        #: (time, remaining, accepted so far) of answers with the server's numbers.
        self._told: deque[tuple[float, int, int]] = deque()
        self.limit: int | None = None  # the server's X-RateLimit-Limit, once told
        self.cooldowns = 0  # pauses begun or extended (a 429 or cool_down)
        self.pauses = 0  # distinct shared pauses
        self.waits = 0  # acquisitions that had to wait out a pause
        self.rate_limited = 0  # 429s seen
        self.paused_seconds = 0.0

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def rate(self) -> float:
        """The pace now, in requests per second."""
        return self._slots.rate

    @property
    def settled_rate(self) -> float:
        """The pace the last 429 settled on (the pace now, less the pause's credit)."""
        return self._settled if self._spend_until is not None else self.rate

    @property
    def accepted_count(self) -> int:
        """Answers that were not a 429 (the preflight's among them): what the quota let
        through, as `rate_limited` counts what it refused."""
        return self._accepted_total

    @property
    def told(self) -> bool:
        """The server states its quota in its answers' headers."""
        return self.limit is not None

    async def acquire(self, first: bool = False) -> float:
        """Wait for any pause to pass, then for a slot at the pace; returns the send time.

        Callers queue first come, first served (those asking `first`, a row's write,
        ahead of the others), and only the one at the head waits on the limiter: a
        change of pace or a pause applies at once to everyone queued.
        """
        paused = self._pause_left() > 0
        if not await self._slots.take(self._pause_left, first):
            self._saturated = True
        now = self._clock.now()
        if paused:
            self.waits += 1
        if self._changed_at is None:
            self._changed_at = now
            if self._started is None:
                self._started = now
        elif self._found and not self.told:
            if self._spend_until is not None and now >= self._spend_until:
                self._spend_until = None  # the pause's credit is spent
                self._set_rate(self._settled, now)
            self._maybe_probe(now)
        return now

    def accepted(self, sent_at: float | None = None) -> None:
        """An answer that was not a 429: the quota let that request through."""
        now = self._clock.now()
        self._accepted_total += 1
        if self.told:
            return
        sent = now if sent_at is None else sent_at
        if self._started is None:  # a request sent without a slot (the job's preflight)
            self._started = sent
        self._accepted.add(sent, now)
        cycle = self._cycle
        if cycle is not None and cycle[0] <= sent <= cycle[1] and now < self._cooldown_until:
            self._apply(now)  # a late answer of the cycle just measured
        changed = self._changed_at
        if (not self._found and self._saturated and sent_at is not None
                and changed is not None and sent_at >= changed
                and now >= self._cooldown_until and self.rate < self.max_rate):
            # A round trip at this pace, all accepted, and callers held back by it.
            self._set_rate(min(self.max_rate, self.rate * self.CLIMB), now)

    def observe(self, limit: int, remaining: int) -> None:
        """The server's X-RateLimit-Limit and X-RateLimit-Remaining on an answer."""
        now = self._clock.now()
        self.limit = max(1, limit)
        told = self._told
        told.append((now, remaining, self._accepted_total))
        while len(told) > 2 and told[1][0] <= now - self.MEASURE:
            told.popleft()
        then, before, counted = told[0]
        if now - then >= self.MEASURE / 2:
            refill = max(0.0, (self._accepted_total - counted + remaining - before)
                         / (now - then))
        else:
            refill = float(self.limit)  # one second's worth, until measured
        reserve = self.RESERVE * self.limit  # below the limit even for a bucket of 1
        pace = refill + (remaining - reserve) / self.HORIZON
        pace = max(self.min_rate, min(self.max_rate, pace))
        if abs(pace - self.rate) > self.RETUNE * self.rate:
            self._set_rate(pace, now)

    def refused(self, retry_after: float | None, sent_at: float | None = None) -> None:
        """A 429. The first one sent after the last pause began settles the pace and
        pauses everyone; the others of its storm were sent before and say nothing new."""
        now = self._clock.now()
        self.rate_limited += 1
        if self.on_429 is not None:
            self.on_429(now)
        storm = (
            self._pause_began is not None
            and sent_at is not None
            and sent_at < self._pause_began
        )
        if storm:
            if retry_after is not None:
                self.cool_down(retry_after)
            return
        pause = self.DEFAULT_PAUSE if retry_after is None else retry_after
        self._pause_began = now
        self.cool_down(pause)
        if not self.told:
            self._settle(now, now if sent_at is None else sent_at, pause)

    def _settle(self, now: float, edge: float, pause: float) -> None:
        # Counted by send time up to the refused request (`edge`). Since the 429 that
        # began the last cycle: the bucket was empty then and is empty now, so what it let
        # through is its refill rate. Before the first one, since the start, plus the
        # server's burst (BURST_SECONDS of its rate).
        if self._found and self._cycle is not None:
            start, extra = max(self._cycle[1], now - self.WINDOW), 0.0
        else:
            start = self._started if self._started is not None else now
            extra = self.BURST_SECONDS
        self._cycle = (start, edge, extra)
        self._pause = pause
        self._found = True
        self._cycles += 1
        self._apply(now)

    def _apply(self, now: float) -> None:
        """The pace from the cycle measured (again, when a late answer adds to it)."""
        assert self._cycle is not None
        start, edge, extra = self._cycle
        # A later cycle begins after the 429 that ended the last one.
        sent = self._accepted.between(start, edge, from_start=bool(extra))
        total = sum(count for _, count in sent)
        spread = 0.0
        if not sent:
            estimate = self.rate / 2
        elif not extra:
            span = max(0.05, edge - start)
            estimate, spread = (total + self.HELD) / span, 1.0 / span
        else:
            # Before the first 429 the bucket may have stayed full a while (the climb
            # sent below its rate, the refill overflowed): from any moment on, what it
            # let through is at most a burst plus its rate since, so each moment gives a
            # rate at least that high; the highest is the estimate (with HELD: at the 429
            # the bucket held part of a request). The moments are the sends (the first
            # of each bin of AcceptedSends, with all sent from then on).
            best, after = (0.0, 1.0), total
            for at, count in sent:
                span = edge - at + extra
                best = max(best, ((after + self.HELD) / span, span))
                after -= count
            estimate, span = best
            spread = 1.0 / span
        settled = max(self.min_rate, min(self.SETTLE * estimate, self.max_rate))
        self._settled = settled
        self._step = (self.PROBE_FIRST if self._cycles == 1 else self.PROBE_STEP) * settled
        # The bucket refilled during the pause: spend it after, over SPEND s, less one
        # request and a reserve for the estimate's excess over the rate (the spread).
        refill = estimate * min(self._pause, self.BURST_SECONDS)
        reserve = min(max((1 - self.CREDIT) * refill, self.GUARD[0] * spread),
                      self.GUARD[1] * spread)
        credit = max(0.0, refill - self.KEEP - reserve)
        self._spend_until = self._cooldown_until + self.SPEND
        self._set_rate(min(self.max_rate, settled + credit / self.SPEND), now)

    def cool_down(self, seconds: float) -> None:
        """Hold back every caller of `acquire` for `seconds` from now (never shortens)."""
        now = self._clock.now()
        until = now + max(0.0, seconds)
        if until <= self._cooldown_until:
            return
        self.cooldowns += 1
        if self._cooldown_until > now:  # an extension of the pause in progress
            self.paused_seconds += until - self._cooldown_until
        else:
            self.pauses += 1
            self.paused_seconds += until - now
            if self.on_pause is not None:
                self.on_pause(now, until - now)
        self._cooldown_until = until
        # No burst after a pause: the server has just said "too many". The first slot is
        # at its end, the next ones at the pace.
        self._slots.refill(self.burst - 1)

    def _maybe_probe(self, now: float) -> None:
        assert self._changed_at is not None
        if (now - self._changed_at < self.PROBE_EVERY or now < self._cooldown_until
                or self._spend_until is not None):
            return
        if not self._saturated or self.rate >= self.max_rate:
            # Not held back by the pace (the workers or the network are the limit):
            # a higher pace would change nothing, so it is not raised.
            self._changed_at = now
            self._saturated = False
            return
        if self._pause_began is not None and now - self._pause_began < self.QUIET:
            return  # the estimate is at or above the rate: see QUIET
        step = self.PROBE_FIRST * self.rate if self._cycles == 1 else self._step
        self._set_rate(min(self.max_rate, self.rate + step), now)

    def _set_rate(self, rate: float, now: float) -> None:
        self._slots.set_rate(rate)
        self._changed_at = now
        self._saturated = False

    def rows_in_flight(self, window: float, requests_per_row: int = 2) -> int:
        """How many rows may be under way so that none waits longer than `window` for
        the slots of its requests at the pace now (at least one). Half the window is
        kept for what the pace does not see: round trips, and a pause after a 429."""
        return max(1, int(self.rate * window / 2 / requests_per_row))

    def _pause_left(self) -> float:
        left = self._cooldown_until - self._clock.now()
        return left if left > _EPSILON else 0.0

    def cooling_for(self) -> float:
        """Seconds left in the current pause (0 when none)."""
        return max(0.0, self._cooldown_until - self._clock.now())
