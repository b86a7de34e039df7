"""`bulk demo`: the sandbox on a free loopback port, a sample job through the real path.

The demo runs on a deliberately bad day (latency, proxy errors, dropped connections,
writes answered 503 after they were applied, a tight quota), so what it shows is the
tool's safety under those conditions, not just a happy path.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from bulk.commands.apply import options_from_settings
from bulk.engine.errors import ConfigError
from bulk.engine.exit_codes import ExitCode
from bulk.jobfile import load_job_file
from bulk.ledger_views.status_export import export_jsonl, status_lines
from bulk.progress import TerminalProgress
from bulk.samples import JOBS, ORG
from bulk.sandbox import Faults, Sandbox, SandboxConfig
from bulk.tallyfy.apply_job import execute, prepare
from bulk.tallyfy.connection import Connection, Secret
from bulk.tallyfy.undo import write_undo

BAD_DAY = Faults(error_rate=0.05, drop_rate=0.03, applied_503_rate=0.05)


def run_demo(job_name: str, *, quiet: bool = False, out: TextIO | None = None,
             ledger_dir: Path | None = None) -> int:
    """Run jobs/<job_name>.toml against an in-process sandbox; returns the exit code."""
    out = out or sys.stdout
    job_file = JOBS / f"{job_name}.toml"
    if not job_file.is_file():
        names = ", ".join(sorted(p.stem for p in JOBS.glob("*.toml")))
        raise ConfigError(f"no demo job {job_name!r} (there are: {names})")
    settings = load_job_file(job_file)
    folder = ledger_dir or Path(tempfile.mkdtemp(prefix="bulk-demo-"))
    settings["ledger"] = str(folder / f"{job_name}.ledger.db")
    options = options_from_settings(settings)
    return asyncio.run(_demo(job_name, options, quiet=quiet, out=out))


async def _demo(job_name: str, options: Any, *, quiet: bool, out: TextIO) -> int:
    config = SandboxConfig(data=ORG, latency_ms=15, jitter_ms=10, faults=BAD_DAY,
                           rate_limit=20, burst=5)
    async with Sandbox(config, host="127.0.0.1", port=0) as sandbox:
        say = lambda text="": print(text, file=out, flush=True)  # noqa: E731
        say(f"sandbox listening at {sandbox.base_url} (org {sandbox.org_id})")
        say("a bad day: 15-25 ms latency, 5% proxy errors, 3% dropped connections, "
            "5% writes answered 503 after being applied, a 20 req/s quota (the job paces at 25)")
        say(f"job: {job_name} ({options.target}) from {options.input.name}")
        tasks = options.target == "tasks"
        members_before = _members(sandbox, tasks)
        first_state = _state(sandbox, tasks)
        connection = Connection(sandbox.base_url, sandbox.org_id, Secret(sandbox.token))
        prepared = prepare(options, connection)
        try:
            observer = TerminalProgress() if TerminalProgress.wanted(quiet=quiet) else None
            summary = await execute(prepared, observer=observer)
            say(summary.line())
            say()
            for line in status_lines(prepared.ledger):
                say(line)
            say()
            say("first rows of the ledger (bulk export):")
            export_jsonl(prepared.ledger, _Head(out, 3))
            removals = _asked_removals(prepared.ledger)
        finally:
            prepared.ledger.close()
        from bulk.ledger_views.html_report.html import write_report

        report = options.ledger_path.with_name(f"{job_name}.report.html")
        write_report(options.ledger_path, report)
        stats = sandbox.stats
        writes = sum(stats.writes_per_record.values())
        twice = sorted(rid for rid, n in stats.writes_per_record.items() if n > 1)
        say()
        say(f"sandbox saw {stats.requests} requests, {stats.rate_limited} answered 429, "
            f"{writes} writes applied, {len(twice)} records written more than once")
        lost = _members_lost_unasked(members_before, _members(sandbox, tasks), removals)
        say(f"members: {len(members_before) - len(lost)} of {len(members_before)} records kept "
            "every member and group the job did not ask to remove "
            "(a plain PUT of only the changed fields would have removed them all)")
        say(f"report (open it in a browser): {report}")
        undo_code = await _undo(options, connection, sandbox, first_state, say, quiet=quiet)
    return summary.exit_code or undo_code


async def _undo(options: Any, connection: Connection, sandbox: Sandbox,
                first_state: dict[str, Any], say: Any, *, quiet: bool) -> int:
    """The end of the loop: undo the job from its ledger, and show nothing else moved."""
    ledger = options.ledger_path
    undo_path = ledger.with_name(ledger.name.removesuffix(".ledger.db") + ".undo.jsonl")
    written = write_undo(ledger, undo_path)
    say()
    say(f"undo: {written.rows} rows from the ledger put back (bulk undo {ledger.name} --apply)")
    undo_options = replace(options, input=undo_path, ledger=None, fresh=True)
    prepared = prepare(undo_options, connection)
    try:
        observer = TerminalProgress() if TerminalProgress.wanted(quiet=quiet) else None
        summary = await execute(prepared, observer=observer)
    finally:
        prepared.ledger.close()
    say(summary.line())
    now = _state(sandbox, options.target == "tasks")
    same = sum(now[rid] == state for rid, state in first_state.items())
    say(f"sandbox back to its first state: {same} of {len(first_state)} records exactly as "
        "before the job (every field, members and groups as sets; last_updated aside)")
    return summary.exit_code or (ExitCode.OK if same == len(first_state)
                                 else ExitCode.ROWS_FAILED)


def _state(sandbox: Sandbox, tasks: bool) -> dict[str, Any]:
    """Every record as stored, members and groups as sets, without its write time stamp."""
    state: dict[str, Any] = {}
    for records in _all_records(sandbox, tasks):
        for rid, record in records.items():
            record = _flat(record)
            fields = {k: v for k, v in record.items() if k != "last_updated"}
            fields["users"] = set(map(str, record.get("users") or ()))
            fields["groups"] = set(record.get("groups") or ())
            state[rid] = fields
    return state


Members = dict[str, tuple[set[Any], set[Any]]]


def _members(sandbox: Sandbox, tasks: bool) -> Members:
    found: Members = {}
    for records in _all_records(sandbox, tasks):
        for rid, record in records.items():
            record = _flat(record)
            found[rid] = (set(record.get("users", [])), set(record.get("groups", [])))
    return found


def _all_records(sandbox: Sandbox, tasks: bool) -> tuple[dict[str, Any], ...]:
    # The tasks count as records only in a tasks job: the runs and templates jobs' figures
    # (52 records on the sample org) stay what they were.
    store = sandbox.store
    return (store.runs, store.checklists, *((store.tasks,) if tasks else ()))


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """A task's assignee lists at the top, like a run's members (a task is one record)."""
    owners = record.get("owners")
    return {**record, **owners} if isinstance(owners, dict) else record


def _asked_removals(ledger: Any) -> Members:
    """What the job itself removed, per record, from the ledger's before/after values."""
    asked: Members = {}
    for entry in ledger.entries("ok"):
        before, after = entry.before or {}, entry.after or {}
        users = set(before.get("users", [])) - set(after.get("users", before.get("users", [])))
        groups = set(before.get("groups", [])) - set(after.get("groups", before.get("groups", [])))
        # A task's ledger id is run_id/task_id; the sandbox keys it by task id.
        asked[(entry.record_id or "").rpartition("/")[2]] = (users, groups)
    return asked


def _members_lost_unasked(before: Members, after: Members, asked: Members) -> list[str]:
    lost = []
    for rid, (users, groups) in before.items():
        allowed_users, allowed_groups = asked.get(rid, (set(), set()))
        if (users - after[rid][0]) - allowed_users or (groups - after[rid][1]) - allowed_groups:
            lost.append(rid)
    return lost


class _Head:
    """A text stream that passes on only the first few lines."""

    def __init__(self, out: TextIO, lines: int) -> None:
        self._out, self._left = out, lines

    def write(self, text: str) -> int:
        if self._left > 0:
            self._left -= 1
            self._out.write("  " + text)
        return len(text)
