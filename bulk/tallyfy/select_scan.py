"""`bulk select` as a library call: page through a list, filter locally, write an input file.

Requests go through the same pacer, retry policy, 429 handling and connection rules as
`bulk apply`. One page (100 records) is held at a time and each matching record is written
as soon as it is seen, so memory does not grow with the number of records. The output is
written to a temporary file beside FILE and renamed over it only at the end: an interrupted or
failed select leaves no half file that could be mistaken for a whole one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bulk.engine.breaker import OutageError
from bulk.engine.clock import Clock, LoopClock
from bulk.engine.csv_cells import protect
from bulk.engine.errors import (
    BadValue,
    ConfigError,
    HttpError,
    RequestError,
    SelectFailed,
    TransportError,
)
from bulk.engine.http import Answer
from bulk.engine.reader import format_of
from bulk.engine.retry import RetryPolicy
from bulk.tallyfy.api import Pacing, open_api
from bulk.tallyfy.client import TallyfyClient
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.select_cells import cell_text, current_value
from bulk.tallyfy.select_query import SelectError, Selection

#: The list API's largest page (the server caps per_page at 100).
PER_PAGE = 100


@dataclass(kw_only=True)
class SelectOptions(Pacing):
    """What `bulk select` writes; how fast and how patiently is its `Pacing`."""

    output: Path
    format: str | None = None  # from the output's extension when None
    limit: int | None = None

    def output_format(self) -> str:
        if self.format is not None:
            return self.format
        found = format_of(self.output)
        if found is None:
            raise ConfigError(
                f"{self.output.name}: cannot tell the format from the extension "
                "(use .csv or .jsonl, or --format)"
            )
        return found


@dataclass
class SelectSummary:
    output: Path
    target: str
    scanned: int = 0  # records the list returned
    selected: int = 0  # records written
    pages: int = 0
    reads: int = 0  # single-record reads for list items that lacked a needed field
    scans: int = 1  # walks through the list (more than one: it moved while paged)
    requests: int = 0
    elapsed: float = 0.0
    limited: int | None = None  # the --limit that stopped the select before the list's end

    def line(self) -> str:
        rate = self.scanned / self.elapsed if self.elapsed > 0 else 0.0
        stopped = (f" | stopped at --limit {self.limited}; the rest of the list was not read"
                   if self.limited is not None else "")
        rescans = (f" in {self.scans} scans (the list moved while paged)"
                   if self.scans > 1 else "")
        return (
            f"selected {self.selected} of {self.scanned} {self.target} scanned{stopped} | "
            f"{self.pages} pages{rescans}, {self.requests} requests in {self.elapsed:.1f}s "
            f"({rate:.0f} records/s) | wrote {self.output}"
        )


class Progress:
    """One line on a terminal, rewritten per page; nothing on a pipe or with --quiet."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def page(self, summary: SelectSummary, total_pages: int | None) -> None:
        if self._stream is not None:
            of = f"/{total_pages}" if total_pages else ""
            self._stream.write(f"\rselect: page {summary.pages}{of}, {summary.selected} "
                               f"selected of {summary.scanned} scanned")
            self._stream.flush()

    def close(self) -> None:
        # The line is wiped, not left behind: "page 15/30" would read as if the select had
        # stopped short; the summary line that follows says how it ended.
        if self._stream is not None:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


