"""Ctrl-C and the row gate: a row still waiting at the gate has not begun, so it does not
begin after the first Ctrl-C (only rows under way finish), and rows of one record parked
behind each other are neither lost nor run out of order on resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bulk.engine.clock import SkipClock
from bulk.engine.job import Job
from bulk.engine.ledger import OK, PENDING, Entry, Ledger
from bulk.engine.row_context import RowContext, WorkItem
from bulk.engine.row_gate import RowGate


class Held:
    """A handler whose first row waits until let go; notes the rows that ran."""

    def __init__(self) -> None:
        self.ran: list[int] = []
        self.first = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self, item: WorkItem, context: RowContext) -> Entry:
        self.ran.append(item.row)
        if len(self.ran) == 1:
            self.first.set()
            await self.go.wait()
        return Entry(row=item.row, status=OK)


def _job(ledger: Ledger, keys: str, handler) -> Job:
    gate = RowGate(lambda: 1)
    return Job(rows=[(n, {"key": k}) for n, k in enumerate(keys, start=1)], total=len(keys),
               handler=gate.wrap(handler), ledger=ledger, concurrency=4, flush_every=0.01,
               key_of=lambda payload: payload["key"], clock=SkipClock(),
               second_chance_pause=0.0)


async def test_ctrl_c_begins_no_row_waiting_at_the_gate_and_resume_keeps_order(
        tmp_path: Path) -> None:
    with Ledger(tmp_path / "job.ledger.db") as ledger:
        handler = Held()
        job = _job(ledger, "aabcd", handler)
        running = asyncio.create_task(job.run())
        await handler.first.wait()
        for _ in range(20):  # the other workers reach the gate and wait there
            await asyncio.sleep(0)
        job.interrupt("Ctrl-C")
        handler.go.set()
        summary = await running
        assert handler.ran == [1]  # only the row under way finished
        assert summary.interrupted
        statuses = {e.row: e.status for e in ledger.entries()}
        assert statuses.get(1) == OK
        assert all(status == PENDING for row, status in statuses.items() if row != 1)

        again = Held()
        again.go.set()
        await _job(ledger, "aabcd", again).run()
        assert sorted(again.ran) == [2, 3, 4, 5]
        assert {e.row: e.status for e in ledger.entries()} == dict.fromkeys(range(1, 6), OK)
