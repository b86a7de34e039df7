"""From settings (job file + flags) to a finished job: the library's top-level call."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bulk.engine.errors import ConfigError
from bulk.engine.job import Summary
from bulk.jobfile import load_job_file, merge
from bulk.progress import TerminalProgress
from bulk.tallyfy.apply import ApplyOptions, execute, prepare
from bulk.tallyfy.connection import connection_from_env

OPTION_KEYS = ("format", "target", "ledger", "concurrency", "rate", "burst", "max_attempts",
               "timeout", "retry_failed", "fresh", "dry_run", "include_completed")


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
) -> int:
    """Run `bulk apply`; returns the exit code. Raises ConfigError/InputError (exit 2)."""
    out = out or sys.stdout
    err = err or sys.stderr
    settings = merge(load_job_file(job_file) if job_file else {}, dict(flags))
    options = options_from_settings(settings)
    connection = connection_from_env(
        os.environ if environ is None else environ,
        base_url=settings.get("base_url"),
        org_id=settings.get("org"),
    )
    summary = apply_job(options, connection, quiet=bool(settings.get("quiet")), err=err)
    print(summary.line(), file=out, flush=True)
    if summary.dry_run:
        from bulk.reporting.preview import preview_lines

        for line in preview_lines(summary.ledger_path):
            print(line, file=out)
    return summary.exit_code


def apply_job(options: ApplyOptions, connection: Any, *, quiet: bool = False,
              err: TextIO | None = None) -> Summary:
    """Check everything, then run the job to its end (or interruption)."""
    prepared = prepare(options, connection)
    try:
        observer = TerminalProgress(err) if TerminalProgress.wanted(err, quiet) else None
        if prepared.resumed and not quiet:
            print(f"resuming from {prepared.ledger.path}", file=err or sys.stderr)
        return asyncio.run(
            execute(prepared, observer=observer, install_signals=True)
        )
    finally:
        prepared.ledger.close()
