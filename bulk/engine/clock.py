"""Time, injectable: production uses the event loop's clock, tests skip ahead instantly."""

from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SkipClock:
    """A clock whose sleeps return at once but move its time forward.

    For tests that run real I/O (where a fake event-loop clock would fire socket
    timeouts early): waits are recorded and skipped, and every task sees time move,
    so a shared cooldown still holds back every worker exactly as long as it should.
    """

    def __init__(self) -> None:
        self.skipped = 0.0
        self.sleeps: list[tuple[str, float]] = []

    def now(self) -> float:
        return asyncio.get_running_loop().time() + self.skipped

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        self.sleeps.append((task.get_name() if task else "", seconds))
        if seconds > 0:
            self.skipped += seconds
        await asyncio.sleep(0)
