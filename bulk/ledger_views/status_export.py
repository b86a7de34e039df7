"""`bulk status` and `bulk export`: reading a ledger back for people and for re-runs."""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bulk.engine.csv_cells import protect
from bulk.engine.errors import ConfigError
from bulk.engine.ledger import STATUSES, Entry, Ledger
from bulk.ledger_views.history import History, duration, read_history, utc

if TYPE_CHECKING:
    from bulk.ledger_views.html_report.causes import Causes

#: The columns every export row has. A CSV export also carries the row's own input
#: columns, so that `bulk export --status failed --format csv` is a valid input again.
EXPORT_KEYS = (
    "row", "id", "status", "http_status", "attempts", "error", "request_id", "before", "after",
)
#: Columns an apply ignores, but only in a file that has all of them (a bulk export):
#: a lone `status` column in a hand-made file is still refused as unknown.
REPORT_COLUMNS = frozenset(EXPORT_KEYS) - {"id"}
ID_ALIASES = ("id", "run_id", "checklist_id", "template_id")


def status_lines(ledger: Ledger) -> Iterator[str]:
    meta = ledger.meta()
    counts = ledger.counts()
    total = int(meta.get("rows") or 0)
    fingerprint = json.loads(meta.get("fingerprint", "{}"))
    yield f"ledger:   {ledger.path}"
    yield f"input:    {meta.get('input', '?')} (sha256 {fingerprint.get('input_sha256', '?')})"
    yield f"target:   {fingerprint.get('target', '?')}    org: {fingerprint.get('org', '?')}"
    history, causes, trouble = _read_more(ledger, meta)
    yield from _history_lines(history)
    recorded = sum(counts.values())
    yield f"rows:     {total} in input, {recorded} recorded"
    for status in STATUSES:
        yield f"  {status:<10} {counts[status]}"
    if total > recorded:
        yield f"  {'not yet':<10} {total - recorded}"
    if trouble:
        yield f"errors by cause: not available ({trouble})"
    elif causes is not None:
        from bulk.ledger_views.html_report.causes import cause_lines

        yield from cause_lines(causes, ledger.path, fingerprint.get("target"))


def _history_lines(history: History) -> Iterator[str]:
    """First start, each stop and resume, the end, total and active time."""
    runs = history.runs
    yield f"started:  {utc(history.first_start)}"
    for number, run in enumerate(runs, 1):
        if number > 1:
            yield f"resumed:  {utc(run.started_at)}"
        if run.ended_at is None:
            if number == len(runs):
                yield ("ended:    - (running now, or stopped by a crash: run the same command "
                       "to resume)")
            continue
        if run.how == "finished":
            yield f"ended:    {utc(run.ended_at)} (finished)"
            continue
        detail = f": {run.detail}" if run.detail else ""
        yield f"stopped:  {utc(run.ended_at)} ({run.how}{detail})"
        if number == len(runs):
            yield f"          to finish: {run.next_step}"
    if history.last_end:
        yield (f"time:     {duration(history.total_seconds)} in all, "
               f"{duration(history.active_seconds)} running "
               f"({len(runs)} run{'s' if len(runs) != 1 else ''})")


def _read_more(ledger: Ledger, meta: dict[str, str]) -> tuple[History, Causes | None, str]:
    """The job's runs and its errors by cause (the same groups as `bulk report`)."""
    from bulk.ledger_views.html_report.causes import group_causes
    from bulk.ledger_views.html_report.facts import open_readonly

    try:
        db = open_readonly(ledger.path)
    except ConfigError as exc:  # the counts stand; say why the causes do not
        return read_history(None, meta), None, str(exc)
    try:
        return read_history(db, meta), group_causes(db), ""
    finally:
        db.close()


