"""One shared pacer for every request of a job: it finds the server's quota and keeps under it.

Every HTTP attempt (GET or PUT, first try or retry) passes through `Pacer.acquire`, so
retries pay for their budget. The quota belongs to the token, not to a worker, so a 429
pauses *every* worker.

How the quota is found (no document states it): the pacer counts what the server accepted.
On a 429 that is news (sent after the last pause began), it settles at `SETTLE` of the
rate the server accepted since the previous 429, pauses everyone for the Retry-After
(short; not also a reason to cut the pace hard), then probes upward by a small step per
quiet second. Why "since the previous 429": a token-bucket quota is empty at each 429, so
between two of them it let through exactly its refill rate, whatever its burst size. The
first 429 has no previous one; the last second stands in, and the next cycle corrects it.
Until the first 429 the pace doubles each quiet second from its `start`, so a quota above
the start is found too, up to the ceiling: the rate the user gave (never exceeded), or
`AUTO_CEILING` with `auto`. Starting low rather than at a high ceiling keeps the first
storm of 429s small.

The slots are kept by a small GCRA scheduler on the injected clock rather than a library
limiter: the pace changes while callers wait, and tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from bulk.engine.clock import Clock, LoopClock

#: Float noise allowance when comparing clock readings (looptime counts in microseconds).
_EPSILON = 1e-4


class Pacer:
    """Requests per second with a small burst, a shared pause, and quota discovery.

    Counts for a report: `rate_limited` (429s seen), `pauses` (shared pauses begun),
    `paused_seconds`. Callbacks for a later event log: `on_429(now)`,
    `on_pause(start, seconds)`.
    """

    #: On a 429, settle at this share of the rate the server accepted.
    SETTLE = 0.95
    #: While quiet, every PROBE_EVERY seconds the pace climbs by PROBE_STEP of the
    #: settled pace (additive: a gentle probe, not a doubling).
    PROBE_EVERY = 1.0
    PROBE_STEP = 0.01
    #: Before the first 429: the pace doubles every CLIMB_EVERY quiet seconds, up to the
    #: ceiling (a quota of 200/s is reached from 10/s in ~2 s).
    CLIMB = 2.0
    CLIMB_EVERY = 0.5
    AUTO_CEILING = 1000.0
    #: A 429 without Retry-After pauses everyone this long (a quota window is ~1 s).
    DEFAULT_PAUSE = 1.0
    #: Accepted requests are remembered this long for the estimate.
    WINDOW = 60.0

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
        # The pace now: it may start below the ceiling and climb to find the quota.
        self.rate = min(start, self.max_rate) if start else rate
        self._clock = clock or LoopClock()
        self.on_429 = on_429
        self.on_pause = on_pause
        self._tat: float | None = None  # GCRA: theoretical arrival time of the next slot
        self._lock = asyncio.Lock()
        self._cooldown_until = 0.0
        self._pause_began: float | None = None  # when the last 429 event paused everyone
        self._accepted: deque[float] = deque()  # times of answers that were not 429
        self._changed_at: float | None = None  # when the pace last changed
        self._started: float | None = None  # the first slot
        self._pause_ended = float("-inf")  # when the last 429's pause ended
        self._saturated = False  # a caller waited for its slot since the last change
        self._found = False  # a 429 has been seen: probe gently from now on
        self._step = 0.0
        self.cooldowns = 0  # pauses begun or extended (a 429 or cool_down)
        self.pauses = 0  # distinct shared pauses
        self.waits = 0  # acquisitions that had to wait out a pause
        self.rate_limited = 0  # 429s seen
        self.paused_seconds = 0.0

    @property
    def clock(self) -> Clock:
        return self._clock

    async def acquire(self) -> float:
        """Wait for any pause to pass, then for a slot at the pace; returns the send time.

        Callers queue on a lock (first come, first served) and only the one at the head
        sleeps: a change of pace or a pause applies at once to everyone still queued,
        and an injected clock sees one sleep at a time.
        """
        waited = self._cooldown_until - self._clock.now() > _EPSILON
        async with self._lock:
            while True:
                now = self._clock.now()
                remaining = self._cooldown_until - now
                if remaining > _EPSILON:
                    waited = True
                    await self._clock.sleep(remaining)
                    continue
                interval = 1.0 / self.rate
                tat = now if self._tat is None else max(self._tat, now)
                delay = tat - (self.burst - 1) * interval - now
                if delay > _EPSILON:
                    self._saturated = True
                    rate = self.rate
                    self._maybe_probe(now)  # held back by the pace: it may climb now
                    if self.rate != rate:
                        continue
                    # Then look again: a 429 may have paused everyone meanwhile, and the
                    # pace may climb before this slot comes (never sleep past a probe).
                    await self._clock.sleep(min(delay, self._probe_every()))
                    continue
                self._tat = tat + interval
                break
        if waited:
            self.waits += 1
        if self._started is None:
            self._started = now
        self._maybe_probe(now)
        return now

    def accepted(self) -> None:
        """An answer that was not a 429: the quota let that request through."""
        now = self._clock.now()
        self._accepted.append(now)
        if self._changed_at is None:
            self._changed_at = now
        while self._accepted and self._accepted[0] < now - self.WINDOW:
            self._accepted.popleft()

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
        self._settle(now)
        self._pause_began = now
        self.cool_down(self.DEFAULT_PAUSE if retry_after is None else retry_after)
        self._pause_ended = self._cooldown_until

    def _settle(self, now: float) -> None:
        if self._found:
            # A whole cycle, from the 429 that began the last pause: the bucket was
            # empty then and is empty now, so what it let through is its refill rate.
            assert self._pause_began is not None
            start = max(self._pause_began, now - self.WINDOW)
        else:
            # Still climbing: the last second at the pace (not the pause before it).
            start = max(now - 1.0, self._started if self._started is not None else now,
                        self._pause_ended)
        count = sum(1 for at in self._accepted if at >= start)
        estimate = count / max(0.05, now - start) if count else self.rate / 2
        if not self._found and (now - start < 0.5 or estimate >= self.SETTLE * self.rate):
            # Too early to measure (answers still in flight), or the server took all we
            # sent at this pace: the 429 is about a burst (ours larger than its bucket),
            # not the rate. Pause, keep climbing.
            return
        rate = max(self.min_rate, min(self.rate, self.SETTLE * estimate, self.max_rate))
        self._found = True
        self._step = self.PROBE_STEP * rate
        self._set_rate(rate, now)

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
        self._tat = until + (self.burst - 1) / self.rate

    def _maybe_probe(self, now: float) -> None:
        if self._changed_at is None:
            self._changed_at = now
            return
        every = self._probe_every()
        if now - self._changed_at < every or now < self._cooldown_until:
            return
        if not self._saturated or self.rate >= self.max_rate:
            # Not held back by the pace (the workers or the network are the limit):
            # a higher pace would change nothing, so it is not raised.
            self._changed_at = now
            self._saturated = False
            return
        if self._found:
            rate = self.rate + self._step
        else:
            rate = self.rate * self.CLIMB
        self._set_rate(min(self.max_rate, rate), now)

    def _probe_every(self) -> float:
        if self.rate >= self.max_rate:
            return float("inf")
        return self.PROBE_EVERY if self._found else self.CLIMB_EVERY

    def _set_rate(self, rate: float, now: float) -> None:
        if self._tat is not None and self._tat > now:
            # Slots already handed out are a debt counted in the old pace's intervals:
            # re-priced at the new pace, or a burst taken at a low starting pace would
            # hold everyone back for burst/start seconds however fast the pace climbs.
            self._tat = now + (self._tat - now) * self.rate / rate
        self.rate = rate
        self._changed_at = now
        self._saturated = False

    def cooling_for(self) -> float:
        """Seconds left in the current pause (0 when none)."""
        return max(0.0, self._cooldown_until - self._clock.now())
