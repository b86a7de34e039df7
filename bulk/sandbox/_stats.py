"""What the sandbox saw: counters and a bounded journal of requests."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, NamedTuple


class JournalEntry(NamedTuple):
    """One API request. ``status`` is None when the connection was dropped without an answer;
    ``fault`` names the fault or refusal that shaped the answer (``"drop"``, ``"error"``,
    ``"applied_503"``, ``"slow"``, ``"rate_limited"``), None for an ordinary answer.
    ``time`` is the sandbox clock (monotonic seconds by default) when the request arrived.
    ``body`` is a write's body as the sandbox received it (parsed JSON, else the text; None
    for a read): what tests check a client really sent."""

    time: float
    method: str
    path: str
    status: int | None
    request_id: str
    fault: str | None = None
    body: Any = None

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class Stats:
    """Counters for tests and benchmarks. Only the real-API routes count, not ``/_sandbox``.

    ``writes_per_record`` counts writes that were APPLIED (applied-then-503 and slow ones
    included), by record id; ``rate_limited`` the 429s; ``peak_concurrency`` the most requests
    in progress inside the sandbox at once; ``journal`` keeps the last ``journal_size``
    requests, so memory stays flat in long benchmarks.

    With no latency the sandbox answers each request before reading the next, so
    ``peak_concurrency`` stays 1 however many a client sends; give it some ``latency_ms`` to
    see a client's real concurrency.
    """

    def __init__(self, journal_size: int) -> None:
        self.requests = 0
        self.rate_limited = 0
        self.in_flight = 0
        self.peak_concurrency = 0
        self.writes_per_record: Counter[str] = Counter()
        self.statuses: Counter[int | None] = Counter()
        self.faults: Counter[str] = Counter()
        self.journal: deque[JournalEntry] = deque(maxlen=journal_size)

    @property
    def writes(self) -> int:
        return sum(self.writes_per_record.values())

    def reset(self) -> None:
        """Zero everything in place (references to the counters stay valid); requests still
        in progress keep counting toward the peak."""
        self.requests = self.rate_limited = 0
        self.peak_concurrency = self.in_flight
        self.writes_per_record.clear()
        self.statuses.clear()
        self.faults.clear()
        self.journal.clear()

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "writes": self.writes,
            "writes_per_record": dict(self.writes_per_record),
            "rate_limited": self.rate_limited,
            "in_flight": self.in_flight,
            "peak_concurrency": self.peak_concurrency,
            "statuses": {("dropped" if k is None else str(k)): v
                         for k, v in sorted(self.statuses.items(), key=lambda kv: kv[0] or 0)},
            "faults": dict(self.faults),
            "journal_size": len(self.journal),
        }
