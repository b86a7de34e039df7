"""The slots of a pace, kept by `aiolimiter.AsyncLimiter` (a leaky bucket).

An `AsyncLimiter`'s rate cannot be changed in place (aiolimiter issue #98), so a new pace
swaps in a new limiter; what the old one still held (its level: slots handed out and not
yet leaked away) is carried over, so a swap neither grants a fresh burst nor loses the
debt. Callers queue in our own FIFO (a lock) and only the head of the queue waits on the
limiter: after a swap everyone behind it waits on the new one, and the head itself is
woken (its wait is cancelled) and takes its slot from the new one.

Writes first. A caller may ask for its slot `first` (a row's write, its record already
read): it is served before every caller that is not. A row's read then never waits behind
reads of rows begun after it, and its write only behind other rows' writes, so when the
pace drops (a 429 after a fast climb) the reads wait, not the rows already holding one.

Time: the limiter reads our clock and schedules its wake-ups through it (`_ClockLoop`, in
place of the event loop aiolimiter would use): with the loop's clock (production) a
wake-up is the loop's own timer, with an injected clock (tests) it waits through that
clock, so its waits are skipped, not spent. Each wake-up is set `_LATE` after the moment
aiolimiter computes: a timer that fires a hair early (float residue, or a clock with
microsecond resolution such as looptime's) would otherwise find a millionth of a slot
missing and set a timer for that instant again, forever.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from aiolimiter import AsyncLimiter

from bulk.engine.clock import Clock, LoopClock

#: See the module docstring: a slot comes at most this much after its time.
_LATE = 1e-6


class _ClockLoop:
    """What aiolimiter asks of its event loop, answered on an injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._loop = asyncio.get_running_loop()

    def time(self) -> float:
        return self._clock.now()

    def is_closed(self) -> bool:
        return self._loop.is_closed()

    def create_future(self) -> asyncio.Future[None]:
        return self._loop.create_future()

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> asyncio.Handle:
        return self._loop.call_soon(callback, *args)

    def call_at(self, when: float, callback: Callable[[], Any]) -> Any:
        """A timer (with the `.cancel()` aiolimiter calls) for `when` on our clock."""
        if isinstance(self._clock, LoopClock):
            return self._loop.call_at(when + _LATE, callback)

        async def later() -> None:
            await self._clock.sleep(when + _LATE - self._clock.now())
            callback()

        return self._loop.create_task(later())


class _ClockedLimiter(AsyncLimiter):
    """An AsyncLimiter that reads and waits through our clock (see the module docstring)."""

    def __init__(self, max_rate: float, time_period: float, loop: _ClockLoop) -> None:
        super().__init__(max_rate, time_period)
        self._clock_loop = loop

    @property
    def _loop(self) -> Any:  # aiolimiter reads its loop through this property
        return self._clock_loop


def level_of(limiter: AsyncLimiter) -> float:
    """How full the limiter is, in slots, through its public `has_capacity` alone."""
    low, high = 0.0, float(limiter.max_rate)
    if limiter.has_capacity(high):
        return 0.0
    for _ in range(20):  # to ~1e-6 of the burst: far below one slot
        middle = (low + high) / 2
        if limiter.has_capacity(middle):
            low = middle
        else:
            high = middle
    return max(0.0, limiter.max_rate - low)


def _take_free(limiter: AsyncLimiter) -> bool:
    """Take one slot the limiter has room for now, without a turn of the event loop.

    aiolimiter's `acquire` returns without suspending when `has_capacity()`, so it is
    driven to its end here (only its public methods are used); False when it has no room.
    """
    if not limiter.has_capacity():
        return False
    step = limiter.acquire()
    try:
        step.send(None)
    except StopIteration:
        return True
    step.close()
    raise AssertionError("aiolimiter suspended an acquire it had room for")


