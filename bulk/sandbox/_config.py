"""What a sandbox is started with: the data to serve, the quota and the faults."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bulk.sandbox._form_fields import FORM_FIELD_SHAPES

#: Longer than the 30 s a client (the official SDK included) usually waits, so a slow
#: answer really is "the server did it, the client gave up".
DEFAULT_SLOW_MS = 35_000.0


def _check_probability(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class Faults:
    """Probabilities of the bad-day events, each drawn per request, deterministic under the seed.

    ``error_rate``: a 500/502/503/504 with an HTML body, as a proxy sends it; nothing applied.
    ``drop_rate``: the connection is closed with no answer at all; nothing applied.
    ``applied_503_rate`` (PUT only): the write IS applied, then answered 503.
    ``unapplied_200_rate`` (PUT only): the write is NOT applied, and answered 200 with the
    record as it was (the old values), as when the API drops what it ignores.
    ``slow_rate``: the answer comes ``slow_ms`` late; a PUT is applied before the wait.
    """

    error_rate: float = 0.0
    drop_rate: float = 0.0
    applied_503_rate: float = 0.0
    unapplied_200_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = DEFAULT_SLOW_MS

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate", "applied_503_rate", "unapplied_200_rate",
                     "slow_rate"):
            _check_probability(name, getattr(self, name))
        if not isinstance(self.slow_ms, int | float) or not self.slow_ms >= 0:
            raise ValueError(f"slow_ms must be a number >= 0, got {self.slow_ms!r}")

    @property
    def any(self) -> bool:
        """True when at least one fault can happen (the request path skips the draws if not)."""
        return bool(self.error_rate or self.drop_rate or self.applied_503_rate
                    or self.unapplied_200_rate or self.slow_rate)

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Faults | None = None) -> Faults:
        """``base`` with the keys of ``data`` replaced; unknown keys are a ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        values = (base or cls()).to_dict()
        values.update(data)
        return cls(**values)


@dataclass(slots=True)
class SandboxConfig:
    """Everything a :class:`~bulk.sandbox.Sandbox` needs; every field has a usable default.

    ``data`` (a path to an org JSON file, or such an org as a dict) wins over generation
    from ``runs``/``templates``/``seed``.
    ``token`` and ``org_id`` default to the data file's, else to values derived from ``seed``.
    ``rate_limit`` is requests per second per token (None: no quota); ``burst`` how many may
    come at once (default: one second's worth). ``clock`` drives the quota and the journal
    times, ``sleep`` every server-side wait (latency, slow answers): tests inject both so
    nothing depends on wall-clock speed.
    """

    runs: int = 200
    templates: int = 50
    seed: int = 1
    data: Path | str | dict[str, Any] | None = None
    token: str | None = None
    org_id: str | None = None
    rate_limit: float | None = None
    burst: float | None = None
    #: When a 429 carries Retry-After: "always", "sometimes" (every other one) or "never".
    retry_after: str = "always"
    #: With a quota: every answer carries X-RateLimit-Limit (the bucket's size) and
    #: X-RateLimit-Remaining (whole requests it holds after this one), and a 429 also
    #: X-RateLimit-Reset (the Unix time a request is let through again), as Laravel sends
    #: them. False: none of the three, so a client must find the quota by itself.
    rate_headers: bool = True
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    faults: Faults = field(default_factory=Faults)
    journal_size: int = 10_000
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] | None = None
    #: Hold a GET of one record's answer this long after reading it (0: no hold).
    hold_read_ms: float = 0.0
    #: The list API's page size cap (production: 100).
    max_per_page: int = 100
    #: When set, `total_pages` follows this page size rather than the one served (the
    #: MCP server's warning: the server's own size, not the one asked).
    total_pages_per: int | None = None
    #: Answer requests whose Host is any IP address, not only loopback (``--allow-remote``);
    #: a DNS name other than localhost is refused either way (DNS rebinding).
    allow_remote: bool = False
    #: How a task read with ``?with=form_fields`` shows them: "data" (``{"data": [...]}``,
    #: answers in ``field_value``: Tallyfy's MCP server, traced against production) or
    #: "bare" (an array, answers in ``value``: the documentation's sample).
    form_fields_shape: str = "data"

    def __post_init__(self) -> None:
        if self.runs < 0 or self.templates < 0:
            raise ValueError("runs and templates must be >= 0")
        if self.runs and not self.templates and self.data is None:
            raise ValueError("runs need at least one template to be generated from")
        check_quota(self.rate_limit, self.burst)
        if self.retry_after not in RETRY_AFTER_MODES:
            raise ValueError(f"retry_after must be one of {', '.join(RETRY_AFTER_MODES)}")
        check_latency(self.latency_ms, self.jitter_ms)
        if self.form_fields_shape not in FORM_FIELD_SHAPES:
            raise ValueError(f"form_fields_shape must be one of {', '.join(FORM_FIELD_SHAPES)}")
        if self.journal_size < 1:
            raise ValueError("journal_size must be >= 1")


RETRY_AFTER_MODES = ("always", "sometimes", "never")


def check_quota(rate_limit: float | None, burst: float | None) -> None:
    if rate_limit is not None and not rate_limit > 0:
        raise ValueError(f"rate_limit must be > 0 requests/s (or None for no quota), "
                         f"got {rate_limit!r}")
    if burst is not None and not burst >= 1:
        raise ValueError(f"burst must be >= 1, got {burst!r}")


def check_latency(latency_ms: float, jitter_ms: float) -> None:
    if not latency_ms >= 0 or not jitter_ms >= 0:
        raise ValueError("latency_ms and jitter_ms must be >= 0")
