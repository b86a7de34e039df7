"""`bulk apply` as a library call: the job around each row (see applier.py for one row)."""

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
    ConfigError,
    InputError,
)
from bulk.engine.http import open_session, require_resend_switch
from bulk.engine.job import Job, Observer, Summary
from bulk.engine.ledger import (
    Ledger,
    now_iso,
)
from bulk.engine.ledger_file import check_before_run
from bulk.engine.pacing import Pacer
from bulk.engine.reader import InputFile, RawRow
from bulk.engine.retry import RetryPolicy
from bulk.engine.row_gate import RowGate
from bulk.engine.second_chance import SECOND_CHANCE_PAUSE
from bulk.ledger_views.status_export import REPORT_COLUMNS
from bulk.tallyfy.client import TallyfyClient, api_headers
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.preflight import preflight
from bulk.tallyfy.row_applier import MAX_READ_AGE, RowApplier
from bulk.tallyfy.rows import TARGETS, RowParser, Target, check_columns

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
        # No row reads and then waits past its read's window for a write slot: rows
        # under way follow what the pace serves in that window (see row_gate.py).
        gate = RowGate(lambda: pacer.rows_in_flight(MAX_READ_AGE))
        runner = Job(
            rows=_numbered(job.input_file, job.ignored_columns, job.total),
            total=job.total,
            handler=gate.wrap(applier),
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
