"""`bulk apply` as a library call: the job around each row (see row_applier.py for one row)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulk.engine.clock import Clock, LoopClock
from bulk.engine.errors import (
    ConfigError,
    InputError,
)
from bulk.engine.http import require_resend_switch
from bulk.engine.job import Job, Observer
from bulk.engine.ledger import (
    Ledger,
    now_iso,
)
from bulk.engine.ledger_file import check_before_run
from bulk.engine.reader import InputFile, RawRow
from bulk.engine.second_chance import SECOND_CHANCE_PAUSE
from bulk.engine.summary import Summary
from bulk.ledger_views.status_export import REPORT_COLUMNS
from bulk.options import default, shown_keys
from bulk.tallyfy.api import Pacing, open_api
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.people import People
from bulk.tallyfy.row_applier import RowApplier
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
        # Before the meta is stamped: it still tells an older ledger's last run.
        ledger.begin_session()
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
    # What held the job back (429s, pauses, outages), as it happens, for `bulk report`.
    async with open_api(prepared.connection, options, clock, connections=options.concurrency,
                        events=prepared.ledger.record_event) as api:
        client, pacer, breaker = api.client, api.pacer, api.breaker
        applier = RowApplier(prepared.target, prepared.parser, client, api.policy, clock,
                             dry_run=options.dry_run,
                             include_completed=options.include_completed,
                             people=People(client, api.policy, clock,
                                           prepared.input_file.name))
        runner = Job(
            rows=_numbered(prepared.input_file, prepared.ignored_columns, prepared.total),
            total=prepared.total,
            handler=applier,
            ledger=prepared.ledger,
            concurrency=options.concurrency,
            retry_failed=options.retry_failed,
            grace=options.grace,
            observer=observer,
            max_failures=options.max_failures,
            clock=clock,
            second_chance_pause=options.second_chance_pause,
            before_first_row=lambda: api.preflight(prepared.target),
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
    prepared.ledger.set_meta(finished_at=now_iso(), outcome=summary.outcome)
    prepared.ledger.end_session(summary.stopped_by or "finished", summary.aborted)
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
