"""The outage breaker: when the API is down, every worker waits instead of spending rows.

A run of consecutive transport errors or 5xx answers, across several records, means the
API (or the way to it) is down, not that these rows are bad. The breaker then opens:
every request waits at its door, and one at a time a probe goes out after a growing
wait. The first answer that is not a 5xx closes it and the job goes on by itself.
Failures while it is open are flagged `outage` so they do not spend the rows' attempts
(see retry.spends_attempt). After `limit` seconds of continuous outage it gives up:
`OutageError` stops the job, rows not done stay pending.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from bulk.engine.clock import Clock, LoopClock
from bulk.engine.errors import StopJob


class OutageError(StopJob):
    """The API stayed unreachable longer than the outage limit.

    `outage` says so in words, without the job's advice to resume, for callers that have
    nothing to resume (select, the member list)."""

    how = "outage"

    def __init__(self, outage: str) -> None:
        super().__init__(f"{outage}; run again to resume")
        self.outage = outage


class Breaker:
    #: This many consecutive transient failures, over at least DISTINCT different
    #: records, open the breaker. A bad day's scattered 5xx (one in twenty, say) almost
    #: never lines up 8 in a row; an outage does within a second.
    THRESHOLD = 8
    DISTINCT = 3
    FIRST_WAIT = 1.0
    MAX_WAIT = 30.0

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        limit: float,  # seconds of continuous outage, then stop (the option table's default)
        on_outage: Callable[[float, float], None] | None = None,
        threshold: int | None = None,
        distinct: int | None = None,
    ) -> None:
        self._clock = clock or LoopClock()
        self.limit = limit
        self._on_outage = on_outage
        # A caller whose requests are one stream (select pages through one list) has no
        # other records to tell a bad one from an outage: it lowers both (see api.py).
        self.threshold = self.THRESHOLD if threshold is None else threshold
        self.distinct = self.DISTINCT if distinct is None else distinct
        self._recent: deque[str] = deque(maxlen=self.threshold)  # paths of the streak
        self._opened_at: float | None = None
        self._next_probe = 0.0
        self._wait = self.FIRST_WAIT
        self._gave_up = False
        self._lock = asyncio.Lock()  # held by the one probe in flight
        self.outages = 0
        self.outage_seconds = 0.0
        self.probes = 0

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    async def admit(self) -> bool:
        """Wait while the API is down. True when this request goes out as the probe: the
        caller must then report it (`answered`, `failed` or `release`)."""
        if not self.is_open and not self._gave_up:
            return False
        await self._lock.acquire()
        try:
            while self.is_open or self._gave_up:
                now = self._clock.now()
                assert self._opened_at is not None or self._gave_up
                deadline = (self._opened_at or now) + self.limit
                if self._gave_up or now >= deadline:
                    self._give_up(now)
                wait = self._next_probe - now
                if wait > 0:
                    await self._clock.sleep(min(wait, deadline - now))
                    continue
                self.probes += 1
                return True  # the lock stays held until the probe is reported
        except BaseException:
            self._lock.release()
            raise
        self._lock.release()
        return False

    def answered(self, probe: bool) -> None:
        """An answer that is not a 5xx (a 4xx or 429 too): the API is up."""
        self._recent.clear()
        if self._opened_at is not None:
            now = self._clock.now()
            self.outage_seconds += now - self._opened_at
            if self._on_outage is not None:
                self._on_outage(self._opened_at, now)
            self._opened_at = None
            self._wait = self.FIRST_WAIT
        self.release(probe)

    def failed(self, path: str, probe: bool) -> bool:
        """A transport error or 5xx. True when it belongs to an outage (the breaker is
        open now), so it must not spend the row's attempts."""
        now = self._clock.now()
        self._recent.append(path)
        if self._opened_at is None:
            if len(self._recent) >= self.threshold and len(set(self._recent)) >= self.distinct:
                self._opened_at = now
                self.outages += 1
                self._wait = self.FIRST_WAIT
                self._next_probe = now + self._wait
        elif probe:
            self._wait = min(self.MAX_WAIT, self._wait * 2)
            self._next_probe = now + self._wait
        self.release(probe)
        return self._opened_at is not None

    def release(self, probe: bool) -> None:
        """Give up the probe's turn without a verdict (the request was cancelled)."""
        if probe and self._lock.locked():
            self._lock.release()

    def _give_up(self, now: float) -> None:
        if not self._gave_up and self._opened_at is not None:
            self.outage_seconds += now - self._opened_at
            if self._on_outage is not None:
                self._on_outage(self._opened_at, now)
        self._gave_up = True
        minutes = self.limit / 60
        span = f"{minutes:g} min" if self.limit >= 60 else f"{self.limit:g} s"
        raise OutageError(f"the API stayed unreachable for {span}")
