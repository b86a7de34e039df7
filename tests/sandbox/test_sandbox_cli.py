"""`bulk sandbox` from a shell: the three export lines, a clean stop, the refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.sandbox import dump_org, generate_org
from bulk.sandbox.cli import sandbox_command

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = re.compile(
    r"^export TALLYFY_BASE_URL=(http://127\.0\.0\.1:\d+/api)\n"
    r"export TALLYFY_ORG_ID=([0-9a-f]{32})\n"
    r"export TALLYFY_ACCESS_TOKEN=(\S+)\n$")


def get_runs(base_url: str, org: str, token: str) -> dict:
    request = urllib.request.Request(
        f"{base_url}/organizations/{org}/runs?per_page=100",
        headers={"Authorization": f"Bearer {token}", "X-Tallyfy-Client": "APIClient"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def running(pid: int) -> bool:
    """True while ``pid`` runs; an exited process not yet reaped (a zombie) has stopped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_prints_three_export_lines_first_serves_and_stops_cleanly(stop_with):
    process = subprocess.Popen(
        [sys.executable, "-m", "bulk.sandbox.cli", "--port", "0", "--runs", "5",
         "--templates", "2", "--seed", "4"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_three = "".join(process.stdout.readline() for _ in range(3))
        match = EXPORTS.match(first_three)
        assert match, first_three
        base_url, org, token = match.groups()

        listing = get_runs(base_url, org, token)
        assert listing["meta"]["pagination"]["total"] == 5

        process.send_signal(stop_with)
        rest_of_stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert rest_of_stdout == ""
    assert "Traceback" not in stderr
    assert "stopped after 1 requests" in stderr


def test_eval_in_a_shell_gets_the_variables_while_the_sandbox_keeps_serving(tmp_path):
    # The sandbox lets go of stdout after the three lines, so `$(... &)` returns.
    log = tmp_path / "sandbox.log"
    script = (f'eval "$({sys.executable} -m bulk.sandbox.cli --runs 3 --templates 1 '
              f'2>{log} &)"; '
              'echo "$TALLYFY_BASE_URL $TALLYFY_ORG_ID $TALLYFY_ACCESS_TOKEN"')
    shell = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                           timeout=30, check=True)
    pid = int(re.search(r"pid (\d+)", log.read_text()).group(1))
    try:
        base_url, org, token = shell.stdout.split()
        assert get_runs(base_url, org, token)["meta"]["pagination"]["total"] == 3
    finally:
        os.kill(pid, signal.SIGTERM)
    # not our child (the shell started it), so wait for it by polling its pid
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not running(pid):
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the sandbox did not stop on SIGTERM")
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_refuses_a_non_loopback_host_in_one_line(host):
    result = CliRunner().invoke(sandbox_command, ["--host", host])

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--allow-remote" in lines[0] and host in lines[0]


def test_a_bad_data_file_is_one_line(tmp_path):
    bad = tmp_path / "org.json"
    bad.write_text("[]")

    result = CliRunner().invoke(sandbox_command, ["--data", str(bad)])

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {bad}: the top level must be a JSON "
                                                  f"object"]


def test_a_port_in_use_is_one_line():
    # A subprocess, not CliRunner: asyncio.run() inside a sync test drops the event loop the
    # looptime plugin created for it, and the ResourceWarning fails the run.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = subprocess.run(
            [sys.executable, "-m", "bulk.sandbox.cli", "--port", str(port), "--runs", "1",
             "--templates", "1"], cwd=ROOT, capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot listen on 127.0.0.1:{port}")


def test_export_writes_the_org_it_would_serve(tmp_path):
    target = tmp_path / "org.json"

    result = CliRunner().invoke(sandbox_command, ["--runs", "12", "--templates", "3", "--seed",
                                                  "9", "--export", str(target)])

    assert result.exit_code == 0, result.output
    assert target.read_text() == dump_org(generate_org(9, 12, 3))


def test_help_has_an_example():
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "bulk sandbox --" in result.output
