"""JsonHttp never follows a redirect, checks 2xx bodies through its hook, and never lets
aiohttp re-send a request by itself. Real aiohttp servers on 127.0.0.1, no mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulk.engine.clock import SkipClock
from bulk.engine.errors import AmbiguousAnswer, ConfigError, RedirectRefused
from bulk.engine.http import JsonHttp, open_session, require_resend_switch
from bulk.engine.pacing import Pacer
from bulk.engine.retry import RetryPolicy, should_retry

TOKEN = "tok-SECRET-redirect-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}


class Elsewhere:
    """Another origin: answers `{"data": {}}` to anything, and counts what reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.any)

    async def any(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, await request.read()))
        return web.json_response({"data": {}})


async def _started(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[Elsewhere, TestServer]]:
    state = Elsewhere()
    server = await _started(state.app)
    try:
        yield state, server
    finally:
        await server.close()


@pytest.fixture
async def origin(elsewhere) -> AsyncIterator[TestServer]:
    _, other = elsewhere
    target = str(other.make_url("/api/runs/abc?token=leak&sig=xyz"))

    async def moved(request: web.Request) -> web.Response:
        await request.read()
        status = int(request.query.get("status", "307"))
        return web.Response(status=status, headers={"Location": target, "X-Request-Id": "r-3xx"})

    async def relative(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/login?next=%2Fsecret"})

    async def nowhere(request: web.Request) -> web.Response:
        return web.Response(status=301)

    async def record(request: web.Request) -> web.Response:
        return web.json_response({"data": {"id": "abc"}}, headers={"X-Request-Id": "r-200"})

    app = web.Application()
    app.add_routes([
        web.route("*", "/moved", moved),
        web.get("/relative", relative),
        web.get("/nowhere", nowhere),
        web.get("/record", record),
    ])
    server = await _started(app)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with open_session(aiohttp.TCPConnector()) as client_session:
        yield client_session


def make_http(session: aiohttp.ClientSession) -> JsonHttp:
    return JsonHttp(session, Pacer(1000.0, 100, SkipClock()), RetryPolicy(), headers=HEADERS)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirected_put_is_refused_and_its_body_goes_nowhere(
    origin, elsewhere, session, status
):
    state, other = elsewhere
    http = make_http(session)
    url = str(origin.make_url(f"/moved?status={status}"))

    with pytest.raises(RedirectRefused) as raised:
        await http.request("PUT", url, path="runs/abc", body={"name": "x", "users": [1]})

    assert state.seen == []  # aiohttp would have re-sent the body there (307/308)
    error = raised.value
    assert error.status == status
    assert error.request_id == "r-3xx"
    assert str(error) == (
        f"HTTP {status}: redirect to 127.0.0.1:{other.port}, not followed (PUT runs/abc)"
    )
    for secret in ("token=leak", "sig=xyz", "/api/runs", TOKEN, "Authorization"):
        assert secret not in repr(vars(error)) and secret not in str(error)
    assert should_retry(error) is False


async def test_a_redirected_get_is_refused_too(origin, elsewhere, session):
    state, _ = elsewhere
    with pytest.raises(RedirectRefused):
        await make_http(session).request("GET", str(origin.make_url("/moved")), path="r")
    assert state.seen == []


async def test_a_relative_location_names_the_same_host(origin, session):
    with pytest.raises(RedirectRefused) as raised:
        await make_http(session).request("GET", str(origin.make_url("/relative")), path="r")
    assert str(raised.value) == "HTTP 302: redirect to 127.0.0.1, not followed (GET r)"
    assert "login" not in str(raised.value)


async def test_a_redirect_without_location_says_so(origin, session):
    with pytest.raises(RedirectRefused) as raised:
        await make_http(session).request("GET", str(origin.make_url("/nowhere")), path="r")
    assert str(raised.value) == "HTTP 301: redirect without a Location, not followed (GET r)"


async def test_the_check_hook_turns_a_2xx_into_an_ambiguous_answer(origin, session):
    http = make_http(session)
    seen = []

    def check(data):
        seen.append(data)
        return "the record lacks users"

    with pytest.raises(AmbiguousAnswer) as raised:
        await http.request("GET", str(origin.make_url("/record")), path="runs/abc", check=check)

    assert seen == [{"data": {"id": "abc"}}]
    error = raised.value
    assert (error.status, error.request_id) == (200, "r-200")
    assert str(error) == "HTTP 200 without the record: the record lacks users (GET runs/abc)"
    assert should_retry(error) is True


async def test_a_passing_check_returns_the_answer(origin, session):
    answer = await make_http(session).request(
        "GET", str(origin.make_url("/record")), path="r", check=lambda data: None)
    assert answer.data == {"data": {"id": "abc"}}


async def test_open_session_switches_off_aiohttps_silent_resend(session):
    assert session._retry_connection is False


def test_an_aiohttp_without_the_switch_is_refused_before_anything_starts():
    class OldClientSession:  # what aiohttp 3.10 offers: the re-send, but no switch
        ATTRS = frozenset({"_connector", "_timeout"})

    with pytest.raises(ConfigError) as raised:
        require_resend_switch(OldClientSession)
    message = str(raised.value)
    assert "\n" not in message
    assert "re-send" in message and "aiohttp" in message
    require_resend_switch()  # the installed aiohttp has it
