"""`bulk select` and `bulk undo` as library calls: settings in, exit code out.

Kept apart from run.py (`bulk apply`) so each command's wiring stays short; the CLI is a thin
click skin over these functions.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bulk.engine.errors import AuthError, ConfigError
from bulk.tallyfy.connection import connection_from_env
from bulk.tallyfy.select import Progress, SelectFailed, SelectOptions, select
from bulk.tallyfy.selection import build_selection
from bulk.tallyfy.targets import TARGETS

#: Exit codes shared with `bulk apply`.
EXIT_OK, EXIT_FAILED, EXIT_ABORTED = 0, 1, 3

SELECT_OPTION_KEYS = ("format", "limit", "rate", "burst", "max_attempts", "timeout")


def select_command(
    target_name: str,
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run `bulk select`; returns the exit code. Raises ConfigError (exit 2) before any
    request for a bad option, a bad --set/--where/--columns, or a missing token."""
    out = out or sys.stdout
    err = err or sys.stderr
    target = TARGETS[target_name]
    selection = build_selection(
        target,
        owner=flags.get("owner"),
        member=flags.get("member"),
        group=flags.get("group"),
        statuses=tuple(flags.get("status") or ()),
        template=flags.get("template"),
        name=flags.get("name"),
        where=tuple(flags.get("where") or ()),
        sets=tuple(flags.get("set") or ()),
        columns=flags.get("columns"),
        assignee=flags.get("assignee"),
        run=flags.get("run"),
    )
    values = {key: flags[key] for key in SELECT_OPTION_KEYS if flags.get(key) is not None}
    options = SelectOptions(output=Path(flags["output"]), **values)
    options.output_format()  # an unknown extension is refused before any request
    connection = connection_from_env(
        os.environ if environ is None else environ,
        base_url=flags.get("base_url"),
        org_id=flags.get("org"),
    )
    wanted = not flags.get("quiet") and hasattr(err, "isatty") and err.isatty()
    try:
        summary = asyncio.run(
            select(selection, options, connection, progress=Progress(err if wanted else None))
        )
    except AuthError as exc:
        print(f"bulk: select aborted, authentication failed: {exc.describe()}; nothing written",
              file=err)
        return EXIT_ABORTED
    except SelectFailed as exc:
        print(f"bulk: select failed: {exc}; nothing written", file=err)
        return EXIT_FAILED
    print(summary.line(), file=out, flush=True)
    return EXIT_OK


UNDO_APPLY_KEYS = ("concurrency", "rate", "burst", "max_attempts", "timeout", "retry_failed",
                   "fresh", "dry_run", "ledger", "include_completed")


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
) -> int:
    """Run `bulk undo`: write the undo input, and with `apply` run it at once.

    Raises ConfigError/InputError (exit 2) for an unusable ledger (a dry run's included).
    """
    from bulk.run import apply_job
    from bulk.tallyfy.apply import ApplyOptions
    from bulk.tallyfy.undo import write_undo

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
    summary = write_undo(ledger, output, statuses=tuple(flags.get("status") or ("ok",)),
                         format=flags.get("format"))
    for line in summary.skipped:
        print(f"bulk: undo: {line}", file=err)
    print(summary.line(), file=out, flush=True)
    if connection is None:
        return EXIT_FAILED if summary.skipped else EXIT_OK
    if summary.rows == 0:
        print("undo: nothing to put back", file=out)
        return EXIT_FAILED if summary.skipped else EXIT_OK
    values = {key: flags[key] for key in UNDO_APPLY_KEYS if flags.get(key) is not None}
    if "ledger" in values:
        values["ledger"] = Path(values["ledger"])
    options = ApplyOptions(input=output, target=summary.target, **values)
    result = apply_job(options, connection, quiet=bool(flags.get("quiet")), err=err)
    print(result.line(), file=out, flush=True)
    return max(result.exit_code, EXIT_FAILED if summary.skipped else EXIT_OK)


def _same_org(ledger: Path, org_id: str) -> None:
    """An undo goes to the org its job ran on, never elsewhere (checked before writing)."""
    from bulk.engine.ledger import open_existing
    from bulk.tallyfy.undo import job_of

    with open_existing(ledger) as book:
        _, org = job_of(book)
    if org and org != org_id:
        raise ConfigError(f"{ledger}: the job ran on org {org}, not {org_id}; nothing sent")
