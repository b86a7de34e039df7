"""`bulk undo` as a library call: settings in, exit code out (the CLI is a thin click skin)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bulk.engine.errors import ConfigError
from bulk.engine.exit_codes import ExitCode
from bulk.options import UNDO, settings_for
from bulk.tallyfy.connection import connection_from_env

UNDO_APPLY_KEYS = settings_for(UNDO)


def default_undo_path(ledger: Path) -> Path:
    """`renames.csv.ledger.db` -> `renames.csv.undo.jsonl`, beside the ledger."""
    name = ledger.name.removesuffix(".db").removesuffix(".ledger")
    return ledger.with_name(f"{name}.undo.jsonl")


def undo_command(
    ledger: Path,
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run `bulk undo`: write the undo input, and with `apply` run it at once.

    Raises ConfigError/InputError (exit 2) for an unusable ledger (a dry run's included).
    """
    from bulk.commands.apply import apply_job, next_steps
    from bulk.commands.confirm import NotConfirmed, terminal_ask
    from bulk.tallyfy.apply_job import ApplyOptions
    from bulk.tallyfy.undo import UNDOABLE, write_undo

    out = out or sys.stdout
    err = err or sys.stderr
    output = flags.get("output") or (default_undo_path(ledger) if flags.get("apply") else None)
    if output is None:
        raise ConfigError("give -o FILE for the undo input (or --apply to run it at once)")
    output = Path(output)
    connection = None
    if flags.get("apply"):
        # Checked before anything is written: no token, no undo file left half used.
        connection = connection_from_env(
            os.environ if environ is None else environ,
            base_url=flags.get("base_url"), org_id=flags.get("org"),
        )
    if connection is not None:
        _same_org(ledger, connection.org_id)
    summary = write_undo(ledger, output, statuses=tuple(flags.get("status") or UNDOABLE),
                         format=flags.get("format"))
    for line in summary.skipped:
        print(f"bulk: undo: {line}", file=err)
    print(summary.line(), file=out, flush=True)
    if connection is None:
        return _undo_code(summary.skipped)
    if summary.rows == 0:
        print("undo: nothing to put back", file=out)
        return _undo_code(summary.skipped)
    values = {key: flags[key] for key in UNDO_APPLY_KEYS if flags.get(key) is not None}
    if "ledger" in values:
        values["ledger"] = Path(values["ledger"])
    options = ApplyOptions(input=output, target=summary.target, **values)
    ask = terminal_ask(stdin or sys.stdin, err, yes=bool(flags.get("yes")), out=out)
    try:
        result = apply_job(options, connection, quiet=bool(flags.get("quiet")), err=err,
                           ask=ask)
    except NotConfirmed as exc:
        print(f"bulk: {exc}", file=err, flush=True)
        return ExitCode.ABORTED
    print(result.line(), file=out, flush=True)
    for line in next_steps(result):
        print(line, file=out, flush=True)
    return max(result.exit_code, _undo_code(summary.skipped))


def _undo_code(skipped: object) -> ExitCode:
    """Rows that could not be undone (listed) make the exit code 1."""
    return ExitCode.ROWS_FAILED if skipped else ExitCode.OK


def _same_org(ledger: Path, org_id: str) -> None:
    """An undo goes to the org its job ran on, never elsewhere (checked before writing)."""
    from bulk.engine.ledger import open_existing
    from bulk.tallyfy.undo import job_of

    with open_existing(ledger) as book:
        _, org = job_of(book)
    if org and org != org_id:
        raise ConfigError(f"{ledger}: the job ran on org {org}, not {org_id}; nothing sent")
