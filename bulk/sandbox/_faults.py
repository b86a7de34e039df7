"""Bad days on demand: the per-token quota and the seeded fault draws.

Faults are not drawn from one random stream in arrival order: the client under test sends
requests concurrently, so arrival order changes from run to run. Each draw is instead a hash
of (seed, fault kind, method, path, n), n counting the requests to that method and path, so
the n-th PUT of a given record meets the same fate on every run, whatever the interleaving.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from bulk.sandbox._config import Faults

ERROR_STATUSES = (500, 502, 503, 504)

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def proxy_page(status: int) -> str:
    """The HTML page an nginx in front of the API answers with when the app behind it fails."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            f"</body>\r\n</html>\r\n")


@dataclass(slots=True)
class Fate:
    """What happens to one request. ``delay``/``slow`` are seconds to wait before/after."""

    delay: float = 0.0
    drop: bool = False
    error_status: int | None = None
    applied_503: bool = False
    unapplied_200: bool = False
    slow: float = 0.0


class FaultDice:
    """Deterministic per-(method, path) fault draws; see the module docstring."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._seen: dict[tuple[str, str], int] = {}

    def restart(self) -> None:
        """Start every sequence over (the n-th request counts from zero again)."""
        self._seen.clear()

    def _roll(self, kind: str, method: str, path: str, n: int) -> float:
        key = f"{self._seed}\0{kind}\0{method}\0{path}\0{n}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def fate(self, method: str, path: str, faults: Faults, latency_ms: float,
             jitter_ms: float) -> Fate | None:
        """The fate of the next request to ``method path``; None when nothing happens."""
        n = self._seen.get((method, path), 0)
        self._seen[(method, path)] = n + 1
        if not (faults.any or latency_ms or jitter_ms):
            return None
        fate = Fate()
        if latency_ms or jitter_ms:
            jitter = jitter_ms * self._roll("jitter", method, path, n) if jitter_ms else 0.0
            fate.delay = (latency_ms + jitter) / 1000.0
        if faults.drop_rate and self._roll("drop", method, path, n) < faults.drop_rate:
            fate.drop = True
        elif faults.error_rate and self._roll("error", method, path, n) < faults.error_rate:
            pick = self._roll("status", method, path, n)
            fate.error_status = ERROR_STATUSES[int(pick * len(ERROR_STATUSES))]
        elif (method == "PUT" and faults.applied_503_rate
              and self._roll("applied_503", method, path, n) < faults.applied_503_rate):
            fate.applied_503 = True
        elif (method == "PUT" and faults.unapplied_200_rate
              and self._roll("unapplied_200", method, path, n) < faults.unapplied_200_rate):
            fate.unapplied_200 = True
        elif faults.slow_rate and self._roll("slow", method, path, n) < faults.slow_rate:
            fate.slow = faults.slow_ms / 1000.0
        return fate


class Quota:
    """A token bucket per access token: ``rate`` requests per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: float | None, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # token -> (tokens, at)

    def take(self, key: str) -> int:
        """0 when the request may go ahead, else the whole seconds to wait (>= 1)."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0
        self._buckets[key] = (tokens, now)
        # The epsilon keeps float noise (0.5 / 0.5 = 1.0000000001) from adding a second.
        return max(1, math.ceil((1.0 - tokens) / self.rate - 1e-9))

    @property
    def limit(self) -> int:
        """X-RateLimit-Limit: the most requests the bucket lets through at once."""
        return max(1, int(self.burst))

    def remaining(self, key: str) -> int:
        """X-RateLimit-Remaining: whole requests the bucket would let through now."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        return int(min(self.burst, tokens + max(0.0, now - at) * self.rate) + 1e-9)

    def seconds_to_next(self, key: str) -> float:
        """Seconds until the bucket lets one request through again (0: now)."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        return max(0.0, (1.0 - tokens) / self.rate)
