"""`bulk apply` as a library call: one row's read-merge-write, and the job around it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bulk.engine.breaker import DEFAULT_OUTAGE_LIMIT, Breaker
from bulk.engine.clock import Clock, LoopClock
from bulk.engine.errors import (
    AmbiguousAnswer,
    AuthError,
    ConfigError,
    HttpError,
    InputError,
    RowInvalid,
    StaleRead,
    TransportError,
)
from bulk.engine.http import open_session, require_resend_switch
from bulk.engine.job import Job, Observer, RowContext, Summary, WorkItem
from bulk.engine.ledger import (
    CONFLICT,
    FAILED,
    IN_DOUBT,
    INVALID,
    OK,
    UNCHANGED,
    Entry,
    Ledger,
    now_iso,
)
from bulk.engine.ledger_file import check_before_run
from bulk.engine.pacing import Pacer
from bulk.engine.reader import InputFile, RawRow
from bulk.engine.retry import RetryPolicy, should_retry
from bulk.engine.second_chance import SECOND_CHANCE_PAUSE
from bulk.engine.stops import DEFINITIVE, TRANSIENT
from bulk.report import REPORT_COLUMNS
from bulk.tallyfy.client import TallyfyClient, api_headers
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.expect import find_conflict
from bulk.tallyfy.fields import TARGETS, Change, RowParser, Target, check_columns
from bulk.tallyfy.plan import LeftAlone, NobodyLeft, PlanError, plan_update, unapplied
from bulk.tallyfy.preflight import preflight

#: Why 8 workers by default: the pacer, not the pool, sets the pace. At the default
#: 10 requests/s (600/min, the per-user figure older Tallyfy pages give) a worker waits
#: on the network ~0.1-0.5 s per request, so 8 in flight keep the pacer busy up to
#: 0.8 s of latency, while staying polite to a server whose quota we do not know.
DEFAULT_CONCURRENCY = 8
DEFAULT_RATE = 10.0
DEFAULT_BURST = 2

#: A PUT is built from a read no older than this when it leaves; older, read again.
MAX_READ_AGE = 2.0
#: Re-reads in one attempt before giving the attempt up (each one waited out a new
#: cooldown longer than MAX_READ_AGE right after its read, or was refused with a 429).
MAX_REREADS = 5


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
    include_completed: bool = False  # tasks: change completed ones too (history)
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
    the record again, and if the first write did land, it sends nothing more. A PUT
    never leaves on a read older than MAX_READ_AGE: the record is read again first.
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
        include_completed: bool = False,
    ) -> None:
        self.target = target
        self.include_completed = include_completed
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
        if change.changes_nothing():
            # Only expect.* cells (a selected row nobody edited): nothing to guard or send.
            return Entry(row=item.row, status=UNCHANGED, record_id=change.record_id)
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
        except AmbiguousAnswer as exc:
            return self._failed(base, state, str(exc), exc.status, exc.request_id,
                                ambiguous=True)
        except StaleRead as exc:
            return self._failed(base, state, str(exc), None, None, ambiguous=True)
        except NobodyLeft as exc:  # the row asks for something no task may be: invalid
            return _remark(self._failed(base, state, str(exc), None, None, ambiguous=False),
                           INVALID)
        except LeftAlone as exc:  # the record is not as the row's author saw it: open
            return _remark(self._failed(base, state, str(exc), None, None, ambiguous=False),
                           CONFLICT)
        except PlanError as exc:
            return self._failed(base, state, str(exc), None, None, ambiguous=False)
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _attempt(
        self, change: Change, context: RowContext, state: _RowState, base: Entry
    ) -> Entry:
        state.attempts += 1
        number = state.attempts
        read = await self.client.read(self.target, change.record_id, attempt=number)
        holding_slot = False  # a pacer slot granted to the PUT, kept across re-reads
        for reread in range(MAX_REREADS + 1):
            if reread:
                # Its own slot; the PUT keeps the one it was granted, so it can leave
                # right after this answer instead of queueing (and aging) again.
                try:
                    read = await self.client.read(self.target, change.record_id,
                                                  attempt=number)
                except HttpError as exc:
                    if exc.status != 429:
                        raise
                    # Not one of the row's attempts: this read exists only because of a
                    # cooldown, and the 429 set the next one, which the next read waits out.
                    continue
            read_at = self.clock.now()
            plan = plan_update(self.target, read.data, change,
                               include_done=self.include_completed)
            if plan is None:
                status = OK if state.sent else UNCHANGED
                return _entry(base, status, state, read.status, read.request_id)
            # Checked against the record as read just now, right before the write; only
            # when there is something to write (a record already as asked needs no guard).
            conflict = find_conflict(read.data, change.expect) if change.expect else None
            if conflict is not None:
                entry = _entry(base, CONFLICT, state, read.status, read.request_id)
                entry.error = conflict
                return entry
            if self.dry_run:
                # What a real run would write, recorded as `ok` in the dry run's own ledger.
                entry = _entry(base, OK, state, read.status, read.request_id)
                entry.before, entry.after = plan.before, plan.after
                return entry
            if not state.sent:
                # No write has left yet: the before-values are the record as last read.
                state.before, state.after = plan.before, plan.after
                marked = context.doubt_entry
                if marked is None or (marked.before, marked.after) != (plan.before, plan.after):
                    # The mark carries them (see _entry): a crash after the PUT lands
                    # must not lose them.
                    await context.mark_in_doubt(
                        _entry(base, IN_DOUBT, state, read.status, read.request_id)
                    )
            if holding_slot:
                await self.client.http.cooled()  # a 429 meanwhile still holds everyone
            else:
                await self.client.http.slot()
                holding_slot = True
            # The body carries membership as read: after a long wait (a 429 cooldown can
            # be minutes) someone may have added a member that this PUT would remove.
            if self.clock.now() - read_at <= MAX_READ_AGE:
                break
        else:
            raise StaleRead(
                f"waited more than {MAX_READ_AGE:g} s to send after each of "
                f"{MAX_REREADS + 1} reads; nothing sent on them"
            )
        if state.before is None:
            state.before = plan.before
        state.after = plan.after
        state.sent = True
        written = await self.client.write(self.target, change.record_id, plan.body,
                                          attempt=number, expect=plan.after, paced=False)
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


def _remark(entry: Entry, status: str) -> Entry:
    # Only when nothing left for this row; a sent write keeps its in-doubt/failed status.
    if entry.status == FAILED and entry.before is None:
        entry.status = status
    return entry


def _entry(
    base: Entry, status: str, state: _RowState, http_status: int | None, request_id: str | None
) -> Entry:
    # The in-doubt mark is made before `sent` is set, and must carry the before-values.
    changed = status == IN_DOUBT or (status in (OK, FAILED) and state.sent)
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
    require_resend_switch()  # before the ledger is touched or anything is sent
    target = TARGETS[options.target]
    # Refused before the input is read through: a wrong ledger path, or one in use.
    check_before_run(options.ledger_path)
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
            options=json.dumps(_shown_options(options)),
        )
    except BaseException:
        ledger.close()
        raise
    parser = RowParser(target, id_column, input_file.name, scanned.format)
    return PreparedJob(options, connection, target, input_file, parser, scanned.rows,
                       ledger, resumed, ignored)


DRY_RUN = "dry-run"


def _shown_options(options: ApplyOptions) -> dict[str, Any]:
    """The options of this run, as `bulk report` shows them (no secret is among them)."""
    keys = ("format", "concurrency", "rate", "burst", "max_attempts", "timeout",
            "retry_failed", "fresh", "dry_run", "include_completed")
    return {key: getattr(options, key) for key in keys}


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


def make_pacer(rate: float | str, burst: int, clock: Clock) -> Pacer:
    """A job's pacer (apply and select alike): it starts at the default pace (or below, if
    asked) and finds the quota from there; a rate given is a ceiling, "auto" climbs as far
    as the API lets it."""
    auto = rate == "auto"
    ceiling = DEFAULT_RATE if auto else float(rate)
    return Pacer(ceiling, burst, clock, auto=auto, start=min(ceiling, DEFAULT_RATE))


async def execute(
    job: PreparedJob,
    *,
    observer: Observer | None = None,
    clock: Clock | None = None,
    on_job: Callable[[Job], None] | None = None,
) -> Summary:
    """Run a prepared job against the API; returns the summary (ledger left open)."""
    options = job.options
    clock = clock or LoopClock()
    pacer = make_pacer(options.rate, options.burst, clock)
    # What held the job back, as it happens, for `bulk report`.
    record = job.ledger.record_event
    pacer.on_429 = lambda _at: record("429")
    pacer.on_pause = lambda _start, seconds: record("pause", seconds)
    policy = options.policy
    # Workers never exceed the connector: one connection each, no hidden queueing.
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    async with open_session(connector) as session:  # aiohttp's silent re-send: off
        breaker = Breaker(clock, limit=options.outage_limit,
                          on_outage=lambda start, end: record("outage", end - start,
                                                              began_ago=end - start))
        client = TallyfyClient(session, job.connection, pacer, policy, timeout=options.timeout,
                               breaker=breaker)
        applier = RowApplier(job.target, job.parser, client, policy, clock,
                             dry_run=options.dry_run,
                             include_completed=options.include_completed)
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
        try:
            summary = await runner.run()
        except InputError:
            # The input changed under the job (it was checked whole before): the ledger
            # says the job stopped, not that it is still running or crashed.
            job.ledger.set_meta(finished_at=now_iso(),
                                outcome="stopped: the input file changed or became unreadable")
            raise
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
