"""`bulk` with a real Ctrl-C (SIGINT to itself) at one chosen point, for tests.

    python -m tests.support.interrupt_at POINT [bulk arguments...]

The signal is raised inside the patched call, so it lands at exactly that moment of the
run, every time: no race with a sleeping test.
"""

from __future__ import annotations

import functools
import signal
import sys
from typing import Any

import aiohttp

from bulk.cli import main
from bulk.engine.job import Job
from bulk.engine.ledger import Ledger
from bulk.engine.pacing import Pacer
from bulk.engine.reader import InputFile
from bulk.engine.summary import Summary


def _ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)


def _before(owner: Any, name: str, when: Any = None) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        if when is None or when(*args, **kwargs):
            _ctrl_c()
        return original(*args, **kwargs)

    setattr(owner, name, patched)


def _after_job_run() -> None:
    original = Job.run

    async def run(self: Job) -> Summary:
        summary = await original(self)
        _ctrl_c()  # the last row is done; the summary is not printed yet
        return summary

    Job.run = run  # type: ignore[method-assign]


def _before_session_close() -> None:
    original = aiohttp.ClientSession.__aexit__

    async def aexit(self: aiohttp.ClientSession, *exc: Any) -> None:
        _ctrl_c()
        await original(self, *exc)

    aiohttp.ClientSession.__aexit__ = aexit  # type: ignore[method-assign]


def _finishing(*args: Any, **values: Any) -> bool:
    return bool(values.get("finished_at"))  # prepare sets it empty; the end sets a time


POINTS = {
    # While checking, before anything is sent.
    "scan": lambda: _before(InputFile, "scan"),
    "claim": lambda: _before(Ledger, "claim"),
    # Starting up: the job exists, no row taken yet.
    "startup": lambda: _before(Pacer, "__init__"),
    # After the last row, before the summary.
    "last-row": _after_job_run,
    "session-close": _before_session_close,
    "finish-meta": lambda: _before(Ledger, "set_meta", _finishing),
    "ledger-close": lambda: _before(Ledger, "close"),
    "summary": lambda: _before(Summary, "line"),
}

if __name__ == "__main__":
    POINTS[sys.argv[1]]()
    main(sys.argv[2:], prog_name="bulk")
