"""The question a person at a terminal answers before a job writes anything.

Asked after the input's scan and the preflight (so the count, the organization and the host
it names are the checked ones), and before the first row: "change N records of runs in
organization ORG at HOST? [y/N]". Only when standard input is a terminal: a script, CI or a
pipe is never asked (nobody could answer), and `--yes` skips it. Anything but y/yes, or an
end of input, is a no: nothing is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TextIO
from urllib.parse import urlsplit

from bulk.engine.clock import LoopClock
from bulk.engine.errors import AuthError, StopJob
from bulk.engine.ledger import RETRYABLE, TERMINAL, now_iso
from bulk.tallyfy.api import open_api
from bulk.tallyfy.apply_job import PreparedJob

#: Asks a question, returns True for yes.
Ask = Callable[[str], bool]

NOT_CONFIRMED = "not confirmed at the prompt; nothing was sent"


class NotConfirmed(Exception):
    """The person answered no (exit 3, nothing sent)."""


def terminal_ask(stdin: TextIO, err: TextIO, *, yes: bool = False,
                 out: TextIO | None = None) -> Ask | None:
    """The question on `err` (or `out`, when only it is a terminal), the answer from
    `stdin`; None when nobody is there to answer (stdin not a terminal), nobody would see
    the question (neither output is one: a silent wait would look like a hang), or `--yes`
    was given."""
    if yes or not _is_terminal(stdin):
        return None
    shown = next((stream for stream in (err, out) if _is_terminal(stream)), None)
    if shown is None:
        return None

    def ask(question: str) -> bool:
        shown.write(question + " ")
        shown.flush()
        answer = stdin.readline()
        return answer.strip().lower() in ("y", "yes")

    return ask


def _is_terminal(stream: TextIO | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def rows_left(job: PreparedJob) -> int:
    """Rows this run will do: those the ledger does not hold as finished."""
    skippable = TERMINAL - RETRYABLE if job.options.retry_failed else TERMINAL
    done = job.ledger.count(skippable, last_row=job.total)
    if not job.options.retry_failed:  # transient failures are retried without being asked
        done -= job.ledger.count_transient_failures(last_row=job.total)
    return max(0, job.total - done)


def question(job: PreparedJob, rows: int) -> str:
    connection = job.connection
    host = urlsplit(connection.base_url).netloc or connection.base_url
    what = "record" if rows == 1 else "records"
    return (f"change {rows} {what} of {job.target.name} in organization {connection.org_id} "
            f"at {host}? [y/N]")


def confirm_before_writing(job: PreparedJob, ask: Ask | None) -> None:
    """Ask, unless nobody can answer, it is a dry run, or nothing is left to do.

    Raises NotConfirmed (the ledger says so) on a no. A preflight that finds something
    wrong raises as it would in the job (ConfigError); an outage or a refused token is left
    for the job's own preflight to report in its usual words, without asking first.
    """
    if ask is None or job.options.dry_run:
        return
    rows = rows_left(job)
    if rows == 0:
        return
    try:
        asyncio.run(_preflight(job))
    except (AuthError, StopJob):
        return
    if not ask(question(job, rows)):
        job.ledger.set_meta(finished_at=now_iso(), outcome=NOT_CONFIRMED)
        raise NotConfirmed(NOT_CONFIRMED)


async def _preflight(job: PreparedJob) -> None:
    async with open_api(job.connection, job.options, LoopClock(), connections=1) as api:
        await api.preflight(job.target)
