"""What a report says about a ledger, gathered with SQL aggregates (bounded memory).

Nothing here loads every row: counts are GROUP BYs, throughput is rows' `updated_at`
bucketed in SQL, samples are LIMITed, errors are grouped by `causes.group_causes`.
The ledger is opened read-only, so a report can be made while the job still runs.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulk.engine.errors import ConfigError
from bulk.ledger_views.history import History, read_history
from bulk.ledger_views.html_report.causes import FINE, Causes, group_causes
from bulk.ledger_views.names import name_sql

#: The ledger's statuses, in the order people read them (ledger.STATUSES, plus
#: `conflict`, which a newer ledger may hold; any other status found comes after).
ORDER = ("ok", "unchanged", "invalid", "failed", "conflict", "in_doubt", "pending")
#: Bucket widths (seconds) for the throughput chart: the smallest giving <= MAX_BUCKETS.
WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_BUCKETS = 150
SAMPLES_PER_FIELD = 5
MAX_BANDS = 1000  # pauses and outages drawn one by one; beyond that only counted


@dataclass
class Throughput:
    start: str | None = None  # ISO time of the first bucket's start
    width: int = 1  # seconds per bucket
    seconds: list[float] = field(default_factory=list)  # bucket start, from `start`
    done: list[float] = field(default_factory=list)  # rows finished per second
    errors: list[float] = field(default_factory=list)  # of which not ok/unchanged
    hits_429: list[int] = field(default_factory=list)  # 429 answers in the bucket
    #: (kind, start in seconds from `start`, seconds) of each pause or outage.
    bands: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class Change:
    row: int
    record_id: str | None
    before: str | None  # JSON text of the value
    after: str | None
    name: str | None = None  # the record's name or title, as the row read it


@dataclass
class Facts:
    ledger: str
    meta: dict[str, str]
    fingerprint: dict[str, Any]
    options: dict[str, Any]
    dry_run: bool
    total: int  # rows in the input
    counts: dict[str, int]
    fields: list[tuple[str, int]]  # changed field -> ok rows changing it, most first
    throughput: Throughput
    events: dict[str, tuple[int, float]]  # kind -> (how many, seconds held back)
    causes: Causes
    samples: dict[str, list[Change]]
    #: Record ids named by more than one row: (record id, rows, first rows).
    duplicates: list[tuple[str, int, list[int]]]
    duplicate_ids: int
    attempts: int = 0  # requests' read-merge-write attempts, all rows
    retried: int = 0  # rows that took more than one
    #: Each run of the job (first start, stops, resumes).
    history: History = field(default_factory=lambda: History([]))

    @property
    def recorded(self) -> int:
        return sum(self.counts.values())


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """The ledger for reading only; refused (ConfigError) when it is not a bulk ledger."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such ledger")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        db.execute("SELECT row FROM rows LIMIT 1").fetchall()
    except sqlite3.DatabaseError:
        raise ConfigError(f"{path}: not a bulk ledger") from None
    return db


def gather(path: str | Path, *, causes: int = 10) -> Facts:
    db = open_readonly(path)
    try:
        return _gather(db, str(path), causes)
    finally:
        db.close()


def status_counts(db: sqlite3.Connection) -> dict[str, int]:
    found = dict(db.execute("SELECT status, COUNT(*) FROM rows GROUP BY status"))
    counts = {status: found.pop(status, 0) for status in ORDER
              if status != "conflict" or status in found}
    counts.update(sorted(found.items()))
    return counts


def _gather(db: sqlite3.Connection, path: str, limit: int) -> Facts:
    meta = dict(db.execute("SELECT key, value FROM meta"))
    fingerprint = _json(meta.get("fingerprint"))
    fields = list(db.execute(
        "SELECT j.key, COUNT(*) FROM rows, json_each(rows.after) AS j "
        "WHERE rows.status = 'ok' GROUP BY j.key ORDER BY COUNT(*) DESC, j.key"))
    has_events = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone()
    events: dict[str, tuple[int, float]] = {}
    held, bands = _held_back(db) if has_events else ({}, [])
    if has_events:
        for kind, count in db.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind"):
            events[kind] = (count, held.get(kind, 0.0))
    dry_run = fingerprint.get("mode") == "dry-run"
    # Only a plan shows them: a GROUP BY record_id over every row is the costliest query.
    repeated, duplicate_ids = duplicates(db) if dry_run else ([], 0)
    attempts, retried = db.execute(
        "SELECT TOTAL(attempts), TOTAL(attempts > 1) FROM rows").fetchone()
    return Facts(
        ledger=path,
        meta=meta,
        fingerprint=fingerprint,
        options=_json(meta.get("options")),
        dry_run=dry_run,
        total=int(meta.get("rows") or 0),
        counts=status_counts(db),
        fields=fields,
        throughput=_throughput(db, bool(has_events), bands, _has(db, "sessions")),
        events=events,
        causes=group_causes(db, limit),
        samples={name: _samples(db, name) for name, _count in fields},
        duplicates=repeated,
        duplicate_ids=duplicate_ids,
        attempts=int(attempts),
        retried=int(retried),
        history=read_history(db, meta),
    )


def _has(db: sqlite3.Connection, table: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (table,)).fetchone() is not None


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _unix(column: str) -> str:
    """SQL for a column's ISO time as Unix seconds (SQLite 3.40 has no subsecond unixepoch)."""
    return f"((julianday({column}) - 2440587.5) * 86400.0)"


