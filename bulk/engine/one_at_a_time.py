"""Items that share a key run one at a time, in the order they were fed; others flow past.

Several input rows may name one record. Run at once, each would read the record before
the other's write lands and send it back without that change (a PUT re-sends what it
read). So the pool gives each key to one worker at a time: an item whose key is busy is
parked behind it, and the worker holding the key runs the parked ones after, in order.
The engine knows nothing of what a key means; the caller says (`Job(key_of=...)`).

A key whose row ended unsettled (its write may still land, or it is tried again at the
end of the job) is blocked: later rows of it are held back, so none runs before the one
before it is settled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class OneAtATime:
    def __init__(self, limit: int) -> None:
        #: Parked items at most (all workers' together): the reader waits past this, so
        #: a file of one record repeated a million times does not fill memory.
        self.limit = limit
        self._waiting: dict[str, deque[Any]] = {}  # key -> items parked behind its worker
        self._blocked: dict[str, tuple[int, bool]] = {}  # key -> (row, tried again later)
        self._parked = 0
        self._roomy = asyncio.Event()
        self._roomy.set()

    async def room(self) -> None:
        """Wait while too many items are parked (their keys' workers drain them)."""
        while self._parked >= self.limit:
            self._roomy.clear()
            await self._roomy.wait()

    def take(self, key: str | None, item: Any) -> bool:
        """True: run `item` now (its key is now this caller's). False: parked."""
        if key is None:
            return True
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = deque()
            return True
        waiting.append(item)
        self._parked += 1
        return False

    def next_for(self, key: str | None) -> Any:
        """The next item parked on `key`, or None, and the key is free again."""
        if key is None:
            return None
        waiting = self._waiting.get(key)
        if not waiting:
            self._waiting.pop(key, None)
            return None
        self._parked -= 1
        self._roomy.set()
        return waiting.popleft()

    def release(self, key: str | None) -> None:
        """Free `key` at once (its worker stops): what was parked on it is not run."""
        waiting = self._waiting.pop(key, None) if key is not None else None
        if waiting:
            self._parked -= len(waiting)
            self._roomy.set()

    def block(self, key: str | None, row: int, *, again: bool) -> None:
        """Row `row` of `key` is not settled; `again`: it is tried again in this job."""
        if key is not None:
            self._blocked[key] = (row, again)

    def blocker(self, key: str | None, row: int) -> tuple[int, bool] | None:
        """The unsettled row that holds `row` back, if any. The blocking row itself, met
        again (the end pass), unblocks its key: what follows waits on its new outcome."""
        if key is None:
            return None
        held = self._blocked.get(key)
        if held is not None and held[0] == row:
            del self._blocked[key]
            return None
        return held
