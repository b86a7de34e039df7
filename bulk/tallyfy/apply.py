"""`bulk apply` as a library call: one row's read-merge-write, and the job around it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bulk.engine.breaker import DEFAULT_OUTAGE_LIMIT, Breaker
from bulk.engine.clock import Clock, LoopClock
from bulk.engine.errors import (
    AuthError,
    ConfigError,
    HttpError,
    InputError,
    RowInvalid,
    TransportError,
)
from bulk.engine.job import Job, Observer, RowContext, Summary, WorkItem
from bulk.engine.ledger import FAILED, IN_DOUBT, INVALID, OK, UNCHANGED, Entry, Ledger, now_iso
from bulk.engine.pacing import Pacer
from bulk.engine.reader import InputFile, RawRow
from bulk.engine.retry import RetryPolicy, should_retry
from bulk.engine.second_chance import SECOND_CHANCE_PAUSE
from bulk.engine.stops import DEFINITIVE, TRANSIENT
from bulk.report import REPORT_COLUMNS
from bulk.tallyfy.client import TallyfyClient, api_headers
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.fields import TARGETS, Change, RowParser, Target, check_columns
from bulk.tallyfy.plan import PlanError, plan_update, unapplied
from bulk.tallyfy.preflight import preflight

#: Why 8 workers by default: the pacer, not the pool, sets the pace. At the default
#: 10 requests/s (600/min, the per-user figure older Tallyfy pages give) a worker waits
#: on the network ~0.1-0.5 s per request, so 8 in flight keep the pacer busy up to
#: 0.8 s of latency, while staying polite to a server whose quota we do not know.
DEFAULT_CONCURRENCY = 8
DEFAULT_RATE = 10.0
DEFAULT_BURST = 2


@dataclass
class ApplyOptions:
    input: Path
    target: str = "runs"
    format: str | None = None
    ledger: Path | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    rate: float | str = DEFAULT_RATE  # requests/s (a ceiling), or "auto"
    burst: int = DEFAULT_BURST
    max_attempts: int = 5
    timeout: float = 30.0
    retry_failed: bool = False
    fresh: bool = False
    dry_run: bool = False  # read and plan every row, write nothing
    grace: float = 10.0
    outage_limit: float = DEFAULT_OUTAGE_LIMIT  # seconds of continuous outage, then stop
    max_failures: int | None = None  # stop once this many rows have failed
    second_chance_pause: float = SECOND_CHANCE_PAUSE  # then transient failures again
    backoff: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def ledger_path(self) -> Path:
        suffix = ".dry-run.ledger.db" if self.dry_run else ".ledger.db"
        return self.ledger or self.input.with_name(self.input.name + suffix)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts, base=self.backoff.base, cap=self.backoff.cap
        )


@dataclass
class _RowState:
    attempts: int = 0
    sent: bool = False
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class RowApplier:
    """Applies one row: read the record, merge the change, write it, verify the answer.

    The retry unit is the whole read-merge-write, not the write alone: after an
    ambiguous failure (a 5xx, a dropped connection, a timeout) the next attempt reads
    the record again, and if the first write did land, it sends nothing more.
    """

    def __init__(
        self,
        target: Target,
        parser: RowParser,
        client: TallyfyClient,
        policy: RetryPolicy,
        clock: Clock,
        *,
        dry_run: bool = False,
    ) -> None:
        self.target = target
        self.parser = parser
        self.client = client
        self.policy = policy
        self.clock = clock
        self.dry_run = dry_run

    async def __call__(self, item: WorkItem, context: RowContext) -> Entry:
        entry = await self._apply(item, context)
        if entry.status not in (OK, UNCHANGED):
            # Kept so `bulk export --format csv` can hand the row back as a new input.
            entry.input = dict(item.payload.values) or None
        return entry

    async def _apply(self, item: WorkItem, context: RowContext) -> Entry:
        raw: RawRow = item.payload
        try:
            change = self.parser.parse(raw)
        except RowInvalid as exc:
            record_id = raw.values.get(self.parser.id_column) if raw.values else None
            return Entry(
                row=item.row,
                status=INVALID,
                record_id=record_id if isinstance(record_id, str) else None,
                error=str(exc),
            )
        state = _RowState()
        earlier = context.doubt_entry
        if earlier is not None:
            # Settling a write an earlier run may have landed: its before-values are
            # the true ones (the record may already show the change).
            state.sent = True
            state.before, state.after = earlier.before, earlier.after
            state.attempts = earlier.attempts
        base = Entry(row=item.row, status=FAILED, record_id=change.record_id)
        try:
            async for attempt in self.policy.retrying(self.clock):
                with attempt:
                    return await self._attempt(change, context, state, base)
        except AuthError:
            raise
        except HttpError as exc:
            # After a transient failure an earlier write of this row may still have
            # landed; a definitive 4xx says this row cannot be done, not that.
            return self._failed(base, state, exc.describe(), exc.status, exc.request_id,
                                ambiguous=should_retry(exc),
                                reason=HttpError(exc.status, exc.body).describe())
        except TransportError as exc:
            return self._failed(base, state, str(exc), None, None, ambiguous=True)
        except PlanError as exc:
            return self._failed(base, state, str(exc), None, None, ambiguous=False)
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _attempt(
        self, change: Change, context: RowContext, state: _RowState, base: Entry
    ) -> Entry:
        state.attempts += 1
        number = state.attempts
        read = await self.client.read(self.target, change.record_id, attempt=number)
        plan = plan_update(self.target, read.data, change)
        if plan is None:
            status = OK if state.sent else UNCHANGED
            return _entry(base, status, state, read.status, read.request_id)
        if self.dry_run:
            # What a real run would write, recorded as `ok` in the dry run's own ledger.
            entry = _entry(base, OK, state, read.status, read.request_id)
            entry.before, entry.after = plan.before, plan.after
            return entry
        if not state.sent:
            state.before, state.after = plan.before, plan.after
            mark = _entry(base, IN_DOUBT, state, read.status, read.request_id)
            # Not yet sent, so _entry left them out; the mark must carry them, or a
            # crash after the write lands loses the true before-values for good.
            mark.before, mark.after = plan.before, plan.after
            await context.mark_in_doubt(mark)
            state.sent = True
        if state.before is None:
            state.before = plan.before
        state.after = plan.after
        written = await self.client.write(self.target, change.record_id, plan.body,
                                          attempt=number)
        wrong = unapplied(plan, written.data)
        if wrong:
            raise PlanError(
                f"the server answered {written.status} but did not apply {', '.join(wrong)}"
            )
        return _entry(base, OK, state, written.status, written.request_id)

    @staticmethod
    def _failed(
        base: Entry,
        state: _RowState,
        error: str,
        http_status: int | None,
        request_id: str | None,
        *,
        ambiguous: bool,
        reason: str | None = None,
    ) -> Entry:
        # A write that was sent and never acknowledged may have landed: say so, and let
        # the next run settle it by reading the record back.
        status = IN_DOUBT if state.sent and ambiguous else FAILED
        entry = _entry(base, status, state, http_status, request_id)
        entry.error = error
        # Transient: the attempts ran out on 429/5xx/transport; worth another try later.
        entry.error_kind = TRANSIENT if ambiguous else DEFINITIVE
        entry.reason = reason or error
        return entry


def _entry(
    base: Entry, status: str, state: _RowState, http_status: int | None, request_id: str | None
) -> Entry:
    changed = status in (OK, IN_DOUBT, FAILED) and state.sent
    return Entry(
        row=base.row,
        status=status,
        record_id=base.record_id,
        http_status=http_status,
        attempts=state.attempts,
        request_id=request_id,
        before=state.before if changed else None,
        after=state.after if changed else None,
    )


@dataclass
class PreparedJob:
    """Everything checked before the first request: input, columns, ledger."""

    options: ApplyOptions
    connection: Connection
    target: Target
    input_file: InputFile
    parser: RowParser
    total: int
    ledger: Ledger
    resumed: bool
    ignored_columns: frozenset[str] = frozenset()


def prepare(options: ApplyOptions, connection: Connection) -> PreparedJob:
    """Check the input and tie the ledger to this job. Raises InputError/ConfigError."""
    target = TARGETS[options.target]
    input_file = InputFile(options.input, options.format)
    scanned = input_file.scan()
    columns = scanned.columns
    ignored: frozenset[str] = frozenset()
    if REPORT_COLUMNS <= set(columns):
        # A `bulk export --format csv` fed back in: its report columns are not changes.
        ignored = REPORT_COLUMNS
        columns = tuple(name for name in columns if name not in ignored)
    id_column = check_columns(target, columns, input_file.name)
    fingerprint = {"input_sha256": scanned.sha256, "target": target.name,
                   "org": connection.org_id}
    if options.dry_run:
        fingerprint["mode"] = DRY_RUN
    ledger = Ledger(options.ledger_path)
    try:
        fresh = options.fresh
        if options.dry_run:
            fresh = _rehearsal_ledger(ledger)
        resumed = ledger.claim(fingerprint, fresh=fresh)
        ledger.set_meta(
            input=str(options.input), target=target.name, org=connection.org_id,
            base_url=connection.base_url, rows=str(scanned.rows),
            started_at=now_iso(), finished_at="", outcome="running",
        )
    except BaseException:
        ledger.close()
        raise
    parser = RowParser(target, id_column, input_file.name, scanned.format)
    return PreparedJob(options, connection, target, input_file, parser, scanned.rows,
                       ledger, resumed, ignored)


DRY_RUN = "dry-run"


def _rehearsal_ledger(ledger: Ledger) -> bool:
    """A dry run starts its own ledger over, and never touches a real job's ledger."""
    stored = ledger.meta().get("fingerprint")
    if stored is None:
        return False
    if json.loads(stored).get("mode") != DRY_RUN:
        raise ConfigError(
            f"{ledger.path}: this is the ledger of a real run; a dry run keeps its own "
            "(leave out --ledger, or name another file)"
        )
    return True


