"""`bulk apply` as a library call: the job around each row (see row_applier.py for one row)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulk.engine.clock import Clock, LoopClock
from bulk.engine.errors import AuthError, ConfigError, InputError, StopJob
from bulk.engine.http import require_resend_switch
from bulk.engine.job import Job
from bulk.engine.ledger import (
    Ledger,
    now_iso,
)
from bulk.engine.ledger_file import check_before_run
from bulk.engine.reader import InputFile, RawRow
from bulk.engine.row_context import Observer
from bulk.engine.row_gate import RowGate
from bulk.engine.second_chance import SECOND_CHANCE_PAUSE
from bulk.engine.summary import Summary
from bulk.ledger_views.status_export import REPORT_COLUMNS
from bulk.options import default, shown_keys
from bulk.tallyfy.api import Api, Pacing, open_api
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.people import People
from bulk.tallyfy.row_applier import MAX_READ_AGE, RowApplier
from bulk.tallyfy.rows import RowParser
from bulk.tallyfy.targets import TARGETS, Target, check_columns

#: Why 8 workers by default: the pacer, not the pool, sets the pace. At the default
#: 10 requests/s (600/min, the per-user figure older Tallyfy pages give) a worker waits
#: on the network ~0.1-0.5 s per request, so 8 in flight keep the pacer busy up to
#: 0.8 s of latency, while staying polite to a server whose quota we do not know.
DEFAULT_CONCURRENCY: int = default("concurrency")


@dataclass(kw_only=True)
class ApplyOptions(Pacing):
    """What `bulk apply` does; how fast and how patiently is its `Pacing`."""

    input: Path
    target: str = default("target")
    format: str | None = None
    ledger: Path | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    retry_failed: bool = False
    fresh: bool = False
    dry_run: bool = False  # read and plan every row, write nothing
    include_completed: bool = False  # tasks: change completed ones too (history)
    grace: float = 10.0
    max_failures: int | None = None  # stop once this many rows have failed
    second_chance_pause: float = SECOND_CHANCE_PAUSE  # then transient failures again

    @property
    def ledger_path(self) -> Path:
        suffix = ".dry-run.ledger.db" if self.dry_run else ".ledger.db"
        return self.ledger or self.input.with_name(self.input.name + suffix)


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
    fingerprint: dict[str, str] = field(default_factory=dict)
    #: --fresh on a ledger that holds a job: it is kept aside (renamed) once the
    #: preflight passes, never before (a wrong token must not cost the last job's ledger).
    fresh_pending: bool = False
    #: Where the previous ledger was kept, once it was.
    kept_ledger: Path | None = None

    def start_fresh(self) -> Path:
        """Keep the previous ledger beside the new one, named with its finish time, and
        start the new one. Nothing is deleted."""
        path = self.ledger.path
        finished = self.ledger.meta().get("finished_at") or ""
        self.ledger.close()
        kept = kept_ledger_path(path, finished)
        path.rename(kept)
        ledger = Ledger(path)
        try:
            ledger.claim(self.fingerprint, fresh=True)
            ledger.begin_session()
            _stamp(ledger, self.options, self.target, self.connection, self.total)
        except BaseException:
            ledger.close()
            raise
        self.ledger, self.fresh_pending, self.kept_ledger = ledger, False, kept
        return kept


def kept_ledger_path(path: Path, finished_at: str) -> Path:
    """`x.csv.ledger.db` -> `x.csv.ledger.<finish time>.db` (never an existing file)."""
    stamp = re.sub(r"[^0-9T]", "", finished_at.split(".")[0].split("+")[0])
    if not stamp:  # it never finished (it stopped hard): when it was last written
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%S")
    stem = path.name[: -len(".db")] if path.name.endswith(".db") else path.name
    for n in range(1, 1000):
        suffix = f"-{n}" if n > 1 else ""
        kept = path.with_name(f"{stem}.{stamp}Z{suffix}.db")
        if not kept.exists():
            return kept
    raise ConfigError(f"{path}: too many kept ledgers beside it; move some away")


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
    fresh_pending = False
    try:
        fresh = options.fresh
        if options.dry_run:
            fresh = _rehearsal_ledger(ledger)  # a rehearsal's own ledger: nothing to undo
        elif fresh and "fingerprint" in ledger.meta():
            fresh_pending = True  # kept aside after the preflight (PreparedJob.start_fresh)
        if fresh_pending:
            resumed = False
        else:
            resumed = ledger.claim(fingerprint, fresh=fresh)
            # Before the meta is stamped: it still tells an older ledger's last run.
            ledger.begin_session()
            _stamp(ledger, options, target, connection, scanned.rows)
    except BaseException:
        ledger.close()
        raise
    parser = RowParser(target, id_column, input_file.name, scanned.format)
    return PreparedJob(options, connection, target, input_file, parser, scanned.rows,
                       ledger, resumed, ignored, fingerprint, fresh_pending)


def _stamp(ledger: Ledger, options: ApplyOptions, target: Target, connection: Connection,
           rows: int) -> None:
    ledger.set_meta(
        input=str(options.input), target=target.name, org=connection.org_id,
        base_url=connection.base_url, rows=str(rows),
        started_at=now_iso(), finished_at="", outcome="running",
        options=json.dumps(_shown_options(options)),
    )


DRY_RUN = "dry-run"


def _shown_options(options: ApplyOptions) -> dict[str, Any]:
    """The options of this run, as `bulk report` shows them (no secret is among them)."""
    return {key: getattr(options, key) for key in shown_keys()}


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


async def execute(
    prepared: PreparedJob,
    *,
    observer: Observer | None = None,
    clock: Clock | None = None,
    on_job: Callable[[Job], None] | None = None,
) -> Summary:
    """Run a prepared job against the API; returns the summary (ledger left open).

    `prepared` is what was checked before (input, ledger); the engine's `Job` built here
    runs its rows (`on_job` sees it before the first row)."""
    options = prepared.options
    clock = clock or LoopClock()
    # What held the job back (429s, pauses, outages), as it happens, for `bulk report`
    # (through `prepared.ledger` at each event: --fresh starts a new one after the preflight).
    async with open_api(prepared.connection, options, clock, connections=options.concurrency,
                        events=lambda *a, **k: prepared.ledger.record_event(*a, **k)) as api:
        if prepared.fresh_pending:
            stopped = await _preflight_then_keep(prepared, api)
            if stopped is not None:
                return stopped
        client, pacer, breaker = api.client, api.pacer, api.breaker
        applier = RowApplier(prepared.target, prepared.parser, client, api.policy, clock,
                             dry_run=options.dry_run,
                             include_completed=options.include_completed,
                             people=People(client, api.policy, clock,
                                           prepared.input_file.name))
        # No row reads and then waits past its read's window for a write slot: rows
        # under way follow what the pace serves in that window (see row_gate.py).
        gate = RowGate(lambda: pacer.rows_in_flight(MAX_READ_AGE))
        runner = Job(
            rows=_numbered(prepared.input_file, prepared.ignored_columns, prepared.total),
            total=prepared.total,
            handler=gate.wrap(applier),
            ledger=prepared.ledger,
            concurrency=options.concurrency,
            retry_failed=options.retry_failed,
            grace=options.grace,
            observer=observer,
            max_failures=options.max_failures,
            clock=clock,
            second_chance_pause=options.second_chance_pause,
            key_of=record_key(prepared.parser.id_column),
            # --fresh already asked it before keeping the previous ledger aside.
            before_first_row=None if prepared.kept_ledger else (
                lambda: api.preflight(prepared.target)),
        )
        watch = getattr(observer, "watch", None)
        if watch is not None:  # the progress bar shows the pace and the ETA it gives
            watch(lambda: client.requests)
        if on_job is not None:
            on_job(runner)
        try:
            summary = await runner.run()
        except InputError:
            # The input changed under the job (it was checked whole before): the ledger
            # says the job stopped, not that it is still running or crashed.
            stopped = "stopped: the input file changed or became unreadable"
            prepared.ledger.set_meta(finished_at=now_iso(), outcome=stopped)
            prepared.ledger.end_session("input changed", stopped)
            raise
        summary.dry_run = options.dry_run
        summary.requests = client.requests
        summary.rate_limited, summary.pauses = pacer.rate_limited, pacer.pauses
        summary.outage_seconds = breaker.outage_seconds
    summary.kept_ledger = prepared.kept_ledger
    prepared.ledger.set_meta(finished_at=now_iso(), outcome=summary.outcome)
    prepared.ledger.end_session(summary.stopped_by or "finished", summary.aborted)
    return summary


async def _preflight_then_keep(job: PreparedJob, api: Api) -> Summary | None:
    """--fresh: the preflight first; only once it passes is the previous ledger kept aside
    (renamed) and a new one started. A failed preflight leaves the ledger as it was and
    returns the job's summary (aborted); a wrong setting raises ConfigError as always."""
    try:
        await api.preflight(job.target)
    except (AuthError, StopJob) as exc:
        summary = Summary(ledger_path=job.ledger.path, total=job.total)
        summary.aborted = (f"authentication failed: {exc.describe()}"
                           if isinstance(exc, AuthError) else str(exc))
        summary.aborted += "; --fresh: the previous ledger is kept as it was"
        summary.ledger_counts = job.ledger.counts()
        return summary
    job.start_fresh()
    return None


def record_key(id_column: str) -> Callable[[RawRow], str | None]:
    """The record a row names, as the pool orders rows by it: rows of one record run one
    at a time, in file order (a row without a readable id names none, and waits on none)."""

    def key(raw: RawRow) -> str | None:
        value = raw.values.get(id_column) if raw.values else None
        return value.strip().lower() or None if isinstance(value, str) else None

    return key


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
