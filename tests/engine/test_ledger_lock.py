"""One run per ledger: the run lock, in one process and across real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bulk.engine.errors import LedgerInUse
from bulk.engine.ledger import OK, Entry, Ledger, open_existing

ROOT = Path(__file__).resolve().parents[2]
FINGERPRINT = {"input_sha256": "aaaa", "target": "runs", "org": "org1"}

HOLD = textwrap.dedent(
    """
    import sys, time
    from bulk.engine.ledger import Entry, Ledger

    ledger = Ledger(sys.argv[1])
    ledger.claim({"input_sha256": "aaaa", "target": "runs", "org": "org1"})
    ledger.record(Entry(row=1, status="ok"))
    ledger.commit()
    print("holding", flush=True)
    time.sleep(120)
    """
)


def hold_in_another_process(path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == "holding\n", process.stderr.read() if process.stderr else ""
    return process


def stop(process: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    process.communicate(timeout=30)


def test_a_second_open_in_the_same_process_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as first:
        first.claim(FINGERPRINT)
        with pytest.raises(LedgerInUse) as raised:
            Ledger(path)
        message = str(raised.value)
        assert str(path) in message and f"pid {os.getpid()}, since " in message
        assert "\n" not in message
        first.record(Entry(row=1, status=OK))  # the holder is unharmed
    with Ledger(path) as again:  # released by close()
        assert again.get(1).status == OK


def test_another_process_holding_the_ledger_is_named_and_fresh_cannot_clear_it(tmp_path):
    path = tmp_path / "l.db"
    holder = hold_in_another_process(path)
    try:
        with pytest.raises(LedgerInUse, match=f"pid {holder.pid}, since 20"):
            Ledger(path)
        # Reading is still allowed while it runs.
        with open_existing(path) as reader:
            assert reader.get(1).status == OK and "fingerprint" in reader.meta()
    finally:
        stop(holder, signal.SIGTERM)
    with Ledger(path) as ledger:  # the holder is gone: the ledger is free, entries kept
        assert ledger.claim(FINGERPRINT) is True


def test_kill_9_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "l.db"
    holder = hold_in_another_process(path)
    stop(holder, signal.SIGKILL)
    assert holder.returncode == -9
    assert Path(f"{path}.lock").exists()  # the file stays; the lock died with the process
    with Ledger(path) as ledger:
        assert ledger.claim(FINGERPRINT) is True
        assert ledger.get(1).status == OK


def test_a_refused_second_open_leaves_the_holders_lock_record(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path):
        lock_record = Path(f"{path}.lock").read_text(encoding="utf-8")
        with pytest.raises(LedgerInUse):
            Ledger(path)
        assert Path(f"{path}.lock").read_text(encoding="utf-8") == lock_record
        assert f'"pid": {os.getpid()}' in lock_record


def test_readers_take_no_lock(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        ledger.claim(FINGERPRINT)
    with open_existing(path), open_existing(path), Ledger(path) as writer:
        writer.record(Entry(row=1, status=OK))
