"""A ledger with every kind of outcome, made by a real job against the sandbox."""

from __future__ import annotations

from pathlib import Path

from bulk.engine.clock import SkipClock
from bulk.engine.ledger import Entry, Ledger
from bulk.sandbox import Sandbox
from tests.support.helpers import config, run_ids, run_job, write_csv

MISSING = "0" * 31 + "1"  # well-formed, but no such run: a 404


async def rich_ledger(tmp_path: Path) -> Path:
    """ok, unchanged, invalid, failed (404), in-doubt and conflict rows; 429s and pauses.

    A tight quota on one virtual clock for both sides gives real 429s and pauses with
    no real waiting. `in_doubt` and `conflict` are then recorded as a crash mid-write
    and a newer ledger (issue 8) would leave them.
    """
    clock = SkipClock()
    async with Sandbox(config(rate_limit=5, burst=5, clock=clock.now), port=0) as sandbox:
        ids = run_ids(sandbox, 30)
        rows = [[rid, f"Renamed {n}"] for n, rid in enumerate(ids[:24])]
        rows += [[ids[24], sandbox.store.runs[ids[24]]["name"]]]  # unchanged
        rows += [["not-an-id", "x"], ["also bad", "y"]]  # invalid
        rows += [[MISSING, "Gone"], [MISSING, "Gone again"]]  # failed: 404
        path = write_csv(tmp_path / "renames.csv", ["id", "name"], rows)
        await run_job(sandbox, path, clock=clock, concurrency=8)
        assert sandbox.stats.rate_limited > 0
    ledger = tmp_path / "renames.csv.ledger.db"
    with Ledger(ledger) as book:
        book.record(Entry(row=30, status="in_doubt", record_id=ids[25],
                          error="server closed the connection without an answer (PUT runs/x)",
                          before={"name": "Old"}, after={"name": "New"}))
        book.record(Entry(row=31, status="conflict", record_id=ids[26],
                          error="changed since it was read"))
        book.set_meta(rows="31")
    return ledger
