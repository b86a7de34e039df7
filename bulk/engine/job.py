"""The worker pool: rows flow from a reader through a bounded queue to N workers.

The job decides which rows to skip on resume, records every outcome in the ledger, and
handles stopping: `interrupt()` (first Ctrl-C or SIGTERM) stops taking rows and lets
in-flight rows finish within a grace period; a second `interrupt()` stops at once;
`abort()` (a 401, say) stops like the first interrupt and marks the job aborted. All
three are plain methods, so tests call them directly. A ledger that cannot be written
(disk full) stops the job like the first interrupt too, and `run()` then raises that
`LedgerWriteError`: a row whose in-doubt mark was not committed never sends its write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bulk.engine.clock import Clock, LoopClock
from bulk.engine.collector import fewer_collections
from bulk.engine.errors import AuthError, LedgerWriteError, NotBegun, StopJob
from bulk.engine.ledger import FAILED, IN_DOUBT, PENDING, RETRYABLE, TERMINAL, Entry, Ledger
from bulk.engine.one_at_a_time import OneAtATime
from bulk.engine.row_context import Handler, Observer, RowContext, Silent, WorkItem
from bulk.engine.second_chance import SECOND_CHANCE_PAUSE, SecondChance
from bulk.engine.stops import FailureWatch
from bulk.engine.summary import Summary

log = logging.getLogger(__name__)

#: Rows of ledger state fetched at a time while walking the input on resume: keeps
#: memory flat however long the input is.
RESUME_WINDOW = 10_000


class Job:
    def __init__(
        self,
        *,
        rows: Iterable[tuple[int, Any]],
        total: int,
        handler: Handler,
        ledger: Ledger,
        concurrency: int = 8,
        retry_failed: bool = False,
        grace: float = 10.0,
        flush_every: float = 0.5,
        observer: Observer | None = None,
        before_first_row: Callable[[], Awaitable[None]] | None = None,
        max_failures: int | None = None,
        clock: Clock | None = None,
        second_chance_pause: float = SECOND_CHANCE_PAUSE,
        key_of: Callable[[Any], str | None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._rows = rows
        self._handler = handler
        self._ledger = ledger
        self._concurrency = concurrency
        self._retry_failed = retry_failed
        self._grace = grace
        self._flush_every = flush_every
        self._observer = observer or Silent()
        #: A check run once before the first row is handed out (none when nothing is
        #: left to do); an AuthError or StopJob from it aborts the job.
        self._before_first_row = before_first_row
        self._watch = FailureWatch(max_failures=max_failures)
        self._clock = clock or LoopClock()
        self._later = SecondChance(second_chance_pause)
        #: The item's key (see WorkItem.key): items of one key never overlap.
        self._key_of = key_of
        self._order = OneAtATime(limit=concurrency * 64)
        self._in_queue = 0  # rows handed to the queue and not yet finished
        self._drained: asyncio.Event | None = None
        self.summary = Summary(ledger_path=ledger.path, total=total)
        self._stopping = False
        self._busy: set[asyncio.Task[Any]] = set()
        self._feed_error: BaseException | None = None
        self._worker_error: BaseException | None = None
        self._ledger_error: LedgerWriteError | None = None
        self._stop: asyncio.Event | None = None
        self._hard_stop: asyncio.Event | None = None
        self._ended = False

    # -- control (plain methods: signal handlers and tests call them) ----------------
    def interrupt(self, by: str = "interrupt") -> None:
        """First call: finish in-flight rows, take no more. Second call: stop now.
        `by` names the stop in the job's history ("Ctrl-C", "signal SIGTERM")."""
        if self._ended:
            return  # a signal after the last row: the summary is already what happened
        if self._stopping:
            if self._hard_stop is not None:
                self._hard_stop.set()
            return
        self.summary.interrupted = True
        self.summary.stopped_by = by
        self._begin_stop()

    def abort(self, reason: str, how: str = "stopped") -> None:
        """Stop taking rows because every later row would fail the same way."""
        if self.summary.aborted is None:
            self.summary.aborted = reason
            self.summary.stopped_by = how
        self._begin_stop()

    def _ledger_failed(self, exc: LedgerWriteError) -> None:
        """The ledger cannot be written: take no more rows (outcomes could not be kept)."""
        if self._ledger_error is None:
            self._ledger_error = exc
        self._begin_stop()

    def _record(self, entry: Entry) -> None:
        self._write(self._ledger.record, entry)  # commits when the batch is full

    def _commit(self) -> bool:
        return self._write(self._ledger.commit)

    def _write(self, write: Callable[..., None], *args: Any) -> bool:
        try:
            write(*args)
        except LedgerWriteError as exc:
            self._ledger_failed(exc)  # what was not written stays buffered, for later
            return False
        return True

    def _begin_stop(self) -> None:
        self._stopping = True
        if self._stop is not None:
            self._stop.set()

    # -- running --------------------------------------------------------------------
    async def run(self) -> Summary:
        with fewer_collections():
            return await self._run()

    async def _run(self) -> Summary:
        self._stop = asyncio.Event()
        self._hard_stop = asyncio.Event()
        self._drained = asyncio.Event()
        if self._stopping:
            self._stop.set()
        queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=self._concurrency * 2)
        started = time.monotonic()
        self._observer.start(self.summary.total)
        feeder = asyncio.create_task(self._feed(queue), name="feeder")
        feeder.add_done_callback(self._feeder_done)
        flusher = asyncio.create_task(self._flush_periodically(), name="ledger-flusher")
        workers = [
            asyncio.create_task(self._work(queue), name=f"worker-{n}")
            for n in range(self._concurrency)
        ]
        for worker in workers:
            worker.add_done_callback(self._worker_done)
        stop_wait = asyncio.create_task(self._stop.wait())
        everyone = asyncio.gather(*workers, return_exceptions=True)
        try:
            await asyncio.wait([everyone, stop_wait], return_when=asyncio.FIRST_COMPLETED)
            if self._stopping:
                feeder.cancel()
                await self._wind_down(workers)
        finally:
            for task in (feeder, flusher, stop_wait, *workers):
                task.cancel()
            await asyncio.gather(feeder, flusher, stop_wait, everyone, return_exceptions=True)
            self._commit()
            self._observer.close()
            self.summary.elapsed = time.monotonic() - started
            self.summary.ledger_counts = self._ledger.counts()
            self._ended = True
        if self._ledger_error is not None:
            raise self._ledger_error
        if self._feed_error is not None:
            raise self._feed_error
        if self._worker_error is not None:
            raise self._worker_error
        return self.summary

    def _feeder_done(self, feeder: asyncio.Task[None]) -> None:
        # The input broke part way (it was checked whole before, so this is rare: a file
        # changed under us). Stop like an interrupt, then let run() report it.
        if not feeder.cancelled() and feeder.exception() is not None:
            self._feed_error = feeder.exception()
            self._begin_stop()

    def _worker_done(self, worker: asyncio.Task[None]) -> None:
        # A worker died of an error outside any handler (the ledger could not be
        # written, the display broke): the rows it would have taken are never done, so
        # stop like an interrupt and let run() raise it, rather than report success.
        if worker.cancelled() or worker.exception() is None:
            return
        if self._worker_error is None:
            self._worker_error = worker.exception()
        self._begin_stop()

    async def _wind_down(self, workers: list[asyncio.Task[None]]) -> None:
        """Give in-flight rows the grace period (cut short by a second interrupt)."""
        assert self._hard_stop is not None
        for worker in workers:
            if worker not in self._busy:  # idle, waiting for a row that will not come
                worker.cancel()
        pending = [worker for worker in workers if not worker.done()]
        if not pending:
            return
        hard = asyncio.create_task(self._hard_stop.wait())
        try:
            await asyncio.wait(
                [asyncio.gather(*pending, return_exceptions=True), hard],
                timeout=self._grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            hard.cancel()
        for worker in pending:
            worker.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _feed(self, queue: asyncio.Queue[WorkItem | None]) -> None:
        if self._nothing_left():
            # Resuming a finished job: no need to walk a million rows to skip them all.
            self.summary.skipped = self.summary.total
            self._observer.skip(self.summary.total)
        elif await self._ready():
            await self._feed_rows(queue)
            await self._second_pass(queue)
        for _ in range(self._concurrency):
            await queue.put(None)

    async def _ready(self) -> bool:
        if self._before_first_row is None:
            return True
        try:
            await self._before_first_row()
        except AuthError as exc:
            self.abort(f"authentication failed: {exc.describe()}", "authentication")
            return False
        except StopJob as exc:
            self.abort(str(exc), exc.how)
            return False
        return True

    def _nothing_left(self) -> bool:
        skippable = TERMINAL - RETRYABLE if self._retry_failed else TERMINAL
        total = self.summary.total
        done = self._ledger.count(skippable, last_row=total)
        if not self._retry_failed:  # transient failures are retried without being asked
            done -= self._ledger.count_transient_failures(last_row=total)
        return total > 0 and done == total

    async def _feed_rows(self, queue: asyncio.Queue[WorkItem | None]) -> None:
        window: dict[int, str] = {}
        transient: set[int] = set()
        window_end = 0
        since_yield = 0
        for row, payload in self._rows:
            if self._stopping:
                return
            if row > window_end:
                window_end = row + RESUME_WINDOW - 1
                window = self._ledger.statuses(row, window_end)
                transient = self._ledger.transient_failures(row, window_end)
            status = window.get(row)
            # Asked-for retries (failed, conflict), and transient failures without asking.
            retry = (status in RETRYABLE and self._retry_failed) or (
                status == FAILED and row in transient)
            if status in TERMINAL and not retry:
                self.summary.skipped += 1
                self._observer.advance(None)
                since_yield += 1
                if since_yield >= 1000:  # keep signals and the display responsive
                    since_yield = 0
                    await asyncio.sleep(0)
                continue
            previous = self._ledger.get(row) if status is not None else None
            await self._put(queue, self._item(row, payload, previous))

    def _item(self, row: int, payload: Any, previous: Entry | None) -> WorkItem:
        key = self._key_of(payload) if self._key_of is not None else None
        return WorkItem(row, payload, previous, key)

    async def _put(self, queue: asyncio.Queue[WorkItem | None], item: WorkItem) -> None:
        assert self._drained is not None
        self._in_queue += 1
        self._drained.clear()
        await queue.put(item)

    async def _second_pass(self, queue: asyncio.Queue[WorkItem | None]) -> None:
        """Once every row has been tried, try the transient failures again after a pause."""
        assert self._drained is not None
        if self._in_queue:
            await self._drained.wait()
        kept = self._later.take()
        if not kept or self._stopping:
            return
        log.info("trying %d rows again in %.0f s", len(kept), self._later.pause)
        await self._clock.sleep(self._later.pause)
        extend = getattr(self._observer, "extend", None)
        if extend is not None:
            extend(len(kept))
        for row, payload, entry in kept:
            if self._stopping:
                return
            self.summary.done[entry.status] -= 1  # counted again when it ends
            self.summary.second_chance += 1
            await self._put(queue, self._item(row, payload, entry))

    async def _work(self, queue: asyncio.Queue[WorkItem | None]) -> None:
        order = self._order
        while not self._stopping:
            await order.room()  # items parked behind their key stay few
            item: WorkItem | None = await queue.get()
            if item is None or self._stopping:
                return
            if not order.take(item.key, item):
                continue  # parked: the worker on its key runs it after the one before
            key = item.key
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            try:
                # This worker owns the key until every item parked behind it is done.
                while item is not None and not self._stopping:
                    await self._process_in_order(item)
                    self._finished_one()
                    item = order.next_for(key)
            finally:
                self._busy.discard(task)
                order.release(key)

    def _finished_one(self) -> None:
        self._in_queue -= 1
        if self._in_queue == 0 and self._drained is not None:
            self._drained.set()

    async def _process_in_order(self, item: WorkItem) -> None:
        """Run the item, unless an earlier item of its key is not settled: then it waits."""
        held = self._order.blocker(item.key, item.row)
        if held is None:
            entry = await self._process(item)
            if entry is not None and (entry.status not in TERMINAL
                                      or SecondChance.deserves(entry)):
                # In doubt (its write may still land) or tried again at the end: a later
                # row of this record run now could be undone by it, so later ones wait.
                self._order.block(item.key, entry.row, again=SecondChance.deserves(entry))
            return
        if item.previous is not None and item.previous.status == IN_DOUBT:
            return  # its own write may have landed: it stays in doubt for the next run
        row, again = held
        entry = Entry(row=item.row, status=PENDING,
                      error=f"waits for row {row} of the same record, not settled yet")
        if item.previous is not None:
            entry.record_id, entry.input = item.previous.record_id, item.previous.input
        self._record(entry)
        self.summary.done[PENDING] += 1
        self._observer.advance(entry)
        if again:  # after its blocker, in the end pass
            self._later.hold(item.row, item.payload, entry)

    async def _process(self, item: WorkItem) -> Entry | None:
        context = RowContext(self._ledger, item, lambda: self._stopping)
        was_in_doubt = context.in_doubt
        try:
            entry = await self._handler(item, context)
        except AuthError as exc:
            self.abort(f"authentication failed: {exc.describe()}", "authentication")
            self._leave_unfinished(item, context, str(exc.describe()), exc.status)
            return None
        except LedgerWriteError as exc:
            # Its in-doubt mark was not committed, so its write was not sent.
            self._ledger_failed(exc)
            self._leave_unfinished(item, context, "stopped: the ledger could not be written",
                                   None)
            return None
        except StopJob as exc:
            self.abort(str(exc), exc.how)
            self._leave_unfinished(item, context, str(exc), None)
            return None
        except NotBegun as exc:
            self._leave_unfinished(item, context, str(exc), None)
            return None
        except asyncio.CancelledError:
            self._leave_unfinished(item, context, "stopped before the row finished", None)
            raise
        except Exception as exc:  # a bug must cost one row, not the job
            log.exception("row %s: unexpected error", item.row)
            entry = self._internal_error(item, context, exc)
        if was_in_doubt and entry.status in TERMINAL:
            self.summary.settled += 1
        if entry.read_back:
            self.summary.read_back += 1
        self._record(entry)
        self.summary.done[entry.status] += 1
        self._observer.advance(entry)
        self._later.offer(item.row, item.payload, entry)
        stop = self._watch.verdict(entry, again=self._later.passing)
        if stop is not None:
            self.abort(stop, "failure stop")
        return entry

    @staticmethod
    def _internal_error(item: WorkItem, context: RowContext, exc: Exception) -> Entry:
        # Keep what the ledger already knows of the row (record id, input for export).
        # A row whose write may have landed stays in doubt with its before-values, so
        # the next run settles it; as `failed` it would lose them for good.
        entry = Entry(row=item.row, status=FAILED, error=f"internal error: {exc!r}")
        known = context.doubt_entry or item.previous
        if known is not None:
            entry.record_id = known.record_id
            entry.input = known.input
            entry.attempts = known.attempts
        if context.doubt_entry is not None:
            entry.status = IN_DOUBT
            entry.before, entry.after = known.before, known.after
        return entry

    def _leave_unfinished(
        self, item: WorkItem, context: RowContext, error: str, http_status: int | None
    ) -> None:
        # An in-doubt row stays in doubt (its write may have landed); any other row is
        # left pending, so the next run does it again.
        if context.in_doubt:
            return
        self._record(Entry(row=item.row, status=PENDING, error=error, http_status=http_status))

    async def _flush_periodically(self) -> None:
        # Bounds what a crash can lose to the rows finished in the last moment.
        while True:
            await asyncio.sleep(self._flush_every)
            if not self._commit():
                return
