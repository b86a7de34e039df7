"""The retry policy: what is worth another attempt, and how long to wait before it.

`should_retry` is the one place that decides "retry or not". Everything transient (429,
5xx, a dropped connection, a timeout, a 2xx without the record, a read grown too old to
write from) is retried; every other 4xx and every 3xx is final, and a cancellation never
is (only exception *types we name* are retried).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from bulk.engine.clock import Clock
from bulk.engine.errors import (
    AmbiguousAnswer,
    AuthError,
    HttpError,
    RequestError,
    StaleRead,
    TransportError,
)

T = TypeVar("T")

#: A hostile or mistaken Retry-After must not park a job for hours.
MAX_RETRY_AFTER = 120.0


def should_retry(exc: BaseException) -> bool:
    """True when another attempt may succeed: 429, any 5xx, or no usable answer.

    A redirect (3xx) is final: it is never followed, and asking again gets it again.
    """
    if isinstance(exc, AuthError):
        return False
    if isinstance(exc, HttpError):
        return exc.status == 429 or 500 <= exc.status <= 599
    return isinstance(exc, TransportError | AmbiguousAnswer | StaleRead)


#: A row refused for the quota (or during an outage) retries without spending its
#: attempts, but not forever: past this many free retries it ends like any other.
MAX_FREE_RETRIES = 200


def spends_attempt(exc: BaseException) -> bool:
    """False for a failure that is the job's, not the row's: a 429 (the quota belongs to
    the job) or a failure during an outage the breaker declared."""
    if isinstance(exc, HttpError) and exc.status == 429:
        return False
    return not (isinstance(exc, RequestError) and exc.outage)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), clamped.

    None when absent or unreadable, so the caller falls back to its own backoff.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from X-RateLimit-Reset (a Unix time, as Laravel sends it), clamped
    like Retry-After; None when absent or unreadable."""
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    if reset != reset:  # NaN
        return None
    seconds = reset - (time.time() if now is None else now)
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and the exponential backoff with full jitter between them."""

    max_attempts: int = 5
    base: float = 0.5  # first backoff is up to `base` seconds
    cap: float = 30.0  # no single backoff is longer than this

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter exponential backoff after the `attempt`-th failure (1-based)."""
        # The exponent is bounded: 2**2000 does not fit a float (OverflowError), and
        # far below that the cap has long been reached anyway.
        ceiling = min(self.cap, self.base * (2 ** min(attempt - 1, 64)))
        return ceiling * rng()

    def wait_after(self, exc: BaseException | None, attempt: int) -> float:
        """How long the worker that failed waits before its next attempt.

        A 429 returns 0: the pacer's shared cooldown already holds back every worker,
        this one included, for the server's Retry-After. So does a failure during an
        outage: the breaker holds every worker until the API answers again.
        """
        if exc is not None and not spends_attempt(exc):
            return 0.0
        if isinstance(exc, HttpError) and exc.retry_after is not None:
            return exc.retry_after  # a 503 may say when to come back, too
        return self.backoff(attempt)

    def retrying(self, clock: Clock) -> AsyncRetrying:
        """A fresh tenacity controller (they hold per-call state, so never share one)."""

        spent = 0
        free = 0

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_after(exc, max(1, spent))

        def stop(state: RetryCallState) -> bool:
            # Called once per retryable failure. Only the row's own failures count
            # towards max_attempts (see spends_attempt).
            nonlocal spent, free
            exc = state.outcome.exception() if state.outcome else None
            if exc is not None and not spends_attempt(exc):
                free += 1
                return free > MAX_FREE_RETRIES
            spent += 1
            return spent >= self.max_attempts

        return AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(should_retry),
            sleep=clock.sleep,
            reraise=True,
        )

    async def run(self, clock: Clock, call: Callable[[int], Awaitable[T]]) -> T:
        """`call(attempt_number)` until it returns, retried as `retrying` says.

        The first attempt runs bare: tenacity's controller costs tens of microseconds per
        call, as much as the rest of a row, and almost every row succeeds at once. Only a
        first failure that `should_retry` accepts starts the controller, which is handed
        that failure as its own attempt 1, so counting, waits and the final error are
        tenacity's exactly as if it had run from the start.
        """
        try:
            return await call(1)
        except Exception as exc:  # never a cancellation: that is no Exception
            if not should_retry(exc):
                raise
            first: Exception | None = exc
        async for attempt in self.retrying(clock):
            with attempt:
                if first is not None:
                    failed, first = first, None
                    raise failed
                return await call(attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity returns or raises (reraise=True)")
