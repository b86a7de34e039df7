"""The progress bar shows the pace in requests/s, and its ETA follows that pace."""

from __future__ import annotations

import io
import re

from bulk.engine.ledger import Entry
from bulk.progress import TerminalProgress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_bar_shows_the_pace_and_an_eta_from_it():
    clock = Clock()
    stream = io.StringIO()
    sent = {"requests": 0}
    bar = TerminalProgress(stream, now=clock)
    bar.watch(lambda: sent["requests"])
    bar.start(100)
    for _ in range(10):  # 10 rows in 10 s, 2 requests a row: 2 requests/s
        clock.t += 1.0
        sent["requests"] += 2
        bar.advance(Entry(row=1, status="ok"))
    assert bar.pace() == 2.0
    assert bar.eta(2.0) == "01:30"  # 90 rows x 2 requests / 2 per s

    for _ in range(10):  # the quota was found higher: 20 requests/s now
        clock.t += 0.1
        sent["requests"] += 2
        bar.advance(Entry(row=1, status="ok"))
    pace = bar.pace()
    assert pace is not None and pace > 3.0  # the last 5 s, not the whole job
    assert bar.eta(20.0) == "00:08"  # 80 rows x 2 / 20
    assert re.search(r"ETA 00:\S+ [\d.]+ req/s", bar._postfix())  # while it runs
    bar.close()
    assert "req/s overall" in stream.getvalue()  # at its end: the whole run's rate


def test_a_fast_job_ends_on_its_real_rate_not_on_zero():
    # Every request was sent before the bar's first refresh: the pace of the last 5 s is
    # nothing to show; the end shows the whole run's rate, and no ETA.
    clock = Clock()
    stream = io.StringIO()
    sent = {"requests": 0}
    bar = TerminalProgress(stream, now=clock)
    bar.watch(lambda: sent["requests"])
    bar.start(50)
    sent["requests"] = 100
    for _ in range(50):
        bar.advance(Entry(row=1, status="ok"))
    clock.t = 0.5
    bar.close()
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert "50/50" in last and "200.0 req/s overall" in last, last
    assert " 0.0 req/s" not in last and "ETA ?" not in last


def test_no_pace_without_a_source():
    bar = TerminalProgress(io.StringIO(), now=Clock())
    bar.start(3)
    bar.advance(Entry(row=1, status="ok"))
    assert bar.pace() is None
    bar.close()


def test_the_end_pass_extends_the_total():
    bar = TerminalProgress(io.StringIO(), now=Clock())
    bar.start(3)
    bar.extend(2)
    assert bar._bar is not None and bar._bar.total == 5
    bar.close()
