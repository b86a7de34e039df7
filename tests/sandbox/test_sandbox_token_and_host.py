"""The sandbox's token is never handed out, is chosen from the environment (not a flag),
and only requests addressed to a loopback host are answered (DNS rebinding)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.sandbox import Sandbox, SandboxConfig
from bulk.sandbox._hosts import host_allowed
from bulk.sandbox.cli import sandbox_command

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "chosen-s3cret-token_0123456789"


# -- no control answer carries the token --------------------------------------------------

async def test_no_sandbox_control_answer_contains_the_token(api_for, start_sandbox):
    sandbox = await start_sandbox(token=TOKEN)
    api = api_for(sandbox)
    run_id = next(iter(sandbox.store.runs))
    await api.get(f"/runs/{run_id}")  # something in the journal and stats
    answers = [
        await api.observe("GET", ""),
        await api.observe("GET", "/"),
        await api.observe("GET", "/stats"),
        await api.observe("GET", "/journal"),
        await api.observe("GET", f"/records/{run_id}"),
        await api.observe("GET", "/org"),
        await api.observe("GET", "/settings"),
        await api.observe("PUT", "/settings", json={"latency_ms": 1}),
        await api.observe("PUT", "/settings", json={"nope": 1}),
        await api.observe("POST", "/reset?data=1"),
        await api.observe("GET", "/nothing-here"),
    ]

    for reply in answers:
        assert TOKEN not in json.dumps(reply.body), reply
    org = (await api.observe("GET", "/org")).body
    assert "token" not in org and org["org_id"] == sandbox.org_id


# -- Host: loopback only ----------------------------------------------------------------

FOREIGN_HOSTS = ["evil.example", "evil.example:80", "localhost.evil.example",
                 "127.0.0.1.nip.io", "10.0.0.1", "[::ffff:7f00:1]", "127.0.0.1:http", "::1",
                 "[::1", ""]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
async def test_a_request_for_another_host_is_refused_on_every_route(api, sandbox, host):
    run_id = next(iter(sandbox.store.runs))
    name = sandbox.store.runs[run_id]["name"]
    headers = {"Host": host}

    replies = [
        await api.get(f"/runs/{run_id}", headers=headers),
        await api.get("/runs", headers=headers, prefix=""),
        await api.put(f"/runs/{run_id}", {"name": "rebound", "users": [], "groups": []},
                      headers=headers),
        await api.observe("GET", "/org", headers=headers),
        await api.observe("PUT", "/settings", json={"faults": {"error_rate": 1}},
                          headers=headers),
        await api.observe("POST", "/reset?data=1", headers=headers),
        await api.request("GET", f"{sandbox.url}/anything", headers=headers),
    ]

    assert [reply.status for reply in replies] == [421] * len(replies)
    assert all(sandbox.token not in json.dumps(reply.body) for reply in replies)
    assert sandbox.store.runs[run_id]["name"] == name, "the PUT must not be applied"
    assert sandbox.faults.error_rate == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost:1234", "localhost.",
                                  "127.0.0.2:99", "[::1]", "[::1]:8765"])
async def test_loopback_names_and_addresses_are_answered(api, sandbox, host):
    run_id = next(iter(sandbox.store.runs))

    reply = await api.get(f"/runs/{run_id}", headers={"Host": host})
    control = await api.observe("GET", "/stats", headers={"Host": host})

    assert (reply.status, control.status) == (200, 200)


async def test_a_request_without_a_host_header_is_refused(sandbox):
    reader, writer = await asyncio.open_connection(sandbox.host, sandbox.port)
    try:
        writer.write(b"GET /_sandbox/org HTTP/1.0\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"421"


async def test_allow_remote_answers_ip_addresses_but_never_other_names(api_for):
    async with Sandbox(SandboxConfig(runs=2, templates=1, allow_remote=True)) as sandbox:
        api = api_for(sandbox)
        by_ip = await api.observe("GET", "/stats", headers={"Host": "192.168.1.10:8765"})
        by_name = await api.observe("GET", "/stats", headers={"Host": "evil.example"})
    assert (by_ip.status, by_name.status) == (200, 421)
    assert host_allowed("[fe80::1]:80", any_ip=True) and not host_allowed("[fe80::1]:80")


# -- the token comes from the environment, never a flag ---------------------------------

def test_the_token_flag_is_refused_and_points_to_the_environment():
    result = CliRunner().invoke(sandbox_command, ["--token", TOKEN, "--runs", "1"])

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "BULK_SANDBOX_TOKEN" in lines[0] and "ps" in lines[0]
    assert TOKEN not in result.output


@pytest.mark.parametrize("token", ["two words", "$(touch /tmp/x)", "tök", "a\x01b", "=abc"])
def test_an_unusable_chosen_token_is_refused_without_showing_it(token):
    result = CliRunner().invoke(sandbox_command, ["--runs", "1", "--templates", "1"],
                                env={"BULK_SANDBOX_TOKEN": token})

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "BULK_SANDBOX_TOKEN" in lines[0]
    assert token not in result.output


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"X-Tallyfy-Client": "APIClient"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_a_token_chosen_in_the_environment_is_served_and_shown_only_in_its_export_line():
    process = subprocess.Popen(
        [sys.executable, "-m", "bulk.sandbox.cli", "--port", "0", "--runs", "3",
         "--templates", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "BULK_SANDBOX_TOKEN": TOKEN,
             # A real token in the usual variable is never taken for the sandbox's.
             "TALLYFY_ACCESS_TOKEN": "real-production-token"})
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        base_url = re.search(r"TALLYFY_BASE_URL=(\S+)", lines[0]).group(1)
        org = re.search(r"TALLYFY_ORG_ID=(\S+)", lines[1]).group(1)
        assert lines[2] == f"export TALLYFY_ACCESS_TOKEN={TOKEN}\n"
        status, body = _get(f"{base_url}/organizations/{org}/runs", TOKEN)
        assert status == 200 and json.loads(body)["meta"]["pagination"]["total"] == 3
        root = base_url.removesuffix("/api")
        for path in ("/_sandbox/org", "/_sandbox/stats", "/_sandbox/settings",
                     "/_sandbox/journal", "/_sandbox/"):
            assert TOKEN not in _get(root + path)[1], path
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert TOKEN not in stderr and TOKEN not in rest
    assert "real-production-token" not in "".join(lines) + rest + stderr
