"""The `bulk` command: a thin skin over the library (options in, library call, exit code)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bulk import __version__
from bulk.engine.errors import ConfigError, InputError
from bulk.engine.ledger import STATUSES, open_existing
from bulk.sandbox.cli import sandbox_command

#: Exit codes (documented in the README and in `bulk apply --help`).
EXIT_OK, EXIT_ROWS_FAILED, EXIT_USAGE, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class RateType(click.ParamType):
    """A number of requests per second (at least 0.01), or "auto"."""

    name = "RATE|auto"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float | str:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            rate = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)
        if not rate >= 0.01:
            self.fail(f"{value!r} is below 0.01 requests per second", param, ctx)
        return rate


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"bulk: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulk")
def main() -> None:
    """Safe, resumable bulk updates of Tallyfy runs and templates.

    \b
    Example: rehearse on the local sandbox first
      eval "$(bulk sandbox --data sample_data/org.json &)"
      bulk apply jobs/mass-rename.toml
    """


@main.command()
@click.argument("job_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "input_path", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV or JSONL file, one row per record to change.")
@click.option("--format", "input_format", type=click.Choice(["csv", "jsonl"]),
              help="Input format (default: from the file extension).")
@click.option("--target", type=click.Choice(["runs", "templates"]),
              help="What the rows name: runs (processes) or templates (checklists).")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path),
              help="Result ledger (default: <input>.ledger.db).")
@click.option("--org", help="Organization id (default: $TALLYFY_ORG_ID).")
@click.option("--base-url", help="API base URL (default: $TALLYFY_BASE_URL or production).")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Workers (default 8).")
@click.option("--rate", type=RateType(),
              help="Most requests per second, or 'auto' to find the quota (default 10).")
@click.option("--burst", type=click.IntRange(1, 1000), help="Requests allowed at once (default 2).")
@click.option("--max-attempts", type=click.IntRange(1, 50), help="Tries per row (default 5).")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Seconds per request (30).")
@click.option("--outage-limit", type=click.FloatRange(min=1),
              help="Seconds the API may stay unreachable before the job stops (600).")
@click.option("--max-failures", type=click.IntRange(min=1),
              help="Stop once this many rows have failed (default: no limit).")
@click.option("--retry-failed", is_flag=True, default=None, help="On resume, retry failed rows.")
@click.option("--fresh", is_flag=True, default=None,
              help="Start the ledger over (needed when the input, target or org changed).")
@click.option("--dry-run", is_flag=True, default=None,
              help="Read and plan every row, write nothing; the plan goes to its own ledger "
                   "(<input>.dry-run.ledger.db) for `bulk export`.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bar.")
def apply(job_file: Path | None, input_path: Path | None, input_format: str | None,
          **flags: Any) -> None:
    """Apply the changes of every row, safely, with a resumable ledger.

    Each row names one run or template and the fields to change. The record is read,
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
    --outage-limit, every row failing alike, --max-failures reached);
    130 interrupted (run the same command again to resume).
    """
    from bulk.run import apply_command

    flags.update(input=input_path, format=input_format)
    try:
        code = apply_command(job_file, flags)
    except (ConfigError, InputError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted before the first row; nothing was sent", EXIT_INTERRUPTED)
    sys.exit(code)


@main.command()
@click.argument("ledger", type=click.Path(dir_okay=False, path_type=Path))
def status(ledger: Path) -> None:
    """Counts by status, the job's fingerprint, start and end times.

    \b
    Example:
      bulk status renames.csv.ledger.db
    """
    from bulk.report import status_lines

    try:
        book = open_existing(ledger)
    except ConfigError as exc:
        _fail(str(exc))
    with book:
        for line in status_lines(book):
            click.echo(line)


@main.command()
@click.argument("ledger", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", "only", type=click.Choice(STATUSES), help="Only rows with this status.")
@click.option("--format", "out_format", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write (default: standard output).")
def export(ledger: Path, only: str | None, out_format: str, output: Any) -> None:
    """One line per row: row, id, status, http_status, attempts, error, before, after.

    A CSV export of failed rows is a valid input for a re-run.

    \b
    Example:
      bulk export renames.csv.ledger.db --status failed --format csv -o retry.csv
      bulk apply --input retry.csv --target runs
    """
    from bulk.report import export_csv, export_jsonl

    try:
        book = open_existing(ledger)
    except ConfigError as exc:
        _fail(str(exc))
    with book:
        (export_csv if out_format == "csv" else export_jsonl)(book, output, only)


@main.command()
@click.option("--job", "job_name", default="mass-rename", show_default=True,
              help="Which job of jobs/ to run (mass-rename, owner-reassignment, migration-batch).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def demo(job_name: str, quiet: bool) -> None:
    """Start the sandbox on a free loopback port and run a sample job against it.

    Nothing leaves this machine. Shows the progress bar, the summary, the ledger, and
    proves no run lost a member.

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


main.add_command(sandbox_command)