def status_json(ledger: Ledger) -> dict[str, Any]:
    """What `bulk status --json` prints: the same facts as its lines, for scripts."""
    meta = ledger.meta()
    counts = ledger.counts()
    total = int(meta.get("rows") or 0)
    fingerprint = json.loads(meta.get("fingerprint", "{}"))
    history, causes, trouble = _read_more(ledger, meta)
    target = fingerprint.get("target")
    found: dict[str, Any] = {
        "ledger": str(ledger.path), "input": meta.get("input"),
        "input_sha256": fingerprint.get("input_sha256"), "target": target,
        "org": fingerprint.get("org"), "dry_run": fingerprint.get("mode") == "dry-run",
        "outcome": meta.get("outcome"), **history.as_dict(),
        "rows": total, "recorded": sum(counts.values()), "counts": counts,
        "not_yet": max(0, total - sum(counts.values())),
    }
    if causes is not None:
        found["causes"] = [{
            "key": cause.key, "status": cause.status, "http_status": cause.http_status,
            "cause": cause.shown, "rows": cause.count,
            "first_rows": [row for row, _id, _error in cause.first_rows],
            "what_to_do": cause.advice, "commands": cause.next_commands(ledger.path, target),
        } for cause in causes.groups]
        found["causes_total"] = causes.total_groups
    else:
        found["causes_error"] = trouble
    return found


def _export_record(entry: Entry) -> dict[str, Any]:
    return {
        "row": entry.row,
        "id": entry.record_id,
        "status": entry.status,
        "http_status": entry.http_status,
        "attempts": entry.attempts,
        "error": entry.error,
        "request_id": entry.request_id,
        "before": entry.before,
        "after": entry.after,
        "started_at": entry.started_at,
        "updated_at": entry.updated_at,
    }


def _selected(ledger: Ledger, status: str | None, cause: str | None) -> Iterator[Entry]:
    """The entries to export; `cause` is a key `bulk status` or `bulk report` showed."""
    if cause is None:
        yield from ledger.entries(status)
        return
    from bulk.ledger_views.html_report.causes import cause_key

    for entry in ledger.entries(status):
        if cause_key(entry.status, entry.http_status, entry.error) == cause:
            yield entry


def export_jsonl(ledger: Ledger, out: TextIO, status: str | None = None,
                 cause: str | None = None) -> int:
    count = 0
    for entry in _selected(ledger, status, cause):
        out.write(json.dumps(_export_record(entry), ensure_ascii=False) + "\n")
        count += 1
    return count


def export_csv(ledger: Ledger, out: TextIO, status: str | None = None,
               cause: str | None = None) -> int:
    # A first pass finds the input columns the exported rows had (streamed, not held).
    extra: dict[str, None] = {}
    for entry in _selected(ledger, status, cause):
        for key in entry.input or {}:
            if key not in ID_ALIASES and key not in REPORT_COLUMNS:
                extra[key] = None
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*EXPORT_KEYS, *extra])
    count = 0
    for entry in _selected(ledger, status, cause):
        record = _export_record(entry)
        cells = [_cell(record[key]) for key in EXPORT_KEYS]
        given = entry.input or {}
        cells += [_cell(given.get(key)) for key in extra]
        writer.writerow([protect(cell) if isinstance(cell, str) else cell for cell in cells])
        count += 1
    return count


def export_to(
    ledger: Ledger, destination: str, out_format: str, status: str | None, *, stdout: TextIO,
    cause: str | None = None,
) -> int:
    """Write an export to the file `destination` ("-": `stdout`); returns the rows written.

    A device that fills up (ENOSPC on a write or on the close) or any other write error
    is one line, a ConfigError naming the destination, never a traceback.
    """
    write = export_csv if out_format == "csv" else export_jsonl
    name = "standard output" if destination == "-" else destination
    if destination != "-" and _is_the_ledger(destination, ledger.path):
        raise ConfigError(f"{destination}: is the ledger itself (or one of its files); "
                          "refusing to write the export over it")
    opened = False
    try:
        if destination == "-":
            count = write(ledger, stdout, status, cause)
            stdout.flush()  # a full device shows itself here, not at the exit
            return count
        with open(destination, "w", encoding="utf-8") as out:
            opened = True
            return write(ledger, out, status, cause)
    except OSError as exc:
        incomplete = "; what was written of it is incomplete" if opened else ""
        raise ConfigError(
            f"{name}: cannot write the export ({exc.strerror or exc}){incomplete}"
        ) from None


def _is_the_ledger(destination: str, ledger: Path) -> bool:
    for part in (ledger, *(Path(f"{ledger}{suffix}") for suffix in ("-wal", "-shm", ".lock"))):
        with contextlib.suppress(OSError):
            if os.path.samefile(destination, part):
                return True
    return False


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
