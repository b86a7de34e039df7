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
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bulk.engine.breaker import OutageError
from bulk.engine.clock import Clock, LoopClock
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
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.select_query import SelectError, Selection, cell_text, current_value

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
    requests: int = 0
    elapsed: float = 0.0
    limited: int | None = None  # the --limit that stopped the select before the list's end

    def line(self) -> str:
        rate = self.scanned / self.elapsed if self.elapsed > 0 else 0.0
        stopped = (f" | stopped at --limit {self.limited}; the rest of the list was not read"
                   if self.limited is not None else "")
        return (
            f"selected {self.selected} of {self.scanned} {self.target} scanned{stopped} | "
            f"{self.pages} pages, {self.requests} requests in {self.elapsed:.1f}s "
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
    """Every page in turn, each matching record written as it comes."""
    async with open_api(connection, options, clock, connections=2, one_stream=True) as api:
        client, policy = api.client, api.policy
        with _AtomicOutput(options.output, selection, out_format) as out:
            page = 1
            params = {**selection.api_params(), "per_page": str(PER_PAGE)}
            segments = selection.list_segments()
            target = selection.target
            done = False
            while not done:
                answer = await _retried(policy, clock, lambda n, p=page: client.list_page(
                    target, {**params, "page": str(p)}, attempt=n, segments=segments))
                items, total_pages = _page(answer, "/".join(segments))
                summary.pages += 1
                last = (total_pages is not None and page >= total_pages) or len(items) < PER_PAGE
                for index, item in enumerate(items, 1):
                    summary.scanned += 1
                    record = item = target.view(item)  # a task's assignees at the top
                    if not needed <= item.keys():
                        # A list item without a field we need: read the record itself.
                        summary.reads += 1
                        address = "/".join(filter(None, selection.id_cells(item).values()))
                        record = (await _retried(policy, clock, lambda n, rid=address:
                                                 client.read(target, rid, attempt=n))).data
                    if not isinstance(record, dict) or not selection.matches(record):
                        continue
                    out.write(record)
                    summary.selected += 1
                    if options.limit is not None and summary.selected >= options.limit:
                        done = True
                        if not (last and index == len(items)):  # records were left unread
                            summary.limited = options.limit
                        break
                progress.page(summary, total_pages)
                done = done or last
                page += 1
            out.commit()
        summary.requests = client.requests


async def _retried(policy: RetryPolicy, clock: Clock, call: Any) -> Answer:
    last: RequestError | None = None
    try:
        async for attempt in policy.retrying(clock):
            with attempt:
                try:
                    return await call(attempt.retry_state.attempt_number)
                except RequestError as exc:
                    last = exc
                    raise
    except OutageError as exc:
        # The breaker waited the outage out as long as it may: the list cannot be read
        # to its end now (nothing is written), as its last answer says.
        said = f" (last: {last.describe()})" if last is not None else ""
        down = str(exc).partition(";")[0]  # a select starts over: there is no resuming
        raise SelectFailed(f"{down}{said}") from None
    except HttpError as exc:
        if exc.status == 401:
            raise
        raise SelectFailed(exc.describe()) from None
    except TransportError as exc:
        raise SelectFailed(str(exc)) from None
    raise AssertionError("unreachable: the retry loop returns or raises")


def _page(answer: Answer, path: str) -> tuple[list[dict[str, Any]], int | None]:
    body = answer.data
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and isinstance(item.get("id"), str) for item in items
    ):
        raise SelectFailed(f"the {path} list answer has no data array of records")
    meta = body.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    total_pages = pagination.get("total_pages") if isinstance(pagination, dict) else None
    return items, total_pages if isinstance(total_pages, int) else None


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
            self._csv.writerow(self.selection.header())
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
            self._csv.writerow(row)
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
