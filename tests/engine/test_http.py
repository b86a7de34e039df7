"""JsonHttp against a real aiohttp server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulk.engine.clock import SkipClock
from bulk.engine.errors import AuthError, HttpError, TransportError
from bulk.engine.http import MAX_ERROR_BODY, Answer, JsonHttp
from bulk.engine.pacing import Pacer
from bulk.engine.retry import RetryPolicy
from tests.support.helpers import not_http_peer

TOKEN = "tok-SECRET-5f1c2a9e7b3d4c6a8e0f1b2d3c4a5e6f"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}


class FrozenClock:
    """Time that never moves: cooldowns can be read back exactly."""

    def __init__(self, now: float = 1000.0) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("a frozen clock must not be slept on")


class Server:
    def __init__(self) -> None:
        self.release = asyncio.Event()  # set on teardown: frees handlers that hang
        self.hits: dict[str, int] = {}
        self.seen: list[dict] = []
        self.app = web.Application()
        routes = [
            web.get("/ok", self.ok),
            web.put("/echo", self.echo),
            web.get("/empty", self.empty),
            web.get("/missing", self.missing),
            web.get("/long-error", self.long_error),
            web.get("/auth", self.auth),
            web.get("/busy", self.busy),
            web.get("/busy-no-header", self.busy_no_header),
            web.get("/unavailable", self.unavailable),
            web.get("/html", self.html),
            web.get("/drop", self.drop),
            web.get("/hang", self.hang),
        ]
        self.app.add_routes(routes)

    def _hit(self, request: web.Request) -> None:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        self.seen.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type"),
            }
        )

    async def ok(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response(
            {"data": {"id": "abc", "name": "Ünïcode"}}, headers={"X-Request-Id": "req-ok"}
        )

    async def echo(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response({"got": await request.json()}, status=201)

    async def empty(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(status=204)

    async def missing(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response(
            {"message": "Run not found"}, status=404, headers={"X-Request-Id": "req-404"}
        )

    async def long_error(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(status=400, text="x" * (MAX_ERROR_BODY * 3))

    async def auth(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response({"message": "Unauthenticated."}, status=401)

    async def busy(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response(
            {"message": "Too Many Attempts."}, status=429, headers={"Retry-After": "3"}
        )

    async def busy_no_header(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response({"message": "Too Many Attempts."}, status=429)

    async def unavailable(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response({"message": "down"}, status=503, headers={"Retry-After": "7"})

    async def html(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(
            status=502,
            content_type="text/html",
            text="<html><head><title>502 Bad Gateway</title></head>"
            "<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>",
        )

    async def drop(self, request: web.Request) -> web.Response:
        self._hit(request)
        assert request.transport is not None
        request.transport.close()  # no status line, nothing: just gone
        await self.release.wait()
        return web.Response()

    async def hang(self, request: web.Request) -> web.Response:
        self._hit(request)
        await self.release.wait()
        return web.json_response({})


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, TestServer]]:
    state = Server()
    test_server = TestServer(state.app, host="127.0.0.1", port=0)
    await test_server.start_server()
    try:
        yield state, test_server
    finally:
        state.release.set()
        await test_server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def make_http(session, *, clock=None, timeout: float = 5.0, rate: float = 1000.0) -> JsonHttp:
    pacer = Pacer(rate, burst=100, clock=clock or SkipClock())
    return JsonHttp(session, pacer, RetryPolicy(), headers=dict(HEADERS), timeout=timeout)


def assert_no_token(exc: BaseException) -> None:
    """The token is nowhere in the exception: str, repr, args, attributes, or chain."""
    seen = exc
    while seen is not None:
        for text in (str(seen), repr(seen), repr(seen.args), repr(vars(seen))):
            assert TOKEN not in text
            assert "Authorization" not in text
        seen = seen.__cause__ or seen.__context__


async def test_2xx_json_is_parsed(server, session):
    state, srv = server
    http = make_http(session)
    answer = await http.request("GET", str(srv.make_url("/ok")), path="runs/abc")
    assert answer == Answer(200, {"data": {"id": "abc", "name": "Ünïcode"}}, "req-ok")
    assert http.requests == 1
    assert state.seen[0]["authorization"] == f"Bearer {TOKEN}"


async def test_body_is_sent_as_json_and_headers_are_not_changed(server, session):
    state, srv = server
    http = make_http(session)
    body = {"name": "New name", "users": [1, 2]}
    answer = await http.request("PUT", str(srv.make_url("/echo")), path="runs/abc", body=body)
    assert answer.status == 201
    assert answer.data == {"got": body}
    assert answer.request_id is None
    assert state.seen[0]["content_type"] == "application/json"
    assert http._headers == HEADERS  # the Content-Type was added to a copy


async def test_empty_answer_is_none(server, session):
    _, srv = server
    answer = await make_http(session).request("GET", str(srv.make_url("/empty")), path="e")
    assert answer == Answer(204, None, None)


async def test_404_keeps_status_body_and_request_id(server, session):
    _, srv = server
    with pytest.raises(HttpError) as raised:
        await make_http(session).request("GET", str(srv.make_url("/missing")), path="runs/abc")
    error = raised.value
    assert type(error) is HttpError
    assert error.status == 404
    assert error.body == {"message": "Run not found"}
    assert error.request_id == "req-404"
    assert error.retry_after is None
    assert str(error) == "HTTP 404: Run not found (GET runs/abc)"
    assert str(srv.make_url("/")) not in str(error)  # the path, never the full URL
    assert_no_token(error)


async def test_long_error_body_is_cut(server, session):
    _, srv = server
    with pytest.raises(HttpError) as raised:
        await make_http(session).request("GET", str(srv.make_url("/long-error")), path="x")
    assert raised.value.status == 400
    assert raised.value.body == "x" * MAX_ERROR_BODY


async def test_401_is_an_auth_error(server, session):
    _, srv = server
    with pytest.raises(AuthError) as raised:
        await make_http(session).request("GET", str(srv.make_url("/auth")), path="runs/abc")
    assert raised.value.status == 401
    assert "Unauthenticated." in str(raised.value)
    assert_no_token(raised.value)


async def test_429_sets_retry_after_and_cools_down_the_shared_pacer(server, session):
    _, srv = server
    http = make_http(session, clock=FrozenClock())
    with pytest.raises(HttpError) as raised:
        await http.request("GET", str(srv.make_url("/busy")), path="runs/abc")
    assert raised.value.status == 429
    assert raised.value.retry_after == 3.0
    assert http._pacer.cooling_for() == 3.0
    assert http._pacer.cooldowns == 1
    assert_no_token(raised.value)


async def test_429_without_retry_after_pauses_for_the_pacers_default(server, session):
    _, srv = server
    http = make_http(session, clock=FrozenClock())
    with pytest.raises(HttpError) as raised:
        await http.request("GET", str(srv.make_url("/busy-no-header")), path="r", attempt=1)
    assert raised.value.retry_after is None
    assert http._pacer.cooling_for() == Pacer.DEFAULT_PAUSE


async def test_the_next_request_after_a_429_waits_out_the_cooldown(server, session):
    state, srv = server
    clock = SkipClock()
    http = make_http(session, clock=clock)
    with pytest.raises(HttpError):
        await http.request("GET", str(srv.make_url("/busy")), path="r")
    assert clock.sleeps == []
    await http.request("GET", str(srv.make_url("/ok")), path="r")
    assert len(clock.sleeps) == 1
    assert 2.0 < clock.sleeps[0][1] <= 3.0
    assert state.hits == {"/busy": 1, "/ok": 1}


async def test_503_keeps_retry_after_without_a_cooldown(server, session):
    _, srv = server
    http = make_http(session, clock=FrozenClock())
    with pytest.raises(HttpError) as raised:
        await http.request("GET", str(srv.make_url("/unavailable")), path="r")
    assert raised.value.status == 503
    assert raised.value.retry_after == 7.0
    assert http._pacer.cooling_for() == 0.0


async def test_html_error_page_is_reported_as_non_json(server, session):
    _, srv = server
    with pytest.raises(HttpError) as raised:
        await make_http(session).request("GET", str(srv.make_url("/html")), path="runs/abc")
    assert raised.value.status == 502
    assert "non-JSON" in str(raised.value)
    assert "<html>" not in str(raised.value)
    assert str(raised.value) == "HTTP 502: non-JSON (HTML) body (GET runs/abc)"


async def test_connection_closed_without_an_answer_is_a_transport_error(server, session):
    state, srv = server
    with pytest.raises(TransportError) as raised:
        await make_http(session).request("GET", str(srv.make_url("/drop")), path="runs/abc")
    assert str(raised.value) == ("server closed the connection without an answer (GET runs/abc)")
    assert state.hits["/drop"] >= 1
    assert_no_token(raised.value)


async def test_timeout_is_a_transport_error(server, session):
    _, srv = server
    http = make_http(session, timeout=0.2)
    with pytest.raises(TransportError) as raised:
        await http.request("GET", str(srv.make_url("/hang")), path="runs/abc")
    assert str(raised.value) == "timed out waiting for the server (GET runs/abc)"
    assert raised.value.method == "GET"
    assert raised.value.path == "runs/abc"
    assert_no_token(raised.value)


async def test_connection_refused_is_a_transport_error(session):
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as raised:
        await make_http(session).request("GET", f"http://127.0.0.1:{port}/x", path="x")
    assert str(raised.value).startswith("cannot connect")
    assert f":{port}" not in str(raised.value)
    assert_no_token(raised.value)
    assert raised.value.sent is False  # no connection, so nothing of it left (issue 13)


async def test_a_connection_dropped_after_sending_may_have_been_sent(server, session):
    _, srv = server
    with pytest.raises(TransportError) as raised:
        await make_http(session).request("GET", str(srv.make_url("/drop")), path="runs/abc")
    assert raised.value.sent is True  # it may have landed: in doubt


async def test_every_request_goes_through_the_pacer(server, session):
    _, srv = server
    http = make_http(session, clock=SkipClock())
    http._pacer.cool_down(12)
    await http.request("GET", str(srv.make_url("/ok")), path="r")
    clock = http._pacer.clock
    assert isinstance(clock, SkipClock)
    assert len(clock.sleeps) == 1
    assert 11.0 < clock.sleeps[0][1] <= 12.0


async def test_a_write_on_a_held_slot_is_not_sent_after_an_outage_but_read_again(
    server, session
):
    # A PUT built from a read before the API went down: by the time the breaker lets
    # requests through again, someone may have changed the record, so nothing is sent
    # and the caller reads again. The refusal belongs to the outage: no attempt spent.
    from bulk.engine.breaker import Breaker
    from bulk.engine.errors import StaleRead
    from bulk.engine.retry import spends_attempt

    state, srv = server
    clock = SkipClock()
    breaker = Breaker(clock, limit=600.0)
    pacer = Pacer(1000.0, burst=100, clock=clock)
    http = JsonHttp(session, pacer, RetryPolicy(), headers=dict(HEADERS), breaker=breaker)
    for n in range(Breaker.THRESHOLD):
        breaker.failed(f"runs/{n % 4}", probe=False)
    assert breaker.is_open

    await http.slot()
    with pytest.raises(StaleRead) as raised:
        await http.request("PUT", str(srv.make_url("/echo")), path="runs/abc",
                           body={"name": "x"}, paced=False)

    assert state.hits.get("/echo", 0) == 0
    assert not spends_attempt(raised.value)
    # The probe's turn was given back: the next request (the read-back) goes out.
    answer = await http.request("GET", str(srv.make_url("/ok")), path="runs/abc")
    assert answer.status == 200 and not breaker.is_open


async def test_any_other_transport_failure_is_worded_in_our_terms(session):
    # A peer that answers something that is not HTTP: aiohttp's own message quotes the whole
    # URL (query included) over several lines; ours names only the kind and the path.
    async with not_http_peer() as port:
        with pytest.raises(TransportError) as raised:
            await make_http(session).request(
                "GET", f"http://127.0.0.1:{port}/organizations/o/runs?q=private", path="runs")
    message = str(raised.value)
    assert message == "connection failed (ClientResponseError) (GET runs)"
    assert "private" not in message and str(port) not in message and "\n" not in message
    # Nothing of aiohttp's exception is kept, not even as __context__: it holds the
    # request's headers, the token among them.
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert_no_token(raised.value)



def test_an_answer_nested_too_deep_for_json_is_text_not_a_crash():
    from bulk.engine.http import _parse

    raw = b"[" * 100_000 + b"]" * 100_000
    assert _parse(raw) == raw.decode()
