"""One way to open the Tallyfy API for a job: apply, select, undo and the preflight.

`open_api` builds, in this order and nowhere else: the connector (one connection per
worker), the session (`open_session`: aiohttp's silent re-send off), the pacer, the outage
breaker and the client. `Pacing` is the one set of settings for how fast and how patiently
requests go; apply's and select's options are both a `Pacing`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bulk.engine.breaker import Breaker
from bulk.engine.clock import Clock
from bulk.engine.http import open_session
from bulk.engine.pacing import Pacer
from bulk.engine.retry import RetryPolicy
from bulk.options import default
from bulk.tallyfy.client import TallyfyClient, api_headers
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.preflight import preflight
from bulk.tallyfy.targets import Target

DEFAULT_RATE: float = default("rate")
DEFAULT_BURST: int = default("burst")


@dataclass(kw_only=True)
class Pacing:
    """How fast and how patiently requests go (the same for apply, select and undo)."""

    rate: float | str = DEFAULT_RATE  # requests/s (a ceiling), or "auto"
    burst: int = DEFAULT_BURST
    max_attempts: int = default("max_attempts")
    timeout: float = default("timeout")
    outage_limit: float = default("outage_limit")  # seconds of continuous outage, then stop
    backoff: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts, base=self.backoff.base, cap=self.backoff.cap
        )


def make_pacer(rate: float | str, burst: int, clock: Clock) -> Pacer:
    """A job's pacer (apply and select alike): it starts at the default pace (or below, if
    asked) and finds the quota from there; a rate given is a ceiling, "auto" climbs as far
    as the API lets it."""
    auto = rate == "auto"
    ceiling = DEFAULT_RATE if auto else float(rate)
    return Pacer(ceiling, burst, clock, auto=auto, start=min(ceiling, DEFAULT_RATE))


#: Where a job's pacer and breaker report what held it back (`Ledger.record_event`).
Events = Callable[..., None]


@dataclass
class Api:
    """An open API: what a job sends its requests through."""

    connection: Connection
    session: aiohttp.ClientSession
    pacer: Pacer
    breaker: Breaker
    client: TallyfyClient
    policy: RetryPolicy
    clock: Clock

    async def preflight(self, target: Target) -> None:
        """One cheap request before the first row (see preflight.py). It spends the quota
        as any request does: let through, it counts in the pacer's estimate of the quota
        (unseen, it made a quota of 5/s look like 4)."""
        sent = self.clock.now()
        status = await preflight(self.session, self.connection, target,
                                 api_headers(self.connection), self.clock)
        if status != 429:
            self.pacer.accepted(sent)


@asynccontextmanager
async def open_api(
    connection: Connection,
    pacing: Pacing,
    clock: Clock,
    *,
    connections: int,
    events: Events | None = None,
    one_stream: bool = False,
) -> AsyncIterator[Api]:
    """Open the API for one job (inside its event loop); closed when the block ends.

    `connections` bounds the connector: workers never exceed it, so nothing queues
    unseen. `events` hears the 429s, pauses and outages as they happen (for `bulk report`).
    `one_stream`: the requests go one after another (select's pages), so a run of failures
    on one page already is the API down: the breaker opens after `max_attempts - 1` of them
    (and at most the usual streak), and from then on waits out the outage, a probe at a
    time, as apply's workers do, instead of spending the page's last attempt.
    """
    pacer = make_pacer(pacing.rate, pacing.burst, clock)
    on_outage: Callable[[float, float], None] | None = None
    if events is not None:
        record = events
        pacer.on_429 = lambda _at: record("429")
        pacer.on_pause = lambda _start, seconds: record("pause", seconds)
        on_outage = lambda start, end: record("outage", end - start,  # noqa: E731
                                               began_ago=end - start)
    breaker_shape: dict[str, Any] = {}
    if one_stream:
        streak = max(1, min(Breaker.THRESHOLD, pacing.max_attempts - 1))
        breaker_shape = {"threshold": streak, "distinct": 1}
    policy = pacing.policy
    connector = aiohttp.TCPConnector(limit=connections)
    async with open_session(connector) as session:  # aiohttp's silent re-send: off
        breaker = Breaker(clock, limit=pacing.outage_limit, on_outage=on_outage,
                          **breaker_shape)
        client = TallyfyClient(session, connection, pacer, policy, timeout=pacing.timeout,
                               breaker=breaker)
        yield Api(connection, session, pacer, breaker, client, policy, clock)
