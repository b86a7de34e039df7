"""What a row handler sees of the job: its item, and the one thing it may ask (the in-doubt
mark before a write); and what a progress display is told (`Observer`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bulk.engine.ledger import IN_DOUBT, Entry, Ledger


@dataclass(slots=True)
class WorkItem:
    row: int
    payload: Any
    #: The entry an earlier run left for this row (in_doubt, pending or failed), if any.
    previous: Entry | None = None
    #: Items with one key run one at a time, in the order they were fed (None: no order).
    key: str | None = None


class RowContext:
    """What a handler may ask of the job while it works on one row."""

    def __init__(self, ledger: Ledger, item: WorkItem,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self._ledger = ledger
        self.item = item
        self._stopping = stopping
        previous = item.previous
        #: The in-doubt entry the ledger holds for this row (from an earlier run, or
        #: from `mark_in_doubt` in this one), with the before-values to keep.
        self.doubt_entry: Entry | None = (
            previous if previous is not None and previous.status == IN_DOUBT else None
        )

    @property
    def stopping(self) -> bool:
        """The job is stopping: a row that has not begun yet should not (NotBegun)."""
        return self._stopping()

    @property
    def in_doubt(self) -> bool:
        """A write for this row may have reached the server."""
        return self.doubt_entry is not None

    async def mark_in_doubt(self, entry: Entry) -> None:
        """Record, durably, that a write is about to be sent for this row.

        Returns only once committed: if the process dies after the write leaves, the
        ledger already says the row is in doubt and holds its before-values.
        """
        entry.status = IN_DOUBT
        await self._ledger.record_durably(entry)
        self.doubt_entry = entry


Handler = Callable[[WorkItem, RowContext], Awaitable[Entry]]


class Observer(Protocol):
    """Progress display hooks (a terminal bar, or nothing)."""

    def start(self, total: int) -> None: ...

    def advance(self, entry: Entry | None) -> None: ...

    def skip(self, count: int) -> None: ...

    def close(self) -> None: ...


class Silent:
    """No progress shown (tests, `-q`)."""

    def start(self, total: int) -> None:
        pass

    def advance(self, entry: Entry | None) -> None:
        pass

    def skip(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass
