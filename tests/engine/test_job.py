"""The worker pool: processing, concurrency, resume, interrupt, abort, failures, summary.

Handlers are plain coroutines (no HTTP) and block on asyncio.Events, so every test says
exactly when a row starts and finishes. The ledger is real, in tmp_path.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bulk.engine.errors import AuthError, InputError
from bulk.engine.job import Job
from bulk.engine.ledger import (
    FAILED,
    IN_DOUBT,
    INVALID,
    OK,
    PENDING,
    UNCHANGED,
    Entry,
    Ledger,
)
from bulk.engine.row_context import RowContext, WorkItem
from bulk.engine.summary import Summary


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "job.ledger.db") as opened:
        yield opened


def rows(count: int, first: int = 1) -> list[tuple[int, dict]]:
    return [(n, {"id": f"rec{n}"}) for n in range(first, first + count)]


def make_job(ledger: Ledger, handler, count: int = 10, **options) -> Job:
    options.setdefault("concurrency", 3)
    options.setdefault("grace", 30.0)
    options.setdefault("flush_every", 0.01)
    return Job(rows=rows(count), total=count, handler=handler, ledger=ledger, **options)


def statuses(ledger: Ledger) -> dict[int, str]:
    return {entry.row: entry.status for entry in ledger.entries()}


async def ok_handler(item: WorkItem, context: RowContext) -> Entry:
    await asyncio.sleep(0)
    return Entry(row=item.row, status=OK, record_id=item.payload["id"], http_status=200)


class Gate:
    """Handlers that report when they start and wait to be let go."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.started: list[int] = []
        self.finished: list[int] = []
        self.cancelled: list[int] = []
        self.all_started = asyncio.Event()
        self.open = asyncio.Event()

    def arrive(self, row: int) -> None:
        self.started.append(row)
        if len(self.started) >= self.expected:
            self.all_started.set()

    async def handler(self, item: WorkItem, context: RowContext) -> Entry:
        self.arrive(item.row)
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled.append(item.row)
            raise
        self.finished.append(item.row)
        return Entry(row=item.row, status=OK)


# -- the normal run -----------------------------------------------------------------


async def test_every_row_is_processed_and_recorded(ledger):
    seen: list[int] = []

    async def handler(item, context):
        seen.append(item.row)
        assert item.previous is None
        assert context.in_doubt is False
        return await ok_handler(item, context)

    summary = await make_job(ledger, handler, count=25, concurrency=4).run()
    assert sorted(seen) == list(range(1, 26))
    assert statuses(ledger) == dict.fromkeys(range(1, 26), OK)
    assert ledger.get(7).record_id == "rec7"
    assert summary.done == Counter({OK: 25})
    assert summary.skipped == 0
    assert summary.ledger_counts[OK] == 25
    assert summary.exit_code == 0
    assert not summary.interrupted and summary.aborted is None


async def test_an_empty_input_is_a_clean_run(ledger):
    summary = await make_job(ledger, ok_handler, count=0).run()
    assert summary.done == Counter()
    assert summary.exit_code == 0


async def test_concurrency_is_the_number_of_simultaneous_handlers(ledger):
    active = 0
    peak = 0
    three_in = asyncio.Event()
    gate = asyncio.Event()

    async def handler(item, context):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 3:
            three_in.set()
        await gate.wait()
        active -= 1
        return Entry(row=item.row, status=OK)

    run = asyncio.create_task(make_job(ledger, handler, count=20, concurrency=3).run())
    await three_in.wait()
    for _ in range(20):  # plenty of turns for a fourth worker to show up, if there were one
        await asyncio.sleep(0)
    assert active == 3
    gate.set()
    summary = await run
    assert peak == 3
    assert summary.done[OK] == 20


async def test_the_queue_is_bounded(ledger):
    pulled: list[int] = []

    def source():
        for row in range(1, 1001):
            pulled.append(row)
            yield row, {}

    gate = Gate(expected=2)
    job = Job(
        rows=source(),
        total=1000,
        handler=gate.handler,
        ledger=ledger,
        concurrency=2,
        grace=30.0,
        flush_every=0.01,
    )
    run = asyncio.create_task(job.run())
    await gate.all_started.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    # 2 rows in the handlers + a queue of 2 x concurrency, and one more the feeder holds.
    assert len(pulled) <= 2 + 4 + 1
    job.interrupt()
    job.interrupt()
    await run


async def test_finished_rows_are_flushed_while_the_job_runs(ledger):
    first_done = asyncio.Event()
    gate = asyncio.Event()

    async def handler(item, context):
        if item.row == 1:
            return Entry(row=1, status=OK)
        first_done.set()
        await gate.wait()
        return Entry(row=item.row, status=OK)

    run = asyncio.create_task(make_job(ledger, handler, count=2, concurrency=1).run())
    await first_done.wait()
    await asyncio.sleep(0.05)  # several flush intervals of 0.01 s
    with closing(sqlite3.connect(ledger.path)) as other:
        assert dict(other.execute("SELECT row, status FROM rows")) == {1: OK}
    gate.set()
    await run


# -- resume -------------------------------------------------------------------------


def seed(ledger: Ledger) -> None:
    ledger.record(Entry(row=1, status=OK))
    ledger.record(Entry(row=2, status=UNCHANGED))
    ledger.record(Entry(row=3, status=INVALID, error="bad id"))
    ledger.record(Entry(row=4, status=FAILED, error="HTTP 422", record_id="rec4"))
    ledger.record(Entry(row=5, status=IN_DOUBT, before={"name": "old"}, after={"name": "new"}))
    ledger.record(Entry(row=6, status=PENDING, error="stopped before the row finished"))
    ledger.commit()


class Recorder:
    def __init__(self) -> None:
        self.items: dict[int, WorkItem] = {}
        self.in_doubt: dict[int, bool] = {}

    async def handler(self, item, context):
        self.items[item.row] = item
        self.in_doubt[item.row] = context.in_doubt
        return Entry(row=item.row, status=OK)


async def test_resume_skips_terminal_rows_and_passes_previous_entries(ledger):
    seed(ledger)
    recorder = Recorder()
    summary = await make_job(ledger, recorder.handler, count=8).run()
    assert sorted(recorder.items) == [5, 6, 7, 8]
    assert summary.skipped == 4
    previous = {row: item.previous for row, item in recorder.items.items()}
    assert previous[5].status == IN_DOUBT
    assert previous[5].before == {"name": "old"}
    assert previous[6].status == PENDING
    assert previous[7] is None and previous[8] is None
    assert recorder.in_doubt == {5: True, 6: False, 7: False, 8: False}
    assert summary.settled == 1
    assert summary.done == Counter({OK: 4})
    assert statuses(ledger) == {
        1: OK,
        2: UNCHANGED,
        3: INVALID,
        4: FAILED,
        5: OK,
        6: OK,
        7: OK,
        8: OK,
    }
    assert summary.exit_code == 1  # row 4 is still failed, row 3 invalid


async def test_resume_with_retry_failed_redoes_failed_rows(ledger):
    seed(ledger)
    recorder = Recorder()
    summary = await make_job(ledger, recorder.handler, count=8, retry_failed=True).run()
    assert sorted(recorder.items) == [4, 5, 6, 7, 8]
    assert recorder.items[4].previous.status == FAILED
    assert recorder.items[4].previous.record_id == "rec4"
    assert summary.skipped == 3
    assert statuses(ledger)[4] == OK


async def test_resume_of_a_finished_job_does_nothing(ledger):
    await make_job(ledger, ok_handler, count=12).run()
    calls = 0

    async def handler(item, context):
        nonlocal calls
        calls += 1
        return Entry(row=item.row, status=OK)

    summary = await make_job(ledger, handler, count=12).run()
    assert calls == 0
    assert summary.skipped == 12
    assert summary.done == Counter()
    assert summary.exit_code == 0


async def test_resume_of_a_finished_job_does_not_walk_the_input(ledger):
    await make_job(ledger, ok_handler, count=5).run()
    walked = []

    def source():
        for row in rows(5):
            walked.append(row[0])
            yield row

    progress = Progress()
    job = Job(rows=source(), total=5, handler=ok_handler, ledger=ledger, observer=progress)
    summary = await job.run()

    assert walked == []
    assert summary.skipped == 5
    assert progress.advanced == [None] * 5


async def test_a_failed_row_makes_resume_walk_the_input_only_with_retry_failed(ledger):
    await make_job(ledger, ok_handler, count=4).run()
    ledger.record(Entry(row=3, status=FAILED))
    ledger.commit()
    walked = []

    def source():
        for row in rows(4):
            walked.append(row[0])
            yield row

    plain = await Job(rows=source(), total=4, handler=ok_handler, ledger=ledger).run()
    assert walked == [] and plain.skipped == 4
    retry = await Job(rows=source(), total=4, handler=ok_handler, ledger=ledger,
                      retry_failed=True).run()
    assert walked == [1, 2, 3, 4]
    assert retry.skipped == 3 and retry.done == Counter({OK: 1})


async def test_resume_walks_the_ledger_in_windows(ledger, monkeypatch):
    monkeypatch.setattr("bulk.engine.job.RESUME_WINDOW", 3)
    for row in (1, 2, 4, 5, 7, 9, 10):
        ledger.record(Entry(row=row, status=OK))
    ledger.commit()
    recorder = Recorder()
    summary = await make_job(ledger, recorder.handler, count=11).run()
    assert sorted(recorder.items) == [3, 6, 8, 11]
    assert summary.skipped == 7


# -- stopping -----------------------------------------------------------------------


async def test_first_interrupt_finishes_in_flight_rows_and_takes_no_more(ledger):
    gate = Gate(expected=2)
    job = make_job(ledger, gate.handler, count=20, concurrency=2)
    run = asyncio.create_task(job.run())
    await gate.all_started.wait()
    job.interrupt()
    for _ in range(10):
        await asyncio.sleep(0)
    gate.open.set()  # the in-flight rows may finish after the interrupt
    summary = await run
    assert sorted(gate.started) == [1, 2]
    assert sorted(gate.finished) == [1, 2]
    assert statuses(ledger) == {1: OK, 2: OK}  # recorded; rows 3..20 untouched
    assert summary.interrupted is True
    assert summary.exit_code == 130
    assert summary.line().startswith("interrupted: 20 rows: ok 2,")
    assert "not done 18" in summary.line()


async def test_interrupt_before_the_run_processes_nothing(ledger):
    recorder = Recorder()
    job = make_job(ledger, recorder.handler, count=5)
    job.interrupt()
    summary = await job.run()
    assert recorder.items == {}
    assert ledger.count() == 0
    assert summary.exit_code == 130


@pytest.mark.looptime
async def test_grace_runs_out_in_flight_rows_are_left_unfinished(ledger, looptime):
    gate = Gate(expected=2)
    job = make_job(ledger, gate.handler, count=5, concurrency=2, grace=7.0)
    run = asyncio.create_task(job.run())
    await gate.all_started.wait()
    job.interrupt()
    summary = await run  # nobody opens the gate
    assert looptime == 7.0  # exactly the grace period
    assert sorted(gate.cancelled) == [1, 2]
    assert statuses(ledger) == {1: PENDING, 2: PENDING}
    assert ledger.get(1).error == "stopped before the row finished"
    assert summary.exit_code == 130


@pytest.mark.looptime
async def test_second_interrupt_stops_at_once(ledger, looptime):
    started = {1: asyncio.Event(), 2: asyncio.Event()}
    cancelled: list[int] = []

    async def handler(item, context):
        try:
            if item.row == 2:
                await context.mark_in_doubt(
                    Entry(row=2, status=PENDING, record_id="rec2", before={"name": "old"})
                )
                assert context.in_doubt is True
            started[item.row].set()
            await asyncio.Event().wait()  # never finishes
        except asyncio.CancelledError:
            cancelled.append(item.row)
            raise
        raise AssertionError("unreachable")

    job = make_job(ledger, handler, count=4, concurrency=2, grace=1000.0)
    run = asyncio.create_task(job.run())
    await started[1].wait()
    await started[2].wait()
    job.interrupt()
    await asyncio.sleep(0)
    job.interrupt()
    summary = await run
    assert looptime == 0  # no grace was waited
    assert sorted(cancelled) == [1, 2]
    assert statuses(ledger) == {1: PENDING, 2: IN_DOUBT}
    assert ledger.get(2).before == {"name": "old"}  # the durable entry stands
    assert summary.interrupted is True
    assert summary.exit_code == 130


async def test_auth_error_aborts_the_job_and_leaves_the_row_pending(ledger):
    seen: list[int] = []

    async def handler(item, context):
        seen.append(item.row)
        if item.row == 2:
            raise AuthError(401, {"message": "Unauthenticated."}, method="GET", path="runs/x")
        return Entry(row=item.row, status=OK)

    summary = await make_job(ledger, handler, count=10, concurrency=1).run()
    assert seen == [1, 2]  # no row taken after the 401
    assert statuses(ledger) == {1: OK, 2: PENDING}
    assert ledger.get(2).http_status == 401
    assert ledger.get(2).error == "HTTP 401: Unauthenticated. (GET runs/x)"
    assert summary.aborted == "authentication failed: HTTP 401: Unauthenticated. (GET runs/x)"
    assert summary.exit_code == 3
    assert summary.line().startswith("aborted (authentication failed: HTTP 401")


async def test_abort_lets_the_other_in_flight_rows_finish(ledger):
    others_in = asyncio.Event()
    release = asyncio.Event()
    started: list[int] = []

    async def handler(item, context):
        started.append(item.row)
        if item.row == 1:
            await others_in.wait()
            release.set()  # they resume only after this row's AuthError is handled
            raise AuthError(401)
        if len(started) == 3:
            others_in.set()
        await release.wait()
        return Entry(row=item.row, status=OK)

    summary = await make_job(ledger, handler, count=10, concurrency=3).run()
    assert sorted(started) == [1, 2, 3]
    assert statuses(ledger) == {1: PENDING, 2: OK, 3: OK}
    assert summary.exit_code == 3


async def test_an_in_doubt_row_stays_in_doubt_on_abort(ledger):
    ledger.record(Entry(row=1, status=IN_DOUBT, before={"name": "old"}))
    ledger.commit()

    async def handler(item, context):
        raise AuthError(401)

    summary = await make_job(ledger, handler, count=1).run()
    assert statuses(ledger) == {1: IN_DOUBT}
    assert ledger.get(1).before == {"name": "old"}
    assert summary.exit_code == 3


# -- failures -----------------------------------------------------------------------


async def test_an_unexpected_exception_fails_only_that_row(ledger, caplog):
    async def handler(item, context):
        if item.row == 3:
            raise RuntimeError("boom")
        return Entry(row=item.row, status=OK)

    with caplog.at_level(logging.ERROR, logger="bulk.engine.job"):
        summary = await make_job(ledger, handler, count=6).run()
    assert statuses(ledger) == {1: OK, 2: OK, 3: FAILED, 4: OK, 5: OK, 6: OK}
    assert ledger.get(3).error == "internal error: RuntimeError('boom')"
    assert summary.done == Counter({OK: 5, FAILED: 1})
    assert summary.exit_code == 1
    assert [r.getMessage() for r in caplog.records] == ["row 3: unexpected error"]


async def test_an_unexpected_exception_keeps_what_an_earlier_run_recorded(ledger, caplog):
    ledger.record(Entry(row=1, status=FAILED, record_id="rec1", input={"id": "rec1"}))
    ledger.commit()

    async def handler(item, context):
        raise KeyError("bug")

    with caplog.at_level(logging.CRITICAL):
        await make_job(ledger, handler, count=1, retry_failed=True).run()
    entry = ledger.get(1)
    assert entry.status == FAILED
    assert entry.error == "internal error: KeyError('bug')"
    assert (entry.record_id, entry.input) == ("rec1", {"id": "rec1"})


async def test_an_unexpected_exception_after_the_write_left_keeps_the_row_in_doubt(ledger, caplog):
    async def handler(item, context):
        await context.mark_in_doubt(
            Entry(
                row=item.row,
                status=PENDING,
                record_id="rec1",
                before={"name": "old"},
                after={"name": "new"},
            )
        )
        raise RuntimeError("crashed after the PUT")

    with caplog.at_level(logging.CRITICAL):
        summary = await make_job(ledger, handler, count=1).run()
    entry = ledger.get(1)
    # The write may have landed: the next run must settle it with the same before-values.
    assert entry.status == IN_DOUBT
    assert entry.before == {"name": "old"}
    assert entry.record_id == "rec1"
    assert entry.error == "internal error: RuntimeError('crashed after the PUT')"
    assert summary.exit_code == 1