async def select(
    selection: Selection,
    options: SelectOptions,
    connection: Connection,
    *,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> SelectSummary:
    """Run the select; the output file exists, whole, only when this returns.

    Raises SelectFailed, AuthError (a 401), SelectError (a --set value a record cannot
    take), all one line; nothing is written then.
    """
    clock = clock or LoopClock()
    out_format = options.output_format()
    progress = progress or Progress(None)
    summary = SelectSummary(options.output, selection.target.name)
    started = time.monotonic()
    needed = selection.needed()
    try:
        await _pages(selection, options, connection, clock=clock,
                     out_format=out_format, needed=needed, summary=summary, progress=progress)
    finally:
        progress.close()
    summary.elapsed = time.monotonic() - started
    return summary


async def _pages(selection: Selection, options: SelectOptions, connection: Connection, *,
                 clock: Clock, out_format: str, needed: set[str], summary: SelectSummary,
                 progress: Progress) -> None:
    """Scan the list until one whole scan saw it hold still; each match written once."""
    async with open_api(connection, options, clock, connections=2, one_stream=True) as api:
        client = api.client
        with _AtomicOutput(options.output, selection, out_format) as out, _Seen() as seen:
            scan = _Scan(selection, options, client, clock, out, seen, needed, summary,
                         progress)
            moved = None
            for number in range(1, MAX_SCANS + 1):
                summary.scans = number
                moved = await scan.run(number)
                if moved is None:
                    break
            else:
                raise SelectFailed(
                    f"the list changed while it was paged, {MAX_SCANS} scans in a row "
                    f"(last: {moved}), so some record may be missed; run it again")
            out.commit()
        summary.requests = client.requests


#: Scans of the list at most: a list that moves during each of them is given up on.
MAX_SCANS = 3


class _Seen:
    """Ids met in each scan and ids written, in a temporary SQLite file (flat memory)."""

    def __enter__(self) -> _Seen:
        self._db = sqlite3.connect("")  # "": a private temporary file, gone on close
        self._db.executescript(
            "CREATE TABLE met (scan INTEGER, id TEXT, PRIMARY KEY (scan, id));"
            "CREATE TABLE written (id TEXT PRIMARY KEY);")
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()

    def first_in_scan(self, scan: int, record_id: str) -> bool:
        try:
            self._db.execute("INSERT INTO met VALUES (?, ?)", (scan, record_id))
        except sqlite3.IntegrityError:
            return False
        return True

    def written(self, record_id: str) -> bool:
        found = self._db.execute("SELECT 1 FROM written WHERE id = ?", (record_id,))
        return found.fetchone() is not None

    def mark_written(self, record_id: str) -> None:
        self._db.execute("INSERT INTO written VALUES (?)", (record_id,))


class _Scan:
    """One walk through the pages. Pages are numbered, so a record edited meanwhile can
    move between them: a record on two pages, a `total` that changes, or a count at the
    end other than `total` says so, and the caller scans again. `total_pages` is not
    trusted (it may follow another page size): pages are walked until a short or empty
    one."""

    def __init__(self, selection: Selection, options: SelectOptions, client: TallyfyClient,
                 clock: Clock, out: _AtomicOutput, seen: _Seen, needed: set[str],
                 summary: SelectSummary, progress: Progress) -> None:
        self.selection, self.options, self.client, self.clock = selection, options, client, clock
        self.out, self.seen, self.needed = out, seen, needed
        self.summary, self.progress = summary, progress

    async def run(self, number: int) -> str | None:
        """Walk the pages once; what moved, or None when the list held still."""
        selection, summary, policy = self.selection, self.summary, self.options.policy
        params = {**selection.api_params(), "per_page": str(PER_PAGE)}
        segments = selection.list_segments()
        target = selection.target
        total: int | None = None
        page_size: int | None = None
        moved: str | None = None
        count = 0
        page = 1
        while True:
            answer = await _retried(policy, self.clock, lambda n, p=page: self.client.list_page(
                target, {**params, "page": str(p)}, attempt=n, segments=segments))
            items, counted, size = _page(answer, "/".join(segments))
            summary.pages += 1
            if total is None:
                total = counted
            elif counted is not None and counted != total and moved is None:
                moved = f"its total went from {total} to {counted}"
            page_size = page_size or size or len(items) or PER_PAGE
            new = 0
            for index, item in enumerate(items, 1):
                record_id = item["id"]
                if not self.seen.first_in_scan(number, record_id):
                    moved = moved or f"record {record_id} came on two pages"
                    continue
                new += 1
                count += 1
                if await self._take(item):
                    # --limit reached: a part was asked for, not the whole; said when records
                    # were left unread.
                    end_of_list = index == len(items) and (
                        len(items) < page_size or (total is not None and count >= total))
                    if not end_of_list:
                        summary.limited = self.options.limit
                    summary.scanned = max(summary.scanned, count)
                    self.progress.page(summary, math.ceil(total / page_size) if total else None)
                    return None
            summary.scanned = max(summary.scanned, count)
            shown = math.ceil(total / page_size) if total else None
            self.progress.page(summary, shown)
            if len(items) < page_size or not new:
                break  # the last page (short or empty), or one that only repeats
            if total is not None and count >= total and moved is None:
                break  # every record it counts has come: no need to ask for an empty page
            page += 1
        if moved is None and total is not None and count != total:
            moved = f"{count} records came of the {total} it counted"
        return moved

    async def _take(self, item: dict[str, Any]) -> bool:
        """Write the record if it matches and is not written yet; True at the limit."""
        selection, summary, target = self.selection, self.summary, self.selection.target
        record = item = target.view(item)  # a task's assignees at the top
        if self.seen.written(str(item["id"])):
            return False
        if not self.needed <= item.keys():
            # A list item without a field we need: read the record itself.
            summary.reads += 1
            address = "/".join(filter(None, selection.id_cells(item).values()))
            record = (await _retried(self.options.policy, self.clock, lambda n, rid=address:
                                     self.client.read(target, rid, attempt=n))).data
        if not isinstance(record, dict) or not selection.matches(record):
            return False
        self.out.write(record)
        self.seen.mark_written(str(item["id"]))
        summary.selected += 1
        return self.options.limit is not None and summary.selected >= self.options.limit


async def _retried(policy: RetryPolicy, clock: Clock, call: Any) -> Answer:
    last: RequestError | None = None

    async def attempt(number: int) -> Answer:
        nonlocal last
        try:
            return await call(number)
        except RequestError as exc:
            last = exc
            raise

    try:
        return await policy.run(clock, attempt)
    except OutageError as exc:
        # The breaker waited the outage out as long as it may: the list cannot be read
        # to its end now (nothing is written), as its last answer says.
        said = f" (last: {last.describe()})" if last is not None else ""
        # A select starts over: there is no resuming.
        raise SelectFailed(f"{exc.outage}{said}") from None
    except HttpError as exc:
        if exc.status == 401:
            raise
        raise SelectFailed(exc.describe()) from None
    except TransportError as exc:
        raise SelectFailed(str(exc)) from None


def _page(answer: Answer, path: str) -> tuple[list[dict[str, Any]], int | None, int | None]:
    """A page's records, the list's `total` and the page size the server used (if said)."""
    body = answer.data
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and isinstance(item.get("id"), str) for item in items
    ):
        raise SelectFailed(f"the {path} list answer has no data array of records")
    meta = body.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    if not isinstance(pagination, dict):
        return items, None, None
    total, size = pagination.get("total"), pagination.get("per_page")
    return (items, total if isinstance(total, int) and not isinstance(total, bool) else None,
            size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None)


