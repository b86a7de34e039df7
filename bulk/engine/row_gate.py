"""A bound on rows under way, set by what the pace can serve within a row's window.

A row reads its record, then waits for a slot for its write. If more rows are under way
than the pace serves within the window a read stays usable (row_applier's
MAX_READ_AGE), the last of them finds its read too old when its write slot comes and
reads again: a request wasted, at any quota, whatever `--concurrency` says. So a row
begins only while fewer than `limit()` rows are under way, `limit()` being asked afresh
each time (it follows the pace). Waiting rows begin first come, first served.

A row let in after its job began to stop (Ctrl-C) does not begin: the wait at the gate
can be long (32 rows behind a pace of a few a second), and a stop finishes only the rows
under way. The job's row context says so (`stopping`); the row raises NotBegun.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from bulk.engine.errors import NotBegun

T = TypeVar("T")


class RowGate:
    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._busy = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.held_back = 0  # rows that had to wait to begin

    @property
    def busy(self) -> int:
        return self._busy

    async def enter(self) -> None:
        if not self._waiting and self._busy < self._limit():
            self._busy += 1
            return
        self.held_back += 1
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter  # _wake counted this row as busy before waking it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # woken and cancelled at once: hand its place on
            elif waiter in self._waiting:  # (_wake drops cancelled waiters itself)
                self._waiting.remove(waiter)
            raise

    def leave(self) -> None:
        self._busy -= 1
        self._wake()

    def _wake(self) -> None:
        limit = self._limit()
        while self._waiting and self._busy < limit:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._busy += 1
                waiter.set_result(None)

    def wrap(self, handler: Callable[..., Awaitable[T]]) -> Gated[T]:
        """`handler` run inside the gate."""
        return Gated(self, handler)


class Gated(Generic[T]):
    """A handler that runs inside a gate; its other attributes are the handler's."""

    def __init__(self, gate: RowGate, handler: Callable[..., Awaitable[T]]) -> None:
        self.gate = gate
        self.handler = handler

    async def __call__(self, *args: Any) -> T:
        await self.gate.enter()
        try:
            if any(getattr(arg, "stopping", False) for arg in args):
                raise NotBegun("stopped before the row began")
            return await self.handler(*args)
        finally:
            self.gate.leave()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handler, name)
