"""`bulk undo`: from a job's ledger, an input that puts every changed record back.

The ledger already holds, for every `ok` row, the changed fields as they were before and as
they were written. The undo input sets each field back to its before-value and expects the
after-value (`expect.*`), so a record someone changed since the job is left alone and
reported as `conflict`. Members and groups are undone as deltas of exactly the ids the job
added or removed (`add_users` / `remove_users`, same for groups), never by replacing the list:
someone added since stays, and no list is ever replaced by an empty one. They carry no
expectation, for the same reason (a delta merges with whatever the record holds then).
Kick-off (prerun) values are undone key by key. A field that was empty (null) before is
cleared (`clear`). The undo of an undo is the change again.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bulk.engine.csv_cells import protect
from bulk.engine.errors import ConfigError
from bulk.engine.ledger import CONFLICT, FAILED, IN_DOUBT, OK, Entry, Ledger, open_existing
from bulk.engine.reader import format_of
from bulk.tallyfy.apply_job import DRY_RUN
from bulk.tallyfy.compare import prerun_values
from bulk.tallyfy.select_cells import cell_text
from bulk.tallyfy.targets import (
    CLEAR,
    EXPECT_PREFIX,
    KEYED_FIELDS,
    PRERUN,
    TARGETS,
    TEXT,
    URL,
    Target,
)

#: Which ledger rows an undo takes: every one whose write may have landed, whatever it
#: ended as (`ok`; `in_doubt`; `conflict` or `failed` after a write that landed). Each
#: undo row expects the values written, so one that did not land changes nothing.
UNDOABLE = (OK, IN_DOUBT, CONFLICT, FAILED)


@dataclass
class UndoSummary:
    output: Path
    target: str
    org: str
    rows: int = 0  # undo rows written
    skipped: list[str] = field(default_factory=list)  # one line per row that cannot be undone

    def line(self) -> str:
        skipped = f", {len(self.skipped)} rows cannot be undone" if self.skipped else ""
        return (f"undo: {self.rows} rows to put back ({self.target}){skipped} | wrote {self.output}"
                f" (bulk apply --input {self.output} --target {self.target})")


def job_of(ledger: Ledger) -> tuple[Target, str]:
    """The target and org of a ledger's job; a dry run's ledger is refused."""
    fingerprint = json.loads(ledger.meta().get("fingerprint", "{}"))
    if fingerprint.get("mode") == DRY_RUN:
        raise ConfigError(f"{ledger.path}: the ledger of a dry run wrote nothing; "
                          "there is nothing to undo")
    target = TARGETS.get(fingerprint.get("target", ""))
    if target is None:
        raise ConfigError(f"{ledger.path}: the ledger does not say which target it changed")
    return target, fingerprint.get("org", "")


def write_undo(ledger_path: Path, output: Path, *, statuses: Iterable[str] = UNDOABLE,
               format: str | None = None) -> UndoSummary:
    """Write the undo input for the ledger's rows with these statuses (atomically)."""
    out_format = format or format_of(output)
    if out_format is None:
        raise ConfigError(f"{output.name}: cannot tell the format from the extension "
                          "(use .jsonl or .csv, or --format)")
    with open_existing(ledger_path) as ledger:
        target, org = job_of(ledger)
        summary = UndoSummary(output, target.name, org)
        with _atomic(output) as handle:
            writer = _Writer(handle, target, out_format)
            # Last row first: rows of one record are undone newest first, each expecting
            # what the one after it left (and `bulk apply` keeps that order per record).
            for entry in ledger.entries(tuple(statuses), newest_first=True):
                try:
                    row = undo_row(target, entry)
                except _CannotUndo as exc:
                    summary.skipped.append(f"row {entry.row} ({entry.record_id}): {exc}")
                    continue
                if row is not None:
                    writer.write(entry.row, row)
                    summary.rows += 1
            writer.finish()
    return summary


class _CannotUndo(Exception):
    pass


@dataclass
class UndoRow:
    record_id: str
    set: dict[str, Any] = field(default_factory=dict)  # field -> before-value
    clear: list[str] = field(default_factory=list)  # fields that were null before
    membership: dict[str, list[Any]] = field(default_factory=dict)  # add_users... -> ids
    prerun: dict[str, Any] = field(default_factory=dict)  # timeline_id -> before-value
    expect: dict[str, Any] = field(default_factory=dict)  # field or prerun.<id> -> after


