"""aiohttp's silent one-time re-send of a request on a dropped kept-alive connection.

aiohttp 3.10+ re-sends an idempotent request (PUT included) once, by itself, when a
reused connection breaks. That second PUT would skip our read-back, so it is switched
off, and a job refuses to start where it cannot be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner

from bulk.cli import main
from tests.support.front import Front
from tests.support.helpers import env_for, rename_csv, run_ids, run_job


@pytest.fixture
async def front(sandbox) -> AsyncIterator[Front]:
    async with Front(sandbox) as running:
        yield running


async def test_a_put_dropped_on_a_kept_alive_connection_is_never_resent_unread(front, tmp_path):
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    dropped = []

    async def drop_the_first_put(f, request, body):
        if dropped:
            return None  # later PUTs reach the sandbox
        assert body  # the whole PUT was read...
        dropped.append(f.seen[-1])
        assert request.transport is not None
        request.transport.close()  # ...and the connection closed without an answer
        return web.Response(status=500)

    front.hooks["PUT"] = drop_the_first_put

    summary, entries = await run_job(front.sandbox, rename_csv(tmp_path / "r.csv", [rid], "Once"),
                                         concurrency=1, via=front)

    # The dropped PUT came on the connection the GET before it had used (kept alive).
    first_get, first_put = [seen for seen in front.seen if seen.on_record][:2]
    assert (first_get.method, first_put.method) == ("GET", "PUT")
    assert dropped == [first_put]
    assert first_put.client_port == first_get.client_port
    # No PUT ever follows a PUT: each one after the drop comes after a read-back.
    methods = front.methods
    assert not any(a == b == "PUT" for a, b in pairwise(methods)), methods
    assert methods == ["GET", "PUT", "GET", "PUT"]
    assert entries[0].status == "ok", entries[0].error
    assert summary.exit_code == 0
    assert sandbox.stats.writes_per_record[rid] == 1
    assert sandbox.store.runs[rid]["name"] == "Once 0"


def test_an_aiohttp_without_the_switch_exits_2_before_anything_is_sent(
    threaded_sandbox, tmp_path: Path, monkeypatch
):
    # What aiohttp 3.10 looks like to the start-up check: no `_retry_connection`.
    monkeypatch.setattr(aiohttp.ClientSession, "ATTRS",
                        aiohttp.ClientSession.ATTRS - {"_retry_connection"})
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 2), "Never")

    result = CliRunner().invoke(main, ["apply", "--input", str(path)],
                                env=env_for(threaded_sandbox), catch_exceptions=False)

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "aiohttp" in lines[0] and "re-send" in lines[0]
    assert "Traceback" not in result.output
    assert threaded_sandbox.stats.requests == 0
    assert not Path(str(path) + ".ledger.db").exists()
