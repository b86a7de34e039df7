"""The `bulk` command: a thin skin over the library (options in, library call, exit code)."""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
from typing import TYPE_CHECKING, Any, ClassVar

import click

from bulk import __version__
from bulk.engine.errors import ConfigError, InputError
from bulk.engine.exit_codes import ExitCode
from bulk.options import APPLY, SELECT, UNDO, Bounds, Choices, Option, flags_of

if TYPE_CHECKING:
    from pathlib import Path

# Start-up: `bulk --help`, `bulk status` and `bulk export` must not pay for what they do
# not use (aiohttp and the sandbox server alone took 0.2 s), so each command imports its
# library inside its body, and `sandbox` is loaded only when it is the command run.

class _File(click.Path):
    """A file path argument, given to the command as a pathlib.Path; pathlib is imported
    only when one is given (`bulk --help` does without it)."""

    def __init__(self, *, dir_okay: bool = False) -> None:
        # dir_okay=True where the library says itself what is wrong with a folder.
        super().__init__(dir_okay=dir_okay)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Path:
        from pathlib import Path

        return Path(super().convert(value, param, ctx))


def _fail(message: str, code: int = ExitCode.USAGE) -> None:
    click.echo(f"bulk: {message}", err=True)
    sys.exit(code)


def _exit_with(call: Any, interrupted: str) -> None:
    """Run a command's library call and exit with its code; a usage, configuration or
    input problem is one line (exit 2), a Ctrl-C before anything was done exit 130."""
    try:
        code = call()
    except (ConfigError, InputError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail(interrupted, ExitCode.INTERRUPTED)
    sys.exit(code)


class _Statuses(click.Choice):
    """The ledger's statuses, looked up only when an option of this type is used."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from bulk.engine.ledger import STATUSES

        return STATUSES

    @choices.setter
    def choices(self, value: Any) -> None:
        pass  # click.Choice.__init__ sets it; the ledger's own list is the one that counts


class _Commands(click.Group):
    """A group whose heavy commands are imported only when run (or asked for help)."""

    #: name -> (module, attribute, one-line help shown by `bulk --help`)
    lazy: ClassVar[dict[str, tuple[str, str, str]]] = {
        "sandbox": ("bulk.sandbox.cli", "sandbox_command",
                    "Serve a local, faithful Tallyfy API to rehearse a job on."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attribute, _ = self.lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][2]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                # Its whole first sentence: write_dl wraps it, never cuts it mid-phrase.
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _Checked(click.ParamType):
    """A number checked against the same table as job files (finite, within its range)."""

    def __init__(self, spec: Bounds) -> None:
        self.spec = spec
        self.name = "integer" if spec.whole else "number"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().lower() in self.spec.words:
            return value.strip().lower()
        if isinstance(value, str):
            try:
                value = int(value) if self.spec.whole else float(value)
            except ValueError:
                self.fail(f"{value!r} is not {'a whole number' if self.spec.whole else 'a number'}"
                          f" (expected {self.spec.span})", param, ctx)
        problem = self.spec.problem(value)
        if problem:
            self.fail(problem, param, ctx)
        return value


class _UserOrEmail(click.ParamType):
    """A user id, or a member's email (the command resolves it from the member list)."""

    name = "ID|EMAIL"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        text = str(value).strip()
        if text.isascii() and text.isdigit() and int(text) > 0:
            return int(text)
        name, at, domain = text.partition("@")
        if at and name and domain and "@" not in domain:
            return text.lower()
        self.fail(f"{value!r} is neither a user id (a positive integer) nor an email",
                  param, ctx)


def _click_option(option: Option, command: str) -> Any:
    """One row of the option table as a click option of `command`."""
    names = [option.flag, *([option.short] if option.short else []), option.key]
    settings: dict[str, Any] = {"help": option.help_for(command)}
    if option.switch:
        settings.update(is_flag=True, default=None)
    elif option.path is not None:
        settings["type"] = _File(dir_okay=option.path == "any")
    elif isinstance(option.spec, Choices):
        settings["type"] = click.Choice(option.spec.values)
    elif isinstance(option.spec, Bounds):
        settings["type"] = _Checked(option.spec)
    return click.option(*names, **settings)


def _table_options(command: str) -> Any:
    """The command's settings, from the one option table (bulk/options.py), in its order."""
    options = [_click_option(option, command) for option in flags_of(command)]

    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulk")
def main() -> None:
    """Safe, resumable bulk updates of Tallyfy runs, templates and tasks.

    \b
    Example: rehearse on the local sandbox first
      eval "$(bulk sandbox --data sample_data/org.json &)"
      bulk apply jobs/mass-rename.toml
    """


@main.command()
@click.argument("job_file", required=False, type=_File())
@_table_options(APPLY)
def apply(job_file: Path | None, **flags: Any) -> None:
    """Apply the changes of every row, safely, with a resumable ledger.

    Each row names one run, template or task and the fields to change. The record is read,
    the change merged (members are always kept), and written back. Run the same
    command again to resume: finished rows are skipped, in-doubt writes settled.

    \b
    Example:
      export TALLYFY_ACCESS_TOKEN=...  TALLYFY_ORG_ID=...
      bulk apply jobs/mass-rename.toml --rate 5
      bulk apply --input renames.csv --target runs --dry-run
      bulk apply --input renames.csv --target runs --concurrency 16

    \b
    Exit codes: 0 all rows ok or unchanged; 1 some rows failed, invalid or in doubt;
    2 usage, configuration or unreadable input (or a preflight that found the base URL,
    host or organization wrong); 3 aborted (authentication, API unreachable past
    --outage-limit, every row failing alike, --max-failures reached, or "no" at the
    question a terminal is asked before writing: see --yes);
    130 interrupted (run the same command again to resume).
    """
    from bulk.commands.apply import apply_command

    _exit_with(lambda: apply_command(job_file, flags),
               "interrupted before the first row; nothing was sent")


@main.command(name="select")
@click.argument("target", type=click.Choice(["runs", "templates", "tasks"]))
@click.option("--output", "-o", required=True, type=_File(),
              help="File to write (.csv or .jsonl), whole or not at all.")
@click.option("--owner", type=_UserOrEmail(),
              help="Only records this user owns (a user id or a member's email).")
@click.option("--member", type=_UserOrEmail(), help="Only records with this member (id or email).")
@click.option("--group", help="Only records with this group (32-hex id).")
@click.option("--status", multiple=True, help="Runs or tasks with this status (repeatable; "
              "tasks: active (the default: not completed), all, or a task status).")
@click.option("--template", help="Runs (or tasks) of this template (checklist id).")
@click.option("--assignee", type=_UserOrEmail(),
              help="Tasks: assigned to this user, by id or email (their task list).")
@click.option("--run", help="Tasks: of this run (its task list).")
@click.option("--name", help="Name or title contains this text (any case).")
@click.option("--where", multiple=True, metavar="FIELD=VALUE",
              help="Exact match on a field of the record (repeatable; empty VALUE: empty).")
@click.option("--set", "set_", multiple=True, metavar="FIELD=VALUE",
              help="Write a ready apply input: FIELD set to VALUE ({field} uses the record's), "
                   "with expect.FIELD holding the current value (repeatable).")
@click.option("--columns", metavar="F1,F2", help="Fields written as expect.* columns "
              "(default without --set: the main fields).")
@_table_options(SELECT)
def select_(target: str, set_: tuple[str, ...], **flags: Any) -> None:
    """Find runs, templates or tasks by filters and write them as a `bulk apply` input.

    Pages through the list (paced and retried like apply) and applies every filter to the
    records themselves, so the file holds exactly what the filters say.

    \b
    Example: give every process Dana (1001) owns to Sam (1002)
      bulk select runs --owner 1001 -o dana.csv \\
        --set owner_id=1002 --set add_users=1002 --set remove_users=1001
      bulk apply --input dana.csv --dry-run
      bulk apply --input dana.csv

    \b
    Exit codes: 0 written; 1 the list could not be read to its end (nothing written);
    2 a bad option, --set, --where or --columns (nothing sent); 3 authentication failed.
    """
    from bulk.commands.select import select_command

    flags["set"] = set_
    _exit_with(lambda: select_command(target, flags), "select interrupted; nothing written")


@main.command()
@click.argument("job_ledger", metavar="LEDGER", type=_File())
@click.option("--output", "-o", type=_File(),
              help="The undo input to write (.jsonl, or .csv when every value fits a cell).")
@click.option("--status", multiple=True,
              type=click.Choice(["ok", "in_doubt", "conflict", "failed"]),
              help="Ledger rows to undo (default: every row whose write may have landed, "
                   "whatever it ended as; repeatable).")
@click.option("--apply", "apply_now", is_flag=True,
              help="Run the undo at once (like bulk apply, with its own ledger).")
@_table_options(UNDO)
def undo(job_ledger: Path, apply_now: bool, **flags: Any) -> None:
    """Write an input that puts back every record a job changed (and run it, with --apply).

    Each field goes back to its before-value, guarded by expect.* = the value the job wrote,
    so a record someone changed since is left alone (conflict). Members and groups are
    undone as deltas of exactly who the job added or removed. Undoing an undo redoes.

    \b
    Example:
      bulk undo renames.csv.ledger.db -o renames.undo.jsonl
      bulk apply --input renames.undo.jsonl --target runs --dry-run
      bulk undo renames.csv.ledger.db --apply

    \b
    Exit codes: as bulk apply; 1 also when some rows cannot be undone (listed).
    """
    from bulk.commands.undo import undo_command

    flags.update(apply=apply_now)
    _exit_with(lambda: undo_command(job_ledger, flags),
               "interrupted before the first row; nothing was sent")


@main.command()
@click.argument("ledger", type=_File(dir_okay=True))
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object (counts, runs, causes with their commands), for scripts.")
def status(ledger: Path, as_json: bool) -> None:
    """Counts by status, the job's fingerprint, its first start, each stop and resume,
    and errors by cause with what to do.

    \b
    Example:
      bulk status renames.csv.ledger.db
      bulk status renames.csv.ledger.db --json
    """
    from bulk.engine.ledger import open_existing
    from bulk.ledger_views.status_export import status_json, status_lines

    try:
        book = open_existing(ledger)
    except ConfigError as exc:
        _fail(str(exc))
    with book:
        if as_json:
            click.echo(json.dumps(status_json(book), indent=2, ensure_ascii=False))
            return
        for line in status_lines(book):
            click.echo(line)


@main.command()
@click.argument("ledger", type=_File(dir_okay=True))
@click.option("--status", "only", type=_Statuses(), help="Only rows with this status.")
@click.option("--cause", help="Only rows of this cause (its key, as bulk status and bulk report "
                                "show it).")
@click.option("--format", "out_format", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="File to write (default: standard output).")
def export(ledger: Path, only: str | None, cause: str | None, out_format: str,
           output: str) -> None:
    """One line per row: row, id, status, http_status, attempts, error, request_id,
    before, after; JSONL adds started_at and updated_at, CSV adds the row's own input
    columns.

    A CSV export of failed rows is a valid input for a re-run.

    \b
    Example:
      bulk export renames.csv.ledger.db --status failed --format csv -o retry.csv
      bulk apply --input retry.csv --target runs
    """
    from bulk.engine.ledger import open_existing
    from bulk.ledger_views.status_export import export_to

    try:
        with open_existing(ledger) as book:
            export_to(book, output, out_format, only, stdout=sys.stdout, cause=cause)
    except ConfigError as exc:
        if output == "-":
            _silence_stdout()
        _fail(str(exc))


def _silence_stdout() -> None:
    # What could not be written to a full or closed standard output is still buffered;
    # without this, the interpreter's last flush at exit would print a traceback-like
    # "Exception ignored" message and change the exit code.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (a test's capture): nothing will be flushed at exit


@main.command()
@click.argument("ledger", type=_File())
@click.option("--output", "-o", type=_File(),
              help="HTML file to write (default: <ledger>.html).")
def report(ledger: Path, output: Path | None) -> None:
    """One self-contained HTML page: the job, counts, throughput, errors, changes.

    Opening it makes no request to any host (styles, chart and data are inside).
    Works on a dry run's ledger too (the plan), and on a job still running.

    \b
    Example:
      bulk report renames.csv.ledger.db -o report.html
    """
    from bulk.ledger_views.html_report.html import write_report

    target = output or ledger.with_name(ledger.name + ".html")
    try:
        write_report(ledger, target)
    except ConfigError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{target}: cannot write the report ({exc.strerror})")
    click.echo(f"report: {target}")


@main.command()
@click.option("--job", "job_name", default="mass-rename", show_default=True,
              help="Which job of jobs/ to run (mass-rename, owner-reassignment, migration-batch, "
                   "leaver-handover).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def demo(job_name: str, quiet: bool) -> None:
    """Start the sandbox on a free loopback port and run a sample job against it.

    Nothing leaves this machine. Shows the progress bar, the summary, the ledger, and
    proves no run lost a member; then undoes the job and shows the sandbox as it started.

    \b
    Example:
      bulk demo
      bulk demo --job owner-reassignment
    """
    from bulk.demo import run_demo

    try:
        code = run_demo(job_name, quiet=quiet)
    except (ConfigError, InputError) as exc:
        _fail(str(exc))
    sys.exit(code)

