"""Preflight: one cheap request before the first row names a wrong base URL, token or
organization in one line, within seconds, and records no row as failed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp import web

from bulk.engine.clock import SkipClock
from bulk.engine.errors import ConfigError
from bulk.sandbox import Faults
from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
from bulk.tallyfy.connection import Connection, Secret
from tests.commands.test_cli import invoke
from tests.support.helpers import env_for, not_http_peer, rename_csv, run_ids, serving


async def apply_with(connection: Connection, path: Path):
    """Run the job (waits skipped); returns (summary or error, ledger counts, clock)."""
    clock = SkipClock()
    prepared = prepare(ApplyOptions(input=path, rate=1000.0), connection)
    try:
        try:
            outcome = await execute(prepared, clock=clock)
        except ConfigError as exc:
            outcome = exc
        counts = {k: v for k, v in prepared.ledger.counts().items() if v}
    finally:
        prepared.ledger.close()
    return outcome, counts, clock


def free_port() -> int:
    with socket.socket() as probe:  # free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def renames(sandbox, tmp_path: Path) -> Path:
    return rename_csv(tmp_path / "r.csv", run_ids(sandbox, 10), "Preflight")


async def test_an_unreachable_host_is_one_line_and_no_row_is_recorded(sandbox, renames):
    connection = Connection(f"http://127.0.0.1:{free_port()}/api", sandbox.org_id,
                            Secret(sandbox.token))
    error, counts, clock = await apply_with(connection, renames)
    assert isinstance(error, ConfigError)
    assert str(error).startswith("cannot reach 127.0.0.1: connection failed (Connection refused)")
    assert "\n" not in str(error)
    assert counts == {}
    assert clock.skipped <= 5  # a few tries, seconds apart: not every row's attempts


async def test_a_tls_failure_is_named(sandbox, renames):
    async with serving(web.Application()) as port:  # plain HTTP where TLS is expected
        connection = Connection(f"https://127.0.0.1:{port}/api", sandbox.org_id,
                                Secret(sandbox.token))
        error, counts, _ = await apply_with(connection, renames)
    assert isinstance(error, ConfigError)
    assert str(error).startswith("TLS failure talking to 127.0.0.1")
    assert counts == {}


async def test_a_base_url_that_is_not_the_api_is_a_404_endpoint_not_found(sandbox, renames):
    connection = Connection(sandbox.url + "/v2/api", sandbox.org_id, Secret(sandbox.token))
    error, counts, _ = await apply_with(connection, renames)
    assert isinstance(error, ConfigError)
    assert "is not the Tallyfy API (HTTP 404 ENDPOINT_NOT_FOUND for GET runs)" in str(error)
    assert counts == {}
    assert sandbox.stats.requests == 1


async def test_an_organization_the_token_cannot_see_is_a_403(sandbox, renames):
    connection = Connection(sandbox.base_url, "0" * 32, Secret(sandbox.token))
    error, counts, _ = await apply_with(connection, renames)
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"the token has no access to organization {'0' * 32}")
    assert counts == {}


async def test_a_wrong_token_aborts_before_any_row(sandbox, renames):
    connection = Connection(sandbox.base_url, sandbox.org_id, Secret("wrong-token"))
    summary, counts, _ = await apply_with(connection, renames)
    assert summary.exit_code == 3
    assert summary.aborted.startswith("authentication failed: HTTP 401")
    assert counts == {}
    assert sandbox.stats.requests == 1


async def test_an_api_answering_only_5xx_stops_before_any_row(sandbox, renames):
    sandbox.faults = Faults(error_rate=1.0)
    summary, counts, _ = await apply_with(
        Connection(sandbox.base_url, sandbox.org_id, Secret(sandbox.token)), renames)
    assert summary.exit_code == 3
    assert "unavailable" in summary.aborted
    assert counts == {}
    assert sandbox.stats.requests == 3  # a few tries, not one per row


def test_the_command_says_which_in_one_line_with_exit_2(threaded_sandbox, tmp_path):
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 3), "x")
    env = {**env_for(threaded_sandbox), "TALLYFY_BASE_URL": threaded_sandbox.url + "/nope"}
    result = invoke(["apply", "--input", str(path)], env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("bulk: ") and "ENDPOINT_NOT_FOUND" in result.stderr


async def test_a_peer_that_is_not_http_is_one_line_and_keeps_no_header(sandbox, renames):
    # aiohttp's error for a garbled answer holds the request's headers (the token among
    # them): nothing of it may ride along, not even as the refusal's __context__.
    async with not_http_peer() as port:
        connection = Connection(f"http://127.0.0.1:{port}/api", sandbox.org_id,
                                Secret(sandbox.token))
        error, counts, _ = await apply_with(connection, renames)
    assert isinstance(error, ConfigError)
    assert str(error) == ("cannot reach 127.0.0.1: connection failed (ClientResponseError); "
                          "check TALLYFY_BASE_URL (or --base-url)")
    assert error.__cause__ is None and error.__context__ is None
    assert counts == {}
