"""The preflight follows no redirect, like every other request (issue 13, point 8)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from bulk.engine.errors import ConfigError
from bulk.sandbox import Sandbox
from bulk.tallyfy.connection import Connection, Secret
from tests.support.helpers import rename_csv, run_ids
from tests.tallyfy.test_preflight import apply_with


async def test_a_preflight_answered_with_a_redirect_is_refused_and_not_followed(
        sandbox: Sandbox, tmp_path: Path) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(sandbox.url + request.path_qs)  # to the real API: still no

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        connection = Connection(str(server.make_url("/api")), sandbox.org_id,
                                Secret(sandbox.token))
        path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, 2), "Moved")
        error, counts, _ = await apply_with(connection, path)
    finally:
        await server.close()
    assert isinstance(error, ConfigError), error
    assert "redirect (HTTP 302 to 127.0.0.1)" in str(error)
    assert "never followed" in str(error)
    assert sandbox.stats.requests == 0  # the token never reached where it pointed
    assert counts == {}
