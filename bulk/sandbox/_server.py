"""``Sandbox``: one local Tallyfy, started and stopped from asyncio code."""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

from aiohttp import web

from bulk.sandbox._app import Service
from bulk.sandbox._config import Faults, SandboxConfig
from bulk.sandbox._data import default_token, generate_org, load_org, normalize_org
from bulk.sandbox._lists import ListShape
from bulk.sandbox._stats import Stats
from bulk.sandbox._store import Store

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
#: RFC 6750's b64token: what an `Authorization: Bearer` token may hold.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9._~+/-]+=*")

#: How long stopping waits for answers still being written before cutting them off. The
#: sandbox's own waits end at once on stop; this only bounds an injected ``sleep``.
_SHUTDOWN_TIMEOUT = 1.0


class Sandbox:
    """A faithful local Tallyfy API on an aiohttp server::

        async with Sandbox(SandboxConfig(runs=200, seed=1)) as sb:
            ...  # point a client at sb.base_url with sb.token and sb.org_id

    Runs and templates are served under both ``/api/organizations/{org}/...`` and
    ``/organizations/{org}/...``; ``/_sandbox/...`` is for looking inside. Faults, latency and
    the quota can be changed while it serves (``sb.faults = Faults(error_rate=0.1)``).
    """

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.config = config = config or SandboxConfig()
        org = _initial_org(config)
        if config.org_id is not None:
            if not _SAFE_ID.match(config.org_id):
                raise ValueError(f"org_id {config.org_id!r} must be letters, digits, - or _")
            org["org_id"] = config.org_id
        token = config.token or org.get("token") or default_token(config.seed)
        if not TOKEN_SHAPE.fullmatch(token):
            # It goes into an Authorization header and into a shell `export` line.
            raise ValueError("the sandbox token must be one word of letters, digits and "
                             "- . _ ~ + / = (what a bearer token may hold)")
        org["token"] = token
        self._service = Service(org, token, config)
        # "localhost" can mean 127.0.0.1 and ::1, two sockets on two different free ports
        self._host = "127.0.0.1" if host == "localhost" else host
        self._port = port
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen; afterwards ``port``, ``url`` and ``base_url`` name the real port."""
        if self._runner is not None:
            raise RuntimeError("this sandbox is already started")
        self._service.closing = asyncio.Event()  # a restarted sandbox waits again
        runner = web.AppRunner(self._service.make_app(), access_log=None, handle_signals=False,
                               shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, backlog=1024)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and end the waits of slow answers still in progress."""
        if self._runner is None:
            return
        self._service.closing.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ where and who

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The root URL, without ``/api`` (what the official SDK takes as ``base_url``)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The API base URL as the docs write it: ``http://127.0.0.1:PORT/api``."""
        return self.url + "/api"

    @property
    def org_id(self) -> str:
        return self._service.store.org_id

    @property
    def token(self) -> str:
        return self._service.token

    # ------------------------------------------------------------------ what it holds and saw

    @property
    def store(self) -> Store:
        return self._service.store

    @property
    def stats(self) -> Stats:
        return self._service.stats

    def reset_stats(self) -> None:
        """Zero the stats and journal, and start every fault sequence over."""
        self._service.reset_stats()

    def reset_data(self) -> None:
        """Put the data back as it was at start (and forget forbidden marks)."""
        self._service.reset_data()

    def org(self) -> dict[str, Any]:
        """The current organization in the data file shape (a copy)."""
        return self._service.store.to_org()

    def edit_as_person(self, record_id: str, **changes: Any) -> dict[str, Any]:
        """A person edits a run or template in the web app between two steps of a test:
        only the named fields change, nothing is counted as an API write."""
        return self._service.store.edit_as_person(record_id, changes)

    @property
    def lists(self) -> ListShape:
        """The list answers' shape, and moves of records between pages while paged."""
        return self._service.lists

    @property
    def hold_read_ms(self) -> float:
        return self._service.hold_read_ms

    @hold_read_ms.setter
    def hold_read_ms(self, value: float) -> None:
        self._service.hold_read_ms = value

    def mark_forbidden(self, record_id: str, forbidden: bool = True) -> None:
        """Make a run or template answer 403 to GET and PUT (``forbidden=False`` undoes it)."""
        if forbidden:
            self._service.forbidden.add(record_id)
        else:
            self._service.forbidden.discard(record_id)

    # ------------------------------------------------------------------ knobs, live

    @property
    def faults(self) -> Faults:
        return self._service.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        if not isinstance(faults, Faults):
            raise TypeError("faults must be a Faults instance")
        self._service.faults = faults

    @property
    def latency_ms(self) -> float:
        return self._service.latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        self._service.set_latency(value, self._service.jitter_ms)

    @property
    def jitter_ms(self) -> float:
        return self._service.jitter_ms

    @jitter_ms.setter
    def jitter_ms(self, value: float) -> None:
        self._service.set_latency(self._service.latency_ms, value)

    @property
    def rate_limit(self) -> float | None:
        quota = self._service.quota
        return quota.rate if quota else None

    @property
    def burst(self) -> float | None:
        quota = self._service.quota
        return quota.burst if quota else None

    def set_rate_limit(self, rate_limit: float | None, burst: float | None = None) -> None:
        """Switch the per-token quota on (requests/s, burst) or off (None); buckets start full."""
        self._service.set_rate_limit(rate_limit, burst)


def _initial_org(config: SandboxConfig) -> dict[str, Any]:
    data: Any = config.data
    if data is None:
        return generate_org(config.seed, config.runs, config.templates)
    if isinstance(data, dict):
        return normalize_org(copy.deepcopy(data))
    return load_org(data)