def make_pacer(options: ApplyOptions, clock: Clock) -> Pacer:
    """The job's pacer: it starts at the default pace (or below, if asked) and finds the
    quota from there; a rate given is a ceiling, "auto" climbs as far as the API lets it."""
    auto = options.rate == "auto"
    rate = DEFAULT_RATE if auto else float(options.rate)
    return Pacer(rate, options.burst, clock, auto=auto, start=min(rate, DEFAULT_RATE))


async def execute(
    job: PreparedJob,
    *,
    observer: Observer | None = None,
    clock: Clock | None = None,
    on_job: Callable[[Job], None] | None = None,
    install_signals: bool = False,
) -> Summary:
    """Run a prepared job against the API; returns the summary (ledger left open)."""
    options = job.options
    clock = clock or LoopClock()
    pacer = make_pacer(options, clock)
    policy = options.policy
    # Workers never exceed the connector: one connection each, no hidden queueing.
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # aiohttp silently re-sends a PUT once when a kept-alive connection drops. That
        # resend bypasses our read-back, so a write that landed could land twice: off.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        breaker = Breaker(clock, limit=options.outage_limit)
        client = TallyfyClient(session, job.connection, pacer, policy, timeout=options.timeout,
                               breaker=breaker)
        applier = RowApplier(job.target, job.parser, client, policy, clock,
                             dry_run=options.dry_run)
        runner = Job(
            rows=_numbered(job.input_file, job.ignored_columns, job.total),
            total=job.total,
            handler=applier,
            ledger=job.ledger,
            concurrency=options.concurrency,
            retry_failed=options.retry_failed,
            grace=options.grace,
            observer=observer,
            max_failures=options.max_failures,
            clock=clock,
            second_chance_pause=options.second_chance_pause,
            before_first_row=lambda: preflight(
                session, job.connection, job.target, api_headers(job.connection), clock
            ),
        )
        watch = getattr(observer, "watch", None)
        if watch is not None:  # the progress bar shows the pace and the ETA it gives
            watch(lambda: client.http.requests)
        if on_job is not None:
            on_job(runner)
        with _signals(runner) if install_signals else contextlib.nullcontext():
            summary = await runner.run()
        summary.dry_run = options.dry_run
        summary.requests = client.http.requests
        summary.rate_limited, summary.pauses = pacer.rate_limited, pacer.pauses
        summary.outage_seconds = breaker.outage_seconds
    job.ledger.set_meta(finished_at=now_iso(), outcome=summary.outcome)
    return summary


def _numbered(
    input_file: InputFile, ignored: frozenset[str], expected: int
) -> Iterator[tuple[int, RawRow]]:
    count = 0
    for raw in input_file.rows():
        count += 1
        if ignored and raw.values:
            values = {key: value for key, value in raw.values.items() if key not in ignored}
            raw = RawRow(raw.number, values, raw.error)
        yield raw.number, raw
    if count != expected:
        # The fingerprint was taken from the file as it was; the ledger must not mix two.
        raise InputError(f"{input_file.name}: the file changed while the job ran "
                         f"({expected} rows when checked, {count} now); run again")


@contextlib.contextmanager
def _signals(runner: Job) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, runner.interrupt)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


__all__ = ["ApplyOptions", "PreparedJob", "RowApplier", "execute", "prepare"]
