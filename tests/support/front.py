"""A small aiohttp server on 127.0.0.1 in front of the sandbox, for odd answers.

It forwards every request to the sandbox unless a hook for that method answers instead
(a hook may also forward first and then answer something else). It records what reached
it, and from which client port, so a test can see the order of requests and whether a
connection was reused. Hooks and `methods` are about requests on records: the job's
preflight (a one-item list before the first row) is forwarded untouched and kept apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulk.sandbox import Sandbox

FORWARDED = ("Authorization", "Accept", "X-Tallyfy-Client", "Content-Type")


@dataclass
class Seen:
    method: str
    path: str
    client_port: int

    @property
    def on_record(self) -> bool:
        """A request on one record (…/runs/<id>), not a list such as the preflight."""
        last = self.path.rstrip("/").rsplit("/", 1)[-1]
        return len(last) == 32 and all(c in "0123456789abcdef" for c in last)


#: (front, request, body) -> a response, or None to forward as usual.
Hook = Callable[["Front", web.Request, bytes], Awaitable[web.StreamResponse | None]]


class Front:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.seen: list[Seen] = []
        self.hooks: dict[str, Hook] = {}
        self._server: TestServer | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Front:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._session is not None
        await self._session.close()
        await self._server.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/api"))

    @property
    def methods(self) -> list[str]:
        """The methods of the requests on records, in order (the preflight left out)."""
        return [seen.method for seen in self.seen if seen.on_record]

    @property
    def preflights(self) -> int:
        return sum(not seen.on_record for seen in self.seen)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen = Seen(request.method, request.path, peer[1] if peer else 0)
        self.seen.append(seen)
        hook = self.hooks.get(request.method) if seen.on_record else None
        if hook is not None:
            answer = await hook(self, request, body)
            if answer is not None:
                return answer
        status, data, headers = await self.forward(request, body)
        return web.Response(status=status, body=data, headers=headers)

    async def forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, dict]:
        """The sandbox's own answer to this request: status, body, headers to pass on."""
        assert self._session is not None
        headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        async with self._session.request(
            request.method, self.sandbox.url + request.path_qs, headers=headers,
            data=body or None, allow_redirects=False,
        ) as response:
            data = await response.read()
            passed = {name: response.headers[name]
                      for name in ("Content-Type", "X-Request-Id", "Retry-After")
                      if name in response.headers}
            return response.status, data, passed
