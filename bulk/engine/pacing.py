"""One shared pacer for every request of a job: a steady rate plus a shared cooldown.

Every HTTP attempt (GET or PUT, first try or retry) passes through `Pacer.acquire`, so
retries pay for their budget. A 429 calls `cool_down`, which holds back *every* worker,
not only the one that was refused: the server's quota is per token, not per worker.
"""

from __future__ import annotations

from collections.abc import Callable

from aiolimiter import AsyncLimiter

from bulk.engine.clock import Clock, LoopClock

#: Told of what holds the job back, as it happens: ("429", None) for each 429 answer,
#: ("pause", seconds) when a cooldown starts or grows. The ledger records them.
EventHook = Callable[[str, float | None], None]


class Pacer:
    """Requests per second with a small burst, and a cooldown that all callers obey.

    Create it inside the running event loop (aiolimiter binds to the loop it first
    runs in).
    """

    #: On a 429 the pace drops to this share of itself; the quota is found, not trusted.
    SLOW_DOWN = 0.7
    #: Without a 429 for this long, the pace climbs back by RECOVER, up to the rate asked.
    RECOVER_AFTER = 10.0
    RECOVER = 1.2

    def __init__(self, rate: float, burst: int = 2, clock: Clock | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        burst = max(1, int(burst))
        self.max_rate = rate  # what the user asked for: never exceeded
        self.min_rate = min(rate, 1.0)  # never slower than this, however many 429s
        self.rate = rate  # the pace now
        self.burst = burst
        self._limiter = self._new_limiter()
        self._clock = clock or LoopClock()
        self._cooldown_until = 0.0
        self._paced_since: float | None = None  # when the pace last changed
        self.cooldowns = 0  # how many times a 429 (or similar) paused everyone
        self.waits = 0  # how many acquisitions had to wait out a cooldown
        self.on_event: EventHook | None = None

    @property
    def clock(self) -> Clock:
        return self._clock

    async def acquire(self) -> None:
        """Wait for any cooldown to pass, then for a slot at the steady rate."""
        waited = False
        while True:
            # A loop, not one sleep: another 429 may extend the cooldown while we wait.
            while (remaining := self._cooldown_until - self._clock.now()) > 0:
                waited = True
                await self._clock.sleep(remaining)
            await self._limiter.acquire()
            # A 429 may have arrived while we queued for a slot: then this slot falls
            # inside the cooldown, so wait it out and queue again at the steady rate.
            if self._cooldown_until <= self._clock.now():
                break
        if waited:
            self.waits += 1
        self._maybe_recover()

    def cool_down(self, seconds: float) -> None:
        """Hold back every caller of `acquire` for `seconds` from now (never shortens)."""
        until = self._clock.now() + max(0.0, seconds)
        if until > self._cooldown_until:
            self._cooldown_until = until
            self.cooldowns += 1
            self.note("pause", max(0.0, seconds))

    def note(self, kind: str, seconds: float | None = None) -> None:
        """Pass an event to `on_event`, if anyone listens."""
        if self.on_event is not None:
            self.on_event(kind, seconds)

    def slow_down(self) -> None:
        """Lower the pace after a 429 (one storm of 429s counts once).

        429s that arrive while a cooldown holds were sent before it began: they say
        nothing new about the quota, so they do not lower the pace again.
        """
        now = self._clock.now()
        if now < self._cooldown_until:
            return
        self._set_rate(max(self.min_rate, self.rate * self.SLOW_DOWN), now)

    def _maybe_recover(self) -> None:
        if self.rate >= self.max_rate or self._paced_since is None:
            return
        now = self._clock.now()
        if now - self._paced_since >= self.RECOVER_AFTER:
            self._set_rate(min(self.max_rate, self.rate * self.RECOVER), now)

    def _set_rate(self, rate: float, now: float) -> None:
        self.rate = rate
        self._paced_since = now
        # Callers already queued in the old limiter finish there; new ones use the new pace.
        self._limiter = self._new_limiter()

    def _new_limiter(self) -> AsyncLimiter:
        # aiolimiter starts with a full bucket of `max_rate`: a bucket of `burst` drained
        # over burst/rate seconds keeps the long-run rate while allowing only a small burst.
        return AsyncLimiter(self.burst, self.burst / self.rate)

    def cooling_for(self) -> float:
        """Seconds left in the current cooldown (0 when none)."""
        return max(0.0, self._cooldown_until - self._clock.now())