async def test_invalid_rows_make_exit_code_1(ledger):
    async def handler(item, context):
        status = INVALID if item.row == 2 else UNCHANGED
        return Entry(row=item.row, status=status)

    summary = await make_job(ledger, handler, count=3).run()
    assert summary.done == Counter({UNCHANGED: 2, INVALID: 1})
    assert summary.exit_code == 1


async def test_a_broken_input_stops_the_job_and_is_raised(ledger):
    def source():
        yield 1, {"id": "rec1"}
        yield 2, {"id": "rec2"}
        raise InputError("input.csv: the file changed while it was read")

    job = Job(
        rows=source(),
        total=5,
        handler=ok_handler,
        ledger=ledger,
        concurrency=1,
        grace=30.0,
        flush_every=0.01,
    )
    with pytest.raises(InputError, match="the file changed"):
        await job.run()
    assert set(statuses(ledger)) <= {1, 2}
    assert set(statuses(ledger).values()) <= {OK}


async def test_a_crashing_observer_stops_the_job_loudly(ledger):
    class Broken:
        def start(self, total):
            pass

        def advance(self, entry):
            raise RuntimeError("display broke")

        def close(self):
            pass

    job = make_job(ledger, ok_handler, count=20, concurrency=2, observer=Broken())
    with pytest.raises(RuntimeError, match="display broke"):
        await job.run()


class Progress:
    def __init__(self) -> None:
        self.total: int | None = None
        self.advanced: list[str | None] = []
        self.closed = False

    def start(self, total):
        self.total = total

    def advance(self, entry):
        self.advanced.append(None if entry is None else entry.status)

    def skip(self, count):
        self.advanced.extend([None] * count)

    def close(self):
        self.closed = True


async def test_observer_sees_every_row(ledger):
    seed(ledger)
    progress = Progress()
    await make_job(ledger, ok_handler, count=8, observer=progress).run()
    assert progress.total == 8
    assert progress.advanced.count(None) == 4  # skipped on resume
    assert progress.advanced.count(OK) == 4
    assert progress.closed


def test_concurrency_must_be_positive(ledger):
    with pytest.raises(ValueError, match="at least 1"):
        make_job(ledger, ok_handler, concurrency=0)


# -- the summary --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "interrupted", "aborted", "code"),
    [
        ({OK: 3, UNCHANGED: 1}, False, None, 0),
        ({OK: 3, FAILED: 1}, False, None, 1),
        ({OK: 3, INVALID: 1}, False, None, 1),
        ({OK: 3, IN_DOUBT: 1}, False, None, 1),
        ({OK: 3, PENDING: 1}, False, None, 1),
        ({OK: 3}, True, None, 130),
        ({OK: 3, FAILED: 1}, True, None, 130),
        ({OK: 3}, True, "authentication failed", 3),
        ({OK: 3}, False, "authentication failed", 3),
    ],
)
def test_exit_codes(counts, interrupted, aborted, code):
    summary = Summary(
        ledger_path=Path("x.db"),
        total=4,
        ledger_counts=counts,
        interrupted=interrupted,
        aborted=aborted,
    )
    assert summary.exit_code == code


def test_summary_line_has_the_counts_elapsed_time_and_ledger_path():
    summary = Summary(
        ledger_path=Path("/data/runs.csv.ledger.db"),
        total=10,
        done=Counter({OK: 5, FAILED: 1}),
        skipped=3,
        settled=1,
        ledger_counts={OK: 7, UNCHANGED: 1, INVALID: 0, FAILED: 1, IN_DOUBT: 0, PENDING: 0},
        elapsed=2.0,
    )
    line = summary.line()
    assert line == (
        "done: 10 rows: ok 7, unchanged 1, invalid 0, failed 1, not done 1 | "
        "6 processed in 2.0s (3 rows/s), 3 skipped as done before, 1 in-doubt settled "
        "| ledger /data/runs.csv.ledger.db"
    )
    assert "\n" not in line


async def test_summary_line_of_a_real_run(ledger):
    summary = await make_job(ledger, ok_handler, count=4).run()
    line = summary.line()
    assert line.startswith("done: 4 rows: ok 4, unchanged 0, invalid 0, failed 0 | 4 processed")
    assert line.endswith(f"| ledger {ledger.path}")
    assert "not done" not in line
