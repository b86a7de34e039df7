"""From settings (job file + flags) to a finished job: the library's top-level call."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bulk.commands.confirm import Ask, NotConfirmed, confirm_before_writing, terminal_ask
from bulk.engine.errors import ConfigError
from bulk.engine.exit_codes import ExitCode
from bulk.engine.job import Job
from bulk.engine.summary import Summary
from bulk.jobfile import load_job_file, merge
from bulk.options import APPLY, settings_for
from bulk.progress import TerminalProgress
from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
from bulk.tallyfy.connection import connection_from_env

OPTION_KEYS = settings_for(APPLY)


def options_from_settings(settings: Mapping[str, Any]) -> ApplyOptions:
    if not settings.get("input"):
        raise ConfigError("no input: give --input FILE or a job file with input = ...")
    values = {key: settings[key] for key in OPTION_KEYS if settings.get(key) is not None}
    if "ledger" in values:
        values["ledger"] = Path(values["ledger"])
    return ApplyOptions(input=Path(settings["input"]), **values)


def apply_command(
    job_file: Path | None,
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run `bulk apply`; returns the exit code. Raises ConfigError/InputError (exit 2), and
    KeyboardInterrupt only for a Ctrl-C before the first row (nothing sent)."""
    out = out or sys.stdout
    err = err or sys.stderr
    ask = terminal_ask(stdin or sys.stdin, err, yes=bool(flags.get("yes")), out=out)
    with StopSignals() as signals:
        settings = merge(load_job_file(job_file) if job_file else {}, dict(flags))
        options = options_from_settings(settings)
        connection = connection_from_env(
            os.environ if environ is None else environ,
            base_url=settings.get("base_url"),
            org_id=settings.get("org"),
        )
        try:
            summary = apply_job(options, connection, quiet=bool(settings.get("quiet")),
                                err=err, signals=signals, ask=ask)
        except NotConfirmed as exc:
            print(f"bulk: {exc}", file=err, flush=True)
            return ExitCode.ABORTED
        print(summary.line(), file=out, flush=True)
        for line in next_steps(summary):
            print(line, file=out, flush=True)
        if summary.dry_run:
            from bulk.ledger_views.html_report.preview import preview_lines

            for line in preview_lines(summary.ledger_path):
                print(line, file=out)
    code = summary.exit_code
    if signals.received and code in (ExitCode.OK, ExitCode.ROWS_FAILED):
        # The signal came after the last row: the summary above is whole, and the
        # exit code still says the user stopped us.
        print("bulk: interrupted after the last row; the summary above is complete",
              file=err, flush=True)
        return ExitCode.INTERRUPTED
    return code


def next_steps(summary: Summary) -> list[str]:
    """What the person does next, after the summary line: how to finish an interrupted
    job, and where to see why rows failed (a dry run's preview says it its own way)."""
    ledger = shlex.quote(str(summary.ledger_path))
    lines = []
    if summary.interrupted:
        lines.append("to finish: run the same command again (it resumes from the ledger; "
                     "no row is done twice)")
    elif summary.aborted:
        lines.append("to finish: deal with the cause above, then run the same command again "
                     "(it resumes from the ledger)")
    troubled = ("failed", "invalid", "conflict", "in_doubt")
    if not summary.dry_run and any(summary.ledger_counts.get(name) for name in troubled):
        lines.append(f"next: bulk status {ledger} (why rows failed, and what to do) · "
                     f"bulk report {ledger} (the same as a page)")
    return lines


def apply_job(options: ApplyOptions, connection: Any, *, quiet: bool = False,
              err: TextIO | None = None, signals: StopSignals | None = None,
              ask: Ask | None = None) -> Summary:
    """Check everything, then run the job to its end (or interruption).

    With `ask` (a person at a terminal), the checked job is put to them as a question
    first; a no raises NotConfirmed, nothing sent (see `bulk.commands.confirm`).

    Ctrl-C or SIGTERM while checking raises KeyboardInterrupt (nothing was sent); from
    then on they stop the job as its first and second interrupt, and once its last row
    is done they wait for the ledger's final writes (see `StopSignals`).
    """
    with contextlib.ExitStack() as stack:
        if signals is None:
            signals = stack.enter_context(StopSignals())
        prepared = prepare(options, connection)
        try:
            confirm_before_writing(prepared, ask)  # before arm(): Ctrl-C here sends nothing
            signals.arm()
            observer = TerminalProgress(err) if TerminalProgress.wanted(err, quiet) else None
            if prepared.resumed and not quiet:
                print(f"resuming from {prepared.ledger.path}", file=err or sys.stderr)
            return asyncio.run(execute(prepared, observer=observer, on_job=signals.attach))
        except BaseException as exc:
            # The run ends here without a summary: its history says how (a run left
            # open would be told as a crash by the next one). No-op if already ended.
            with contextlib.suppress(Exception):
                prepared.ledger.end_session(*_how_it_broke(exc))
            raise
        finally:
            prepared.ledger.close()


def _how_it_broke(exc: BaseException) -> tuple[str, str]:
    from bulk.engine.errors import LedgerWriteError

    if isinstance(exc, KeyboardInterrupt):
        return "Ctrl-C", "before the first row"
    if isinstance(exc, LedgerWriteError):
        return "ledger write failed", str(exc)
    return "error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class StopSignals:
    """Ctrl-C and SIGTERM for the whole of an apply, from its checks to its summary.

    Before `arm()` (while checking input and ledger) a signal raises KeyboardInterrupt at
    once: nothing has been sent. After it, a signal never raises: it is passed to the job
    (`Job.interrupt`: the first lets rows in flight finish, the second stops now), and
    once the job's last row is done it is only counted, so the final ledger writes and
    the summary line are never cut in half by a traceback. Only the main thread can
    handle signals; elsewhere this does nothing.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received = 0
        self._armed = False
        self._job: Job | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}
        self._by = "interrupt"  # how the last signal is named in the job's history

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self._SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def arm(self) -> None:
        """From now on a signal stops the job instead of raising."""
        self._armed = True

    def attach(self, job: Job) -> None:
        """Called in the job's event loop before it runs (`execute(on_job=...)`)."""
        self._loop = asyncio.get_running_loop()
        self._job = job
        for _ in range(min(self.received, 2)):  # signals that came while starting up
            job.interrupt(self._by)

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self._armed:
            raise KeyboardInterrupt
        self.received += 1
        self._by = "Ctrl-C" if signum == signal.SIGINT else f"signal {signal.Signals(signum).name}"
        loop, job = self._loop, self._job
        if loop is None or job is None:
            return  # not started yet: attach() passes it on
        # A signal handler runs between two bytecodes of whatever the loop was doing:
        # hand the interrupt to the loop rather than change the job's state from here.
        with contextlib.suppress(RuntimeError):  # the loop is closed: the job is over
            loop.call_soon_threadsafe(job.interrupt, self._by)