Band = tuple[str, float, float]  # kind, start (Unix seconds), seconds


def _held_back(db: sqlite3.Connection) -> tuple[dict[str, float], list[Band]]:
    """Seconds each kind held the job back, and the intervals to draw: overlapping events
    of a kind are merged (a 429 during a pause extends it: a new event over the last)."""
    held: dict[str, float] = {}
    bands: list[Band] = []

    def close(kind: str, start: float, end: float) -> None:
        held[kind] = held.get(kind, 0.0) + end - start
        if len(bands) < MAX_BANDS:
            bands.append((kind, start, end - start))

    current: tuple[str, float, float] | None = None
    for kind, at, seconds in db.execute(
            f"SELECT kind, {_unix('at')}, seconds FROM events WHERE seconds IS NOT NULL "
            "ORDER BY kind, at"):  # streamed: one interval held at a time
        if current is not None and kind == current[0] and at <= current[2]:
            current = (kind, current[1], max(current[2], at + seconds))
            continue
        if current is not None:
            close(*current)
        current = (kind, at, at + seconds)
    if current is not None:
        close(*current)
    return held, bands


def _throughput(db: sqlite3.Connection, has_events: bool, merged: list[Band],
                has_sessions: bool = False) -> Throughput:
    # MIN/MAX of the ISO text (all UTC, so it sorts as time), converted once, not per row.
    spans = [f"SELECT {_unix('MIN(updated_at)')} AS lo, {_unix('MAX(updated_at)')} AS hi "
             "FROM rows WHERE status != 'pending'"]
    if has_events:
        spans.append(f"SELECT MIN({_unix('at')}), MAX({_unix('at')} + COALESCE(seconds, 0)) "
                     "FROM events")
    if has_sessions:  # the chart starts at the first start and shows every stop
        spans.append(f"SELECT MIN({_unix('started_at')}), MAX({_unix('ended_at')}) "
                     "FROM sessions")
    lo, hi = db.execute(f"SELECT MIN(lo), MAX(hi) FROM ({' UNION ALL '.join(spans)})").fetchone()
    if lo is None:
        return Throughput()
    width = next((w for w in WIDTHS if (hi - lo) / w < MAX_BUCKETS), WIDTHS[-1])
    # Buckets on whole multiples of the width, so the axis reads 10:00:00, 10:00:10...
    start = int(lo // width * width)
    buckets = int((hi - start) // width) + 1
    seconds = [float(n * width) for n in range(buckets)]
    done, errors, hits = [0.0] * buckets, [0.0] * buckets, [0] * buckets
    fine = ", ".join(f"'{status}'" for status in FINE)
    bucket = "CAST(({0} - ?) / ? AS INTEGER)"
    for n, count, bad in db.execute(
            f"SELECT {bucket.format(_unix('updated_at'))} AS b, COUNT(*), "
            f"SUM(status NOT IN ({fine})) FROM rows WHERE status != 'pending' GROUP BY b",
            (start, width)):
        done[n], errors[n] = count / width, bad / width
    bands: list[tuple[str, float, float]] = []
    if has_events:
        for n, count in db.execute(
                f"SELECT {bucket.format(_unix('at'))} AS b, COUNT(*) FROM events "
                "WHERE kind = '429' GROUP BY b", (start, width)):
            hits[n] = count
        bands = [(kind, round(at - start, 3), round(held, 3)) for kind, at, held in merged
                 if kind != "429"]
    started = db.execute("SELECT datetime(?, 'unixepoch')", (start,)).fetchone()[0]
    return Throughput(f"{started.replace(' ', 'T')}Z", width, seconds, done, errors, hits,
                      bands)


def _samples(db: sqlite3.Connection, name: str) -> list[Change]:
    if '"' in name:
        return []
    where = f'$."{name}"'
    found = db.execute(
        f"SELECT row, record_id, before -> ?, after -> ?, {name_sql(db)} FROM rows "
        "WHERE status = 'ok' AND after -> ? IS NOT NULL ORDER BY row LIMIT ?",
        (where, where, where, SAMPLES_PER_FIELD))
    return [Change(*values) for values in found]


def duplicates(db: sqlite3.Connection) -> tuple[list[tuple[str, int, list[int]]], int]:
    """Record ids more than one row changes (they apply one after another, in file order)."""
    query = ("SELECT record_id, COUNT(*) AS n, MIN(row) AS first FROM rows "
             "WHERE record_id IS NOT NULL GROUP BY record_id HAVING n > 1")
    count = db.execute(f"SELECT COUNT(*) FROM ({query})").fetchone()[0]
    if not count:
        return [], 0
    top = db.execute(f"{query} ORDER BY first LIMIT 10").fetchall()
    first: dict[str, list[int]] = {record_id: [] for record_id, _n, _first in top}
    marks = ", ".join("?" * len(first))
    for row, record_id in db.execute(  # one pass for all of them (record_id has no index)
            f"SELECT row, record_id FROM rows WHERE record_id IN ({marks}) ORDER BY row",
            list(first)):
        if len(first[record_id]) < 5:
            first[record_id].append(row)
    found = [(record_id, rows, first[record_id]) for record_id, rows, _first in top]
    return found, count