def undo_row(target: Target, entry: Entry) -> UndoRow | None:
    """The row that puts one ledger entry's record back; None when it changed nothing."""
    before, after = entry.before or {}, entry.after or {}
    if not after or not entry.record_id:
        return None
    row = UndoRow(entry.record_id)
    for name, written in after.items():
        was = before.get(name)
        if name in target.membership:
            added, removed = _delta(was or [], written or [], name)
            if added:
                row.membership[f"remove_{name}"] = added
            if removed:
                row.membership[f"add_{name}"] = removed
        elif name in KEYED_FIELDS:
            was_values = prerun_values(was) or {}
            for key, value in (prerun_values(written) or {}).items():
                if key not in was_values:
                    raise _CannotUndo(f"no before-value of {name} field {key}")
                row.prerun[key] = was_values[key]
                row.expect[f"{name}.{key}"] = value
        else:
            spec = target.fields.get(name)
            if spec is None:
                raise _CannotUndo(f"{name} is not a field of {target.name}")
            if was is None:
                if spec.kind not in (TEXT, URL) or spec.non_empty:
                    raise _CannotUndo(f"{name} was empty before and cannot be emptied")
                row.clear.append(name)
            else:
                row.set[name] = was
            row.expect[name] = written
    return row


def _delta(was: list[Any], now: list[Any], name: str) -> tuple[list[Any], list[Any]]:
    """(ids the job added, ids it removed), in their list order."""

    def norm(value: Any) -> str:
        if name == "users" and str(value).isdigit():
            return str(int(value))
        return str(value).lower() if name == "guests" else str(value)

    was_keys, now_keys = {norm(v) for v in was}, {norm(v) for v in now}
    added = [v for v in now if norm(v) not in was_keys]
    removed = [v for v in was if norm(v) not in now_keys]
    return added, removed


class _Writer:
    def __init__(self, handle: TextIO, target: Target, out_format: str) -> None:
        self.handle = handle
        self.target = target
        self.format = out_format
        self.id_column = target.id_column
        self._csv: Any = None
        self._columns: list[str] = []

    def write(self, number: int, row: UndoRow) -> None:
        if self.format == "jsonl":
            self.handle.write(json.dumps(self._object(row), ensure_ascii=False) + "\n")
        else:
            self._write_csv(number, row)

    def finish(self) -> None:
        if self.format == "csv" and self._csv is None:
            self._start_csv()  # no row: still a file with its header

    def _start_csv(self) -> None:
        self._columns = _csv_columns(self.target, self.id_column)
        self._csv = csv.DictWriter(self.handle, self._columns, lineterminator="\n",
                                   extrasaction="raise")
        self._csv.writeheader()

    def _ids(self, record_id: str) -> dict[str, str]:
        parent, _, own = record_id.rpartition("/")
        ids = {self.id_column: own}
        return {self.target.parent_column: parent, **ids} if self.target.parent_column else ids

    def _object(self, row: UndoRow) -> dict[str, Any]:
        out: dict[str, Any] = {**self._ids(row.record_id), **row.set}
        if row.clear:
            out[CLEAR] = row.clear
        out.update(row.membership)
        if row.prerun:
            out[self.target.keyed or PRERUN] = row.prerun
        if row.expect:
            out["expect"] = row.expect
        return out

    def _write_csv(self, number: int, row: UndoRow) -> None:
        # A CSV cell cannot say "empty string" or "expected null" (an empty cell means
        # "unchanged" / "no expectation"): such a row needs JSONL.
        cells: dict[str, str] = self._ids(row.record_id)
        keyed = f"{self.target.keyed or PRERUN}."
        values: dict[str, Any] = {**row.set, **row.membership,
                                  **{keyed + k: v for k, v in row.prerun.items()},
                                  **{EXPECT_PREFIX + k: v for k, v in row.expect.items()}}
        if row.clear:
            values[CLEAR] = ";".join(row.clear)
        for name, value in values.items():
            text = ";".join(map(str, value)) if name.startswith(("add_", "remove_")) \
                else cell_text(value)
            if not text.strip():
                raise ConfigError(f"ledger row {number}: {name} would be an empty CSV cell "
                                  f"(which means 'leave unchanged'); write the undo as .jsonl")
            cells[name] = text
        if self._csv is None:
            self._start_csv()
        missing = [name for name in cells if name not in self._columns]
        if missing:
            raise ConfigError(f"ledger row {number}: a kick-off column {missing[0]} a CSV "
                              "undo cannot hold; write the undo as .jsonl")
        self._csv.writerow({name: protect(text) for name, text in cells.items()})


def _csv_columns(target: Target, id_column: str) -> list[str]:
    plain = [name for name in target.fields
             if name not in target.membership and name not in KEYED_FIELDS]
    parent = [target.parent_column] if target.parent_column else []
    return [*parent, id_column, *plain, CLEAR, *target.delta_columns(),
            *(EXPECT_PREFIX + name for name in plain)]


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[TextIO]:
    """A file that appears at `path`, whole, only if the block finishes."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write here ({exc.strerror})") from None
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


__all__ = ["UNDOABLE", "UndoRow", "UndoSummary", "job_of", "undo_row", "write_undo"]