class _AtomicOutput:
    """Rows to a temporary file in FILE's folder; renamed over FILE by commit() only."""

    def __init__(self, path: Path, selection: Selection, out_format: str) -> None:
        self.path = path
        self.selection = selection
        self.format = out_format
        self._committed = False

    def __enter__(self) -> _AtomicOutput:
        folder = self.path.parent if str(self.path.parent) else Path(".")
        try:
            handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part",
                                            dir=folder)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write here ({exc.strerror})") from None
        self._temp = Path(name)
        self._file = os.fdopen(handle, "w", encoding="utf-8", newline="")
        if self.format == "csv":
            self._csv = csv.writer(self._file, lineterminator="\n")
            self._csv.writerow([protect(name) for name in self.selection.header()])
        return self

    def write(self, record: dict[str, Any]) -> None:
        selection = self.selection
        record_id = record["id"]
        cells: dict[str, Any] = selection.id_cells(record)
        cells.update(selection.ref_cells(record, typed=self.format != "csv"))
        for column in selection.sets:
            try:
                text, typed = column.value(record)
            except BadValue as exc:
                raise SelectError(
                    f"--set {column.column}: record {record_id}: {exc}; nothing written"
                ) from None
            cells[column.column] = text if self.format == "csv" else typed
        expect = {key: current_value(record, key) for key in selection.expect_keys()}
        if self.format == "csv":
            ids = [cells[name] for name in selection.id_cells(record)]
            row = [*ids, cells[selection.ref_column], *(cells[s.column] for s in selection.sets),
                   *(cell_text(value) for value in expect.values())]
            # No cell runs as a formula in a spreadsheet; apply reads it back exactly.
            self._csv.writerow([protect(str(cell)) for cell in row])
        else:
            if expect:
                cells["expect"] = expect
            self._file.write(json.dumps(cells, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        self._file.close()
        os.replace(self._temp, self.path)
        self._committed = True

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            self._file.close()
            self._temp.unlink(missing_ok=True)


__all__ = ["Progress", "SelectOptions", "SelectSummary", "select"]
