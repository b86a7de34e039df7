"""The question before a write, asked of a person at a terminal (a real pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from bulk.cli import main
from tests.support.helpers import env_for, run_ids, write_csv

REPO = Path(__file__).resolve().parents[2]


class Terminal:
    """`bulk` run with its stdin and stderr on a pseudo-terminal, stdout on a pipe."""

    def __init__(self, args: list[str], env: dict[str, str], *,
                 stderr_to_file: bool = False) -> None:
        self.master, slave = pty.openpty()
        # Or stdout on the terminal and stderr to a file (`bulk apply ... 2>log`).
        streams = ({"stdout": slave, "stderr": subprocess.PIPE} if stderr_to_file
                   else {"stdout": subprocess.PIPE, "stderr": slave})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bulk", *args], stdin=slave, **streams,
            env={**os.environ, **env}, cwd=REPO,
        )
        os.close(slave)
        self.seen = b""

    def wait_for(self, text: str, seconds: float = 30.0) -> str:
        end = time.monotonic() + seconds
        while text.encode() not in self.seen:
            left = end - time.monotonic()
            assert left > 0, f"never saw {text!r}; saw {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed its end
                    chunk = b""
                if not chunk:
                    break
                self.seen += chunk
        assert text.encode() in self.seen, f"never saw {text!r}; saw {self.seen!r}"
        return self.seen.decode()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> tuple[int, str]:
        out, err = self.proc.communicate(timeout=60)
        self.drain()
        os.close(self.master)
        return self.proc.returncode, (out or err or b"").decode()

    def drain(self) -> None:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.seen += chunk


def _input(sandbox, tmp_path: Path, n: int = 3) -> Path:
    return write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, f"Confirmed {i}"] for i, rid in enumerate(run_ids(sandbox, n))])


def _question(sandbox, n: int) -> str:
    host = sandbox.base_url.split("://", 1)[1].split("/", 1)[0]
    return f"change {n} records of runs in organization {sandbox.org_id} at {host}? [y/N]"


def test_a_no_at_the_terminal_sends_no_write_and_exits_3(threaded_sandbox, tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path)
    term = Terminal(["apply", "--input", str(path), "--rate", "1000", "-q"],
                    env_for(threaded_sandbox))

    term.wait_for(_question(threaded_sandbox, 3))
    assert threaded_sandbox.stats.writes == 0  # asked before the first row
    term.type("n\n")
    code, out = term.finish()
    assert out == ""  # no summary: the job never started

    assert code == 3
    assert "not confirmed" in term.seen.decode() and "nothing was sent" in term.seen.decode()
    assert threaded_sandbox.stats.writes == 0
    status = CliRunner().invoke(main, ["status", str(path) + ".ledger.db"])
    assert "not confirmed" in status.output


def test_a_yes_at_the_terminal_runs_the_job(threaded_sandbox, tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path)
    term = Terminal(["apply", "--input", str(path), "--rate", "1000", "-q"],
                    env_for(threaded_sandbox))

    term.wait_for(_question(threaded_sandbox, 3))
    term.type("y\n")
    code, out = term.finish()

    assert code == 0, term.seen
    assert out.startswith("done: 3 rows: ok 3")
    assert threaded_sandbox.stats.writes == 3


def test_yes_on_a_terminal_asks_nothing(threaded_sandbox, tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path, 2)
    term = Terminal(["apply", "--input", str(path), "--rate", "1000", "-q", "--yes"],
                    env_for(threaded_sandbox))

    code, out = term.finish()

    assert code == 0, term.seen
    assert "[y/N]" not in term.seen.decode()
    assert out.startswith("done: 2 rows: ok 2")


def test_a_dry_run_and_a_finished_job_ask_nothing(threaded_sandbox, tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path, 2)
    env = env_for(threaded_sandbox)
    assert CliRunner().invoke(main, ["apply", "--input", str(path)], env=env).exit_code == 0

    for extra in (["--dry-run"], []):  # a rehearsal writes nothing; a resume has nothing left
        term = Terminal(["apply", "--input", str(path), "--rate", "1000", "-q", *extra], env)
        code, _ = term.finish()
        assert code == 0, term.seen
        assert "[y/N]" not in term.seen.decode()


def test_a_script_is_never_asked(threaded_sandbox, tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path, 2)

    # stdin is not a terminal: even an "n" waiting on it is not read as an answer
    result = CliRunner().invoke(main, ["apply", "--input", str(path), "--rate", "1000"],
                                env=env_for(threaded_sandbox), input="n\n")

    assert result.exit_code == 0, result.output
    assert "[y/N]" not in result.output
    assert threaded_sandbox.stats.writes == 2


def test_undo_apply_asks_too(threaded_sandbox, tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path, 2)
    env = env_for(threaded_sandbox)
    assert CliRunner().invoke(main, ["apply", "--input", str(path)], env=env).exit_code == 0
    writes = threaded_sandbox.stats.writes

    term = Terminal(["undo", str(path) + ".ledger.db", "--apply", "--rate", "1000", "-q"], env)
    term.wait_for(_question(threaded_sandbox, 2))
    term.type("no\n")
    code, _ = term.finish()

    assert code == 3
    assert threaded_sandbox.stats.writes == writes


def test_ctrl_c_at_the_question_sends_nothing(threaded_sandbox, tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path)
    term = Terminal(["apply", "--input", str(path), "--rate", "1000", "-q"],
                    env_for(threaded_sandbox))

    term.wait_for("[y/N]")
    term.proc.send_signal(signal.SIGINT)
    code, _ = term.finish()

    assert code == 130
    assert "nothing was sent" in term.seen.decode()
    assert "Traceback" not in term.seen.decode()
    assert threaded_sandbox.stats.writes == 0


def test_with_stderr_in_a_file_the_question_is_asked_where_it_is_seen(threaded_sandbox,
                                                                       tmp_path) -> None:
    path = _input(threaded_sandbox, tmp_path, 2)
    term = Terminal(["apply", "--input", str(path), "--rate", "1000", "-q"],
                    env_for(threaded_sandbox), stderr_to_file=True)

    term.wait_for(_question(threaded_sandbox, 2))  # on stdout, the terminal
    term.type("y\n")
    code, _ = term.finish()

    assert code == 0
    assert "done: 2 rows: ok 2" in term.seen.decode()
