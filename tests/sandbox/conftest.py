"""Fixtures for the sandbox tests: a started sandbox, a small HTTP client, a fake clock and
a recording ``sleep``, so no test waits for real or depends on the machine's speed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulk.sandbox import Sandbox, SandboxConfig

CLIENT_HEADERS = {"X-Tallyfy-Client": "APIClient", "Accept": "application/json"}


class FakeClock:
    """A clock tests move by hand (the sandbox's quota and journal read it)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Stands in for the sandbox's server-side waits: records each delay, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON, or the text when the answer is not JSON
    headers: Any

    @property
    def data(self) -> Any:
        return self.body["data"]


class Api:
    """Just enough client to talk to a sandbox the way Tallyfy clients do."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: Sandbox) -> None:
        self.session = session
        self.sandbox = sandbox
        self.headers = {**CLIENT_HEADERS, "Authorization": f"Bearer {sandbox.token}"}

    def url(self, path: str, *, prefix: str = "/api", org: str | None = None) -> str:
        return f"{self.sandbox.url}{prefix}/organizations/{org or self.sandbox.org_id}{path}"

    async def request(self, method: str, url: str, *, headers: dict[str, str | None] | None = None,
                      **kwargs: Any) -> Reply:
        """``headers`` are merged over the usual ones; a None value removes that header."""
        merged = {**self.headers, **(headers or {})}
        sent = {k: v for k, v in merged.items() if v is not None}
        async with self.session.request(method, url, headers=sent, **kwargs) as response:
            text = await response.text()
            try:
                body: Any = await response.json(content_type=None)
            except ValueError:
                body = text
            return Reply(response.status, body, response.headers)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        prefix = kwargs.pop("prefix", "/api")
        return await self.request("GET", self.url(path, prefix=prefix), **kwargs)

    async def put(self, path: str, body: Any, **kwargs: Any) -> Reply:
        prefix = kwargs.pop("prefix", "/api")
        return await self.request("PUT", self.url(path, prefix=prefix), json=body, **kwargs)

    async def observe(self, method: str, path: str, **kwargs: Any) -> Reply:
        """A ``/_sandbox`` request (no token)."""
        headers = {"Authorization": None, **kwargs.pop("headers", {})}
        return await self.request(method, f"{self.sandbox.url}/_sandbox{path}",
                                  headers=headers, **kwargs)


StartSandbox = Callable[..., Awaitable[Sandbox]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recording_sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def start_sandbox(clock: FakeClock) -> AsyncIterator[StartSandbox]:
    """``await start_sandbox(**SandboxConfig fields)``: a started sandbox on a free loopback
    port, small by default, on the fake clock; every one started is stopped afterwards."""
    started: list[Sandbox] = []

    async def start(**config: Any) -> Sandbox:
        config = {"runs": 30, "templates": 6, "seed": 3, "clock": clock, **config}
        sandbox = Sandbox(SandboxConfig(**config), host="127.0.0.1", port=0)
        await sandbox.start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        await sandbox.stop()


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> Sandbox:
    """A started sandbox: 30 runs, 6 templates, seed 3, no quota, no faults."""
    return await start_sandbox()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(session: aiohttp.ClientSession, sandbox: Sandbox) -> Api:
    return Api(session, sandbox)


@pytest.fixture
def api_for(session: aiohttp.ClientSession) -> Callable[[Sandbox], Api]:
    """An :class:`Api` for another sandbox (one from ``start_sandbox``)."""
    return lambda sandbox: Api(session, sandbox)


@pytest.fixture
def first_run(sandbox: Sandbox) -> dict[str, Any]:
    return next(iter(sandbox.store.runs.values()))


@pytest.fixture
def first_checklist(sandbox: Sandbox) -> dict[str, Any]:
    return next(iter(sandbox.store.checklists.values()))
