"""Ctrl-C / SIGTERM on a real `bulk apply` process, then resume."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

import pytest

from bulk.engine.ledger import Ledger
from bulk.ledger_views.status_export import status_lines
from bulk.sandbox import Sandbox
from tests.support.helpers import (
    config,
    rename_csv,
    run_ids,
    run_job,
    start_apply,
    wait_for_rows,
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_first_signal_finishes_in_flight_rows_and_exits_130(tmp_path, sig) -> None:
    async with Sandbox(config(runs=60, latency_ms=40), port=0) as sandbox:
        ids = run_ids(sandbox)
        path = rename_csv(tmp_path / "r.csv", ids, "Stop")
        ledger = tmp_path / "l.db"
        process = await start_apply(sandbox, path, ledger)
        try:
            await wait_for_rows(ledger, "ok", 4)
            process.send_signal(sig)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        assert process.returncode == 130, stderr.decode()
        assert stdout.decode().startswith("interrupted: 60 rows: ok ")
        assert b"Traceback" not in stderr
        with sqlite3.connect(ledger) as db:
            statuses = dict(db.execute("SELECT status, COUNT(*) FROM rows GROUP BY status"))
        # In-flight rows were allowed to finish: nothing is left in doubt.
        assert statuses.get("in_doubt", 0) == 0
        assert 4 <= statuses["ok"] < 60
        how = "Ctrl-C" if sig == signal.SIGINT else "signal SIGTERM"
        with Ledger(ledger) as book:
            lines = list(status_lines(book))
        assert any(line.startswith("stopped:  ") and line.endswith(f"({how})")
                   for line in lines), lines
        assert "          to finish: run the same command again" in lines

        summary, entries = await run_job(sandbox, path, ledger=ledger)

        assert [e.status for e in entries] == ["ok"] * 60
        assert summary.skipped == statuses["ok"]
        assert max(sandbox.stats.writes_per_record.values()) == 1
        # The job is told whole: its first start, the stop and how, the resume, the end.
        with Ledger(ledger) as book:
            told = [line.split()[0] for line in status_lines(book)][3:8]
        assert told == ["started:", "stopped:", "resumed:", "ended:", "time:"]


async def test_a_second_ctrl_c_stops_at_once_and_resume_settles_the_rest(tmp_path) -> None:
    # Writes take 1.5 s each: after a second Ctrl-C nobody waits for them. (Not 2 s: a
    # read answered 2 s after it left is too old to guard a write, so no PUT would leave;
    # the rows were in doubt only by their marks, written before the read's age was seen.)
    async with Sandbox(config(runs=30, latency_ms=1500), port=0) as sandbox:
        ids = run_ids(sandbox)
        path = rename_csv(tmp_path / "r.csv", ids, "Now")
        ledger = tmp_path / "l.db"
        process = await start_apply(sandbox, path, ledger)
        try:
            await wait_for_rows(ledger, "in_doubt", 2)
            process.send_signal(signal.SIGINT)
            await asyncio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        assert process.returncode == 130
        assert stdout.decode().startswith("interrupted:")
        with sqlite3.connect(ledger) as db:
            in_doubt = db.execute(
                "SELECT COUNT(*) FROM rows WHERE status = 'in_doubt'").fetchone()[0]
        assert in_doubt >= 2  # their PUTs were cut off, so the ledger says "in doubt"

        sandbox.latency_ms = 0
        summary, entries = await run_job(sandbox, path, ledger=ledger)

        assert [e.status for e in entries] == ["ok"] * 30, [e.error for e in entries]
        assert summary.settled >= in_doubt
        assert max(sandbox.stats.writes_per_record.values()) == 1
