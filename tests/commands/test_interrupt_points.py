"""Ctrl-C at every point outside the rows themselves: while checking, while starting,
between the last row and the summary, during the final ledger writes. Never a traceback,
always exit 130, and the ledger is one a second run finishes (or finds finished)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from bulk.engine.ledger import Ledger
from tests.support.helpers import ROOT, env_for, rename_csv, run_ids, run_job

ROWS = 12


async def bulk_interrupted_at(sandbox, point: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.interrupt_at", point, *args,
        cwd=ROOT, env={**env_for(sandbox), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 50)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _apply_args(path, ledger) -> list[str]:
    return ["apply", "--input", str(path), "--ledger", str(ledger), "--rate", "1000",
            "--burst", "50", "-q"]


@pytest.mark.parametrize("point", ["scan", "claim"])
async def test_ctrl_c_while_checking_sends_nothing_and_says_so(sandbox, tmp_path, point) -> None:
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, ROWS), "C")
    ledger = tmp_path / "l.db"

    code, stdout, stderr = await bulk_interrupted_at(sandbox, point, *_apply_args(path, ledger))

    assert code == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert stderr.strip() == "bulk: interrupted before the first row; nothing was sent"
    assert sandbox.stats.requests == 0
    _, entries = await run_job(sandbox, path, ledger=ledger)
    assert [e.status for e in entries] == ["ok"] * ROWS


async def test_ctrl_c_while_starting_stops_before_the_first_row(sandbox, tmp_path) -> None:
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, ROWS), "S")
    ledger = tmp_path / "l.db"

    code, stdout, stderr = await bulk_interrupted_at(sandbox, "startup",
                                                     *_apply_args(path, ledger))

    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert stdout.startswith(f"interrupted: {ROWS} rows: ok 0,"), stdout
    assert sandbox.stats.requests == 0
    with Ledger(ledger) as book:
        assert book.meta()["outcome"] == "interrupted" and book.meta()["finished_at"]
    _, entries = await run_job(sandbox, path, ledger=ledger)
    assert [e.status for e in entries] == ["ok"] * ROWS


@pytest.mark.parametrize("point", ["last-row", "session-close", "finish-meta", "ledger-close",
                                   "summary"])
async def test_ctrl_c_after_the_last_row_still_prints_the_summary(sandbox, tmp_path, point):
    path = rename_csv(tmp_path / "r.csv", run_ids(sandbox, ROWS), "L")
    ledger = tmp_path / "l.db"

    code, stdout, stderr = await bulk_interrupted_at(sandbox, point, *_apply_args(path, ledger))

    assert code == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert stdout.startswith(f"done: {ROWS} rows: ok {ROWS}, unchanged 0"), stdout
    assert stderr.strip() == "bulk: interrupted after the last row; the summary above is complete"
    with Ledger(ledger) as book:
        meta = book.meta()
        assert meta["outcome"] == "done" and meta["finished_at"], meta
        assert book.counts()["ok"] == ROWS
    writes = sandbox.stats.writes
    summary, _ = await run_job(sandbox, path, ledger=ledger)
    assert summary.skipped == ROWS and sandbox.stats.writes == writes
