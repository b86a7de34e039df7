"""A second chance for rows whose attempts ran out on transient errors.

A run of 5xx or dropped connections can outlast one row's attempts and be over a minute
later. Such rows (recorded `failed` with error_kind "transient") are kept here and
handed out again in one pass at the end of the job, after a pause. Rows left `in_doubt`
are not: as before, the next run settles them by reading the record back. Rows are
recorded before they wait here, so a crash loses nothing: a plain re-run retries
transient failures too.
"""

from __future__ import annotations

from typing import Any

from bulk.engine.ledger import FAILED, Entry
from bulk.engine.stops import TRANSIENT

#: Seconds between the end of the main pass and the second chance.
SECOND_CHANCE_PAUSE = 30.0
#: Rows kept in memory for it; past this, the rest wait for a re-run (memory stays flat).
MAX_KEPT = 10_000


class SecondChance:
    def __init__(self, pause: float = SECOND_CHANCE_PAUSE, limit: int = MAX_KEPT) -> None:
        self.pause = pause
        self.limit = limit
        self._kept: list[tuple[int, Any, Entry]] = []
        self._passed = False  # the end pass has begun: no third chance

    @staticmethod
    def deserves(entry: Entry) -> bool:
        return entry.status == FAILED and entry.error_kind == TRANSIENT

    def offer(self, row: int, payload: Any, entry: Entry) -> None:
        if not self._passed and len(self._kept) < self.limit and self.deserves(entry):
            self._kept.append((row, payload, entry))

    def hold(self, row: int, payload: Any, entry: Entry) -> None:
        """Keep a row held back behind a row of its record that is kept here (it runs
        after it, in row order)."""
        if not self._passed and len(self._kept) < self.limit:
            self._kept.append((row, payload, entry))

    @property
    def passing(self) -> bool:
        """The end pass has begun (every row handed out now is one tried again)."""
        return self._passed

    def take(self) -> list[tuple[int, Any, Entry]]:
        """The rows for the end pass (once), in row order."""
        self._passed = True
        kept, self._kept = sorted(self._kept, key=lambda kept: kept[0]), []
        return kept
