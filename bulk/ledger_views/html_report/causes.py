"""Errors grouped by cause: the same status and the same message *shape*.

Two rows fail for the same cause when their messages differ only in the values they
quote (a record id, a number, a quoted cell): `HTTP 404: not found (GET runs/ab12...)`
for a thousand runs is one cause, not a thousand. `bulk status` and `bulk report` show
the same groups, each with a short key that `bulk export --cause KEY` lists in full.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from bulk.ledger_views.names import name_sql, shown_name

#: A column name is part of the cause (`column "owner_id"`), the value quoted is not.
_QUOTED = re.compile(r'(column\s+)?("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')')
#: Ids: 32 hex characters (Tallyfy's record, org and field ids), or UUIDs.
_HEX_ID = re.compile(
    r"\b(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\b"
)
#: A status code after "HTTP" is the cause itself, any other number is a value.
_NUMBER = re.compile(r"(?<!HTTP )\b\d+(?:\.\d+)?\b")
#: Rows with these statuses carry no error worth grouping.
FINE = ("ok", "unchanged")
#: How many rows of each cause to show.
FIRST_ROWS = 5


def shape(message: str | None) -> str:
    """The message with its values replaced: ids by ID, numbers by N, quoted text by "…"."""
    if not message:
        return "(no message)"
    text = _QUOTED.sub(lambda m: m.group(0) if m.group(1) else '"…"', message)
    text = _HEX_ID.sub("ID", text)
    return _NUMBER.sub("N", text)


def cause_key(status: str, http_status: int | None, message: str | None) -> str:
    """A short, stable name for one cause (what `bulk export --cause` takes)."""
    return _key(status, http_status, shape(message))


def _key(status: str, http_status: int | None, shaped: str) -> str:
    text = f"{status}\x1f{http_status or ''}\x1f{shaped}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


@dataclass
class Cause:
    key: str
    status: str
    http_status: int | None
    shape: str
    count: int
    #: (row, record id, the message as recorded) of the first rows with this cause.
    first_rows: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    #: row -> the record's name, for those of the first rows whose read saw one.
    names: dict[int, str] = field(default_factory=dict)

    def export_command(self, ledger: str | Path) -> str:
        """The command that lists every row of this cause."""
        return (f"bulk export {shlex.quote(str(ledger))} --status {self.status} "
                f"--cause {self.key}")

    @property
    def shown(self) -> str:
        """The cause as people read it: its shape, or, for a cause of one row, the
        message itself (its value is then the whole story, nothing to hide)."""
        if self.count == 1 and self.first_rows and self.first_rows[0][2]:
            return self.first_rows[0][2]
        return self.shape

    @property
    def advice(self) -> str:
        """What to do about these rows, in a few words."""
        return advice(self.status, self.http_status)

    def next_commands(self, ledger: str | Path, target: str | None) -> list[str]:
        """The exact commands for just these rows: write them to a CSV file (a valid
        input), then, where doing them again can help, apply that file."""
        out = f"{self.status}-{self.key}.csv"
        commands = [f"{self.export_command(ledger)} --format csv -o {out}"]
        if self.status in ("invalid", "failed") and self.http_status not in (404, 401, 403):
            commands.append(f"bulk apply --input {out} --target {target or 'runs'}")
        return commands

    @property
    def fix_first(self) -> bool:
        """The rows must be corrected in the exported file before applying it."""
        return _to_fix(self.status, self.http_status)


@dataclass
class Causes:
    groups: list[Cause]  # the largest first, at most `limit`
    total_groups: int
    total_rows: int


def group_causes(db: sqlite3.Connection, limit: int = 10) -> Causes:
    """Errors grouped by cause, largest first: aggregated in SQL, rows never all loaded."""
    db.create_function("bulk_shape", 1, shape, deterministic=True)
    statuses = [status for (status,) in db.execute("SELECT DISTINCT status FROM rows")
                if status not in FINE]
    if not statuses:
        return Causes([], 0, 0)
    where = f"status IN ({', '.join('?' * len(statuses))})"
    grouped = db.execute(
        f"SELECT status, http_status, bulk_shape(error) AS cause, COUNT(*) AS n, MIN(row) "
        f"FROM rows WHERE {where} GROUP BY status, http_status, cause "
        f"ORDER BY n DESC, MIN(row)", statuses,
    )
    groups: list[Cause] = []
    total_groups = total_rows = 0
    for status, http_status, cause, count, _first in grouped:
        total_groups += 1
        total_rows += count
        if len(groups) < limit:
            groups.append(Cause(_key(status, http_status, cause), status, http_status, cause,
                                count))
    _first_rows(db, where, statuses, groups)
    return Causes(groups, total_groups, total_rows)


def _first_rows(db: sqlite3.Connection, where: str, statuses: list[str],
                groups: list[Cause]) -> None:
    # One streamed pass in row order, stopping once every group shown has its rows.
    by_key = {(group.status, group.http_status, group.shape): group for group in groups}
    wanting = {key for key, group in by_key.items() if group.count > 0}
    cursor = db.execute(
        f"SELECT row, record_id, status, http_status, error, {name_sql(db)} FROM rows "
        f"WHERE {where} ORDER BY row", statuses,
    )
    for row, record_id, status, http_status, error, name in cursor:
        if not wanting:
            break
        key = (status, http_status, shape(error))
        group = by_key.get(key)
        if group is None or key not in wanting:
            continue
        group.first_rows.append((row, record_id, error))
        if name:
            group.names[row] = name
        if len(group.first_rows) >= min(FIRST_ROWS, group.count):
            wanting.discard(key)


def _to_fix(status: str, http_status: int | None) -> bool:
    """The row itself is wrong (a cell, a value the API refuses): doing it again as it is
    would fail again."""
    return status == "invalid" or (http_status is not None and 400 <= http_status < 500
                                   and http_status != 429)


def advice(status: str, http_status: int | None) -> str:
    """What a person does about rows of this status and answer (one rule per case)."""
    if status == "conflict":
        return ("the record changed after it was read (someone edited it): select again "
                "to start from what it holds now")
    if status == "in_doubt":
        return ("a write may have landed without an answer: run the same command again; it "
                "reads the record and settles the row")
    if status == "pending":
        return "not done yet: run the same command again to finish"
    if status == "invalid":
        return "the row itself is wrong (the message names the column): fix it and apply it"
    if http_status == 404:
        return ("the record is gone (deleted, archived, or a wrong id): drop these rows, "
                "or select again")
    if http_status in (401, 403):
        return ("the token may not change these records: get the access, then run the same "
                "command again with --retry-failed")
    if _to_fix(status, http_status):
        return "the API refused the value: fix it in these rows and apply them"
    return ("the API did not answer in time (busy or down): run the same command again; "
            "these rows are tried again")


def cause_lines(causes: Causes, ledger: str | Path, target: str | None = None) -> list[str]:
    """The groups as `bulk status` prints them, each with what to do and the commands."""
    if not causes.groups:
        return []
    lines = [f"errors by cause: {causes.total_rows} rows, {causes.total_groups} "
             f"cause{'s' if causes.total_groups != 1 else ''}"]
    for cause in causes.groups:
        rows = ", ".join(" ".join(filter(None, (str(row), shown_name(cause.names.get(row)))))
                         for row, _id, _error in cause.first_rows)
        more = ", …" if cause.count > len(cause.first_rows) else ""
        row_word = "row" if cause.count == 1 else "rows"
        lines.append(f"  {cause.count:>7}  {cause.status}  {cause.shown}")
        lines.append(f"           {row_word} {rows}{more}")
        lines.append(f"           what to do: {cause.advice}")
        first, *then = cause.next_commands(ledger, target)
        lines.append(f"             {first}")
        for command in then:
            fix = "   (once the rows in it are fixed)" if cause.fix_first else ""
            lines.append(f"             {command}{fix}")
    hidden = causes.total_groups - len(causes.groups)
    if hidden:
        lines.append(f"  and {hidden} more cause{'s' if hidden != 1 else ''} "
                     f"(bulk report shows the largest; bulk export lists every row)")
    return lines
