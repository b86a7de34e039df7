"""Start-up: `bulk --help`, `bulk status` and `bulk export` load only what they use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bulk.engine.ledger import Entry, Ledger

#: What these commands never need: the HTTP stack, the sandbox server, the event loop,
#: the progress bar.
HEAVY = ("aiohttp", "bulk.sandbox", "asyncio", "tqdm", "bulk.tallyfy")

PROBE = f"""
import sys
from bulk.cli import main
try:
    main(sys.argv[1:], prog_name="bulk")
except SystemExit:
    pass
heavy = sorted({{".".join(name.split(".")[:2]) for name in sys.modules
                if name.startswith({HEAVY!r})}})
print("LOADED:" + ",".join(heavy), file=sys.stderr)
"""


def _loaded(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, timeout=30, check=False)
    line = [text for text in done.stderr.splitlines() if text.startswith("LOADED:")]
    assert line, done.stderr
    return [name for name in line[-1][len("LOADED:"):].split(",") if name]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "job.ledger.db"
    with Ledger(path) as book:
        book.claim({"input_sha256": "ab", "target": "runs", "org": "o"})
        book.record(Entry(row=1, status="ok", record_id="a" * 32))
        book.record(Entry(row=2, status="failed", error="HTTP 404 on GET runs/x: not found"))
    return path


@pytest.mark.parametrize("args", [["--help"], ["status"], ["export"], ["--version"]])
def test_light_commands_do_not_load_the_http_stack_or_the_sandbox(args, ledger) -> None:
    if args[0] in ("status", "export"):
        args = [*args, str(ledger)]
    assert _loaded(*args) == []


def test_the_sandbox_command_is_still_there_when_asked_for() -> None:
    done = subprocess.run([sys.executable, "-m", "bulk", "sandbox", "--help"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0
    assert "--rate-limit" in done.stdout