class _Queue:
    """The callers waiting for a slot: those that asked `first`, then in arrival order.

    One of them at a time holds the line (the head, who waits on the limiter). When it
    lets go, the slots free at that moment go straight to the callers queued, in their
    order, and the first one none is free for holds the line next. Handing the line on
    instead to a caller that would only wake a loop turn later to take a free slot kept
    the line held, so every caller arriving meanwhile queued too: a convoy that outlived
    the wait that began it, a future and a loop turn for every slot.
    """

    def __init__(self) -> None:
        self._held = False
        self._first: deque[asyncio.Future[bool]] = deque()
        self._others: deque[asyncio.Future[bool]] = deque()

    def busy(self) -> bool:
        return self._held or bool(self._first) or bool(self._others)

    async def acquire(self, first: bool) -> bool:
        """Hold the line (False), or wait in it: True when a slot was handed over, False
        when the line was."""
        if not self.busy():
            self._held = True
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        line = self._first if first else self._others
        line.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                if not waiter.result():
                    self.release(lambda: False)  # handed the line and cancelled: pass it on
                # (a slot handed over and not used is spent, like a request not sent)
            elif waiter in line:
                line.remove(waiter)
            raise

    def release(self, grant: Callable[[], bool]) -> None:
        """Let go of the line: `grant()` takes a slot free now for the next caller queued
        (False: none is); the first caller no slot is free for holds the line."""
        for line in (self._first, self._others):
            while line:
                waiter = line.popleft()
                if waiter.done():
                    continue  # cancelled while queued
                if grant():
                    waiter.set_result(True)
                    continue
                waiter.set_result(False)  # still held: now by this waiter
                return
        self._held = False


class Slots:
    """Slots at `rate` per second with up to `burst` at once; `set_rate` swaps limiters."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._limiter: AsyncLimiter | None = None
        self._limiter_rate = 0.0
        self._carry = 0.0  # level to put into the next limiter
        self._lock = _Queue()
        self._head: asyncio.Task[None] | None = None  # the head's wait on the limiter
        self.swaps = 0

    def set_rate(self, rate: float) -> None:
        """A new pace: the next slot is taken from a new limiter at this rate."""
        if rate == self.rate:
            return
        self.rate = rate
        self._wake_head()

    def refill(self, level: float) -> None:
        """Start over with `level` slots taken (after a pause: no burst)."""
        self._limiter = None
        self._carry = level
        self._wake_head()

    def _wake_head(self) -> None:
        if self._head is not None and not self._head.done():
            self._head.cancel()

    async def _current(self) -> AsyncLimiter:
        limiter = self._limiter
        if limiter is not None and self._limiter_rate == self.rate:
            return limiter
        if limiter is not None:
            self._carry = level_of(limiter)
            self.swaps += 1
        burst = self.burst
        limiter = _ClockedLimiter(burst, burst / self.rate, _ClockLoop(self._clock))
        carry, self._carry = min(self._carry, burst), 0.0
        if carry > 0:
            await limiter.acquire(carry)  # an empty limiter: returns without suspending
        self._limiter, self._limiter_rate = limiter, self.rate
        return limiter

    def _ready(self) -> AsyncLimiter | None:
        """The limiter at the pace now, when one is in place (else the head swaps one in)."""
        limiter = self._limiter
        return limiter if limiter is not None and self._limiter_rate == self.rate else None

    def free_now(self) -> bool:
        """A slot can be taken at once: nobody is queued, and the limiter has room."""
        limiter = self._ready()
        return limiter is not None and not self._lock.busy() and limiter.has_capacity()

    def _grant(self, cooling: Callable[[], float]) -> bool:
        """Take a slot for a queued caller if one is free now (no pause, room)."""
        limiter = self._ready()
        return limiter is not None and cooling() <= 0 and _take_free(limiter)

    async def take(self, cooling: Callable[[], float], first: bool = False) -> bool:
        """Wait for a slot, first come first served; True when none had to be waited for.

        `cooling()` is the seconds left in a shared pause: the head waits it out before
        each try, and a slot won while a pause began is not used. `first`: served before
        every waiting caller that did not ask it (see the module docstring).
        """
        if not self._lock.busy() and self._grant(cooling):
            return True
        if await self._lock.acquire(first):
            return False  # queued, then handed a slot when the head let go
        waited = False
        try:
            while True:
                while (left := cooling()) > 0:
                    waited = True
                    await self._clock.sleep(left)
                limiter = await self._current()
                if _take_free(limiter):
                    return not waited
                waited = True
                head = self._head = asyncio.ensure_future(limiter.acquire())
                try:
                    await head
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if not head.cancelled() or (current is not None and current.cancelling()):
                        raise  # the caller itself is cancelled
                    continue  # a swap or a pause woke the head: look again
                finally:
                    head.cancel()
                    self._head = None
                if cooling() > 0:
                    continue  # a pause began while it waited: this slot is not used
                return False
        finally:
            self._lock.release(lambda: self._grant(cooling))
