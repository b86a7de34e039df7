"""`bulk select` as a library call: settings in, exit code out (the CLI is a thin click skin)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bulk.engine.clock import LoopClock
from bulk.engine.errors import AuthError, SelectFailed
from bulk.engine.exit_codes import ExitCode
from bulk.options import SELECT, settings_for
from bulk.tallyfy.connection import Connection, connection_from_env
from bulk.tallyfy.people import Directory, MembersUnavailable, directory_for, resolve_flags
from bulk.tallyfy.select_query import build_selection
from bulk.tallyfy.select_scan import Progress, SelectOptions, select
from bulk.tallyfy.targets import TARGETS

SELECT_OPTION_KEYS = settings_for(SELECT)
#: The filters that name a member: by user id, or by email.
USER_FLAGS = ("owner", "member", "assignee")


async def _members(connection: Connection, options: SelectOptions) -> Directory:
    return await directory_for(connection, options, LoopClock())


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
    # Members given by email: checked like ids now (1 holds their place), resolved from
    # the member list once the options are known good.
    emails = {flag: flags[flag] for flag in USER_FLAGS if isinstance(flags.get(flag), str)}
    people = {flag: 1 if flag in emails else flags.get(flag) for flag in USER_FLAGS}
    selection = build_selection(
        target,
        owner=people["owner"],
        member=people["member"],
        group=flags.get("group"),
        statuses=tuple(flags.get("status") or ()),
        template=flags.get("template"),
        name=flags.get("name"),
        where=tuple(flags.get("where") or ()),
        sets=tuple(flags.get("set") or ()),
        columns=flags.get("columns"),
        assignee=people["assignee"],
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
        if emails:
            directory = asyncio.run(_members(connection, options))
            selection = dataclasses.replace(
                selection, **resolve_flags(emails, directory, connection.org_id))
        summary = asyncio.run(
            select(selection, options, connection, progress=Progress(err if wanted else None))
        )
    except AuthError as exc:
        print(f"bulk: select aborted, authentication failed: {exc.describe()}; nothing written",
              file=err)
        return ExitCode.ABORTED
    except (SelectFailed, MembersUnavailable) as exc:
        print(f"bulk: select failed: {exc}; nothing written", file=err)
        return ExitCode.ROWS_FAILED
    print(summary.line(), file=out, flush=True)
    return ExitCode.OK

