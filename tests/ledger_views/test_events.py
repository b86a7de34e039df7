"""429s and pauses go into the ledger as they happen, batched with its commits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bulk.engine.clock import SkipClock
from bulk.engine.ledger import Entry, Ledger
from bulk.engine.pacing import Pacer


def events(path: Path) -> list[tuple[str, float | None]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT kind, seconds FROM events ORDER BY rowid").fetchall()


def test_a_ledger_from_before_the_events_table_opens_and_records_them(tmp_path) -> None:
    path = tmp_path / "old.ledger.db"
    with Ledger(path) as book:
        book.claim({"input_sha256": "ab", "target": "runs", "org": "o"})
        book.record(Entry(row=1, status="ok"))
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE events")

    with Ledger(path) as book:
        book.record_event("429")
        book.record_event("pause", 2.5)
        assert events(path) == []  # not yet: they wait for the next batch
        book.commit()
        assert events(path) == [("429", None), ("pause", 2.5)]
        assert book.counts()["ok"] == 1


async def test_the_pacer_tells_of_each_cooldown_with_its_length(tmp_path) -> None:
    seen: list[tuple[str, float | None]] = []
    pacer = Pacer(10, 2, SkipClock())
    pacer.on_429 = lambda _at: seen.append(("429", None))
    pacer.on_pause = lambda _start, seconds: seen.append(("pause", seconds))

    pacer.refused(3.0)  # a 429 whose Retry-After is 3 s
    pacer.cool_down(1.0)  # inside the first: no new pause
    await pacer.acquire()

    assert seen == [("429", None), ("pause", 3.0)]


def test_a_fresh_start_clears_the_events(tmp_path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as book:
        book.claim({"input_sha256": "ab", "target": "runs", "org": "o"})
        book.record_event("pause", 1.0)
    with Ledger(path) as book:
        book.claim({"input_sha256": "cd", "target": "runs", "org": "o"}, fresh=True)
    assert events(path) == []


def test_overlapping_pauses_count_once_in_the_time_held_back(tmp_path) -> None:
    from bulk.ledger_views.html_report.facts import gather

    path = tmp_path / "l.db"
    with Ledger(path) as book:
        book.claim({"input_sha256": "ab", "target": "runs", "org": "o"})
        book.record(Entry(row=1, status="ok"))
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO events VALUES (?, ?, ?)", [
            ("2026-01-01T10:00:00.000+00:00", "pause", 2.0),
            ("2026-01-01T10:00:01.000+00:00", "pause", 2.0),  # extends the first to 3 s
            ("2026-01-01T10:00:10.000+00:00", "pause", 1.5),
            ("2026-01-01T10:00:10.000+00:00", "outage", 30.0),
            ("2026-01-01T10:00:01.000+00:00", "429", None),
        ])

    facts = gather(path)

    assert facts.events["pause"][0] == 3
    assert abs(facts.events["pause"][1] - 4.5) < 0.01
    assert abs(facts.events["outage"][1] - 30.0) < 0.01
    assert facts.events["429"] == (1, 0.0)
    # Drawn as merged bands (here in seconds after the first pause's start).
    bands = facts.throughput.bands
    first = bands[1][1]
    assert [(kind, at - first, held) for kind, at, held in bands] == [
        ("outage", 10.0, 30.0), ("pause", 0.0, 3.0), ("pause", 10.0, 1.5)]
