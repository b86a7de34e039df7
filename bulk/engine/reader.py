"""Streaming reader for the job's input file (CSV or JSONL); knows nothing of Tallyfy.

Two passes over the file, both streaming: ``scan()`` checks the file as a whole (header,
encoding, quoting), counts the rows and hashes the bytes for the job's fingerprint, so that a
file-level problem stops the job before any request; ``rows()`` then yields the rows one by one.
Neither keeps more than one row in memory.

Problems with one row (a ragged CSV line, a JSONL line that is not an object) do not stop the
file: the row comes out with ``error`` set and the job records it as invalid. Problems that make
the row boundaries or the text itself uncertain (bad UTF-8, broken quoting) stop the file.
Opening, encoding sniffing and noticing a file that changes while read are in watched_file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bulk.engine.csv_cells import unprotect
from bulk.engine.errors import InputError
from bulk.engine.watched_file import FileIdentity, WatchedRaw, check_same_file, open_regular

FORMATS = ("csv", "jsonl")
#: File extension -> format, for input files and for the files select and undo write.
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_FORMAT_ALIASES = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}
# Large reads keep the per-byte cost of Python-level I/O negligible on million-row files while
# staying far below any memory concern.
_BUFFER = 1 << 20
#: The longest JSONL line read (in characters, its line break included): a longer one is an
#: invalid row, skipped without ever being held whole in memory.
MAX_LINE = 10_000_000
#: The deepest nesting of arrays and objects accepted in a JSON value. Tallyfy's own values
#: nest a few levels; far deeper ones could not even be written back to the ledger, since
#: Python's JSON encoder recurses once per level.
MAX_JSON_DEPTH = 100


@dataclass(frozen=True, slots=True)
class RawRow:
    """One data row as read, before any typing."""

    number: int  # 1-based; CSV: header and blank lines not counted; JSONL: blank lines not counted
    values: dict[str, Any]  # CSV: column -> cell text; JSONL: key -> JSON value as parsed
    error: str | None = None  # the row cannot be used; names file and row; values is then {}


@dataclass(frozen=True)
class InputSummary:
    path: Path
    format: str  # "csv" | "jsonl"
    sha256: str  # of the file's bytes
    rows: int  # what rows() yields
    columns: tuple[str, ...]  # CSV: the header; JSONL: every key seen, in first-seen order


class InputFile:
    """The job's input file. Messages name it by its base name (``InputFile.name``)."""

    def __init__(self, path: str | Path, format: str | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name or str(path)
        self.format = _pick_format(self.path, self.name, format)
        # The file as scan() found it: rows() refuses to read anything else.
        self._checked: tuple[FileIdentity, str] | None = None

    def scan(self) -> InputSummary:
        """Check the whole file, count its rows and hash it, in one streaming pass.

        Raises InputError (one line, naming the file) when the file cannot be used at all.
        """
        digest = hashlib.sha256()
        raw, identity = open_regular(self.path, self.name)  # closed with the wrapper below
        # The hash is taken from the very bytes the parser reads, so one pass does both.
        watched = WatchedRaw(raw, digest, self.name, identity, checking=True)
        buffered = io.BufferedReader(watched, buffer_size=_BUFFER)
        with self._text(buffered) as text, self._failures() as state:
            if self.format == "csv":
                columns, count = self._scan_csv(text, state)
            else:
                columns, count = self._scan_jsonl(text)
        if count == 0:
            if self.format == "csv":
                raise InputError(f"{self.name}: has a header row but no data rows")
            raise InputError(f"{self.name}: has no rows (no JSON object lines)")
        self._checked = (identity, digest.hexdigest())
        return InputSummary(self.path, self.format, digest.hexdigest(), count, columns)

    def rows(self) -> Iterator[RawRow]:
        """Yield every data row in file order, numbered as scan() counts them.

        The file is opened on the first next() and closed when the iterator ends or is closed.
        After scan(), it must be the file scan() checked: if it was replaced or edited since,
        or is edited while it is read, InputError stops the rows before any row read after
        the change.
        """
        if self.format == "csv":
            return self._csv_rows()
        return self._jsonl_rows()

    # -- CSV ---------------------------------------------------------------------------------
    # scan and rows keep separate tight loops (one per row, no generator layers in between):
    # both run over every row of million-row files, on every resume too.

    def _scan_csv(self, text: io.TextIOWrapper, state: _State) -> tuple[tuple[str, ...], int]:
        reader = state.reader = csv.reader(text, strict=True)
        header = self._csv_header(reader)
        count = 0
        for record in reader:
            if len(record) < 2 and _blank(record):
                continue
            count += 1
        return header, count

    def _csv_rows(self) -> Iterator[RawRow]:
        with self._open_text() as text, self._failures() as state:
            reader = state.reader = csv.reader(text, strict=True)
            header = self._csv_header(reader)
            width = len(header)
            number = 0
            # A record's first line is one past where the previous one ended; tracking it costs
            # one attribute read per row and lets a message point at the line an editor shows.
            end = reader.line_num
            for record in reader:
                start, end = end + 1, reader.line_num
                # Blank lines (often a trailing one) are skipped, not flagged: they carry nothing.
                if len(record) < 2 and _blank(record):
                    continue
                number += 1
                if len(record) == width:
                    # Lengths are equal, so strict zip would only cost time.
                    if any(cell.startswith("'") for cell in record):  # see csv_cells.py
                        record = [unprotect(cell) for cell in record]
                    yield RawRow(number, dict(zip(header, record, strict=False)))
                else:
                    yield RawRow(
                        number,
                        {},
                        f"{self.name}: row {number} (line {start}): {_cells(len(record))} "
                        f"where the header has {width}",
                    )

    def _csv_header(self, reader: Any) -> tuple[str, ...]:
        for record in reader:
            if not _blank(record):
                names = tuple(name.strip() for name in record)
                _check_header(self.name, names)
                return names
        raise InputError(f"{self.name}: is empty (no header row)")

    # -- JSONL -------------------------------------------------------------------------------

    def _scan_jsonl(self, text: io.TextIOWrapper) -> tuple[tuple[str, ...], int]:
        seen: dict[str, None] = {}
        count = 0
        for _line, value in _jsonl_lines(text, deep=False):
            count += 1
            if isinstance(value, dict) and not seen.keys() >= value.keys():
                seen.update(dict.fromkeys(value))
        return tuple(seen), count

    def _jsonl_rows(self) -> Iterator[RawRow]:
        with self._open_text() as text, self._failures():
            number = 0
            for line, value in _jsonl_lines(text, deep=True):
                number += 1
                if isinstance(value, dict):
                    yield RawRow(number, value)
                    continue
                where = f"{self.name}: row {number} (line {line})"
                if isinstance(value, _BadJson):
                    yield RawRow(number, {}, f"{where}: {value.message}")
                else:
                    kind = _json_kind(value)
                    yield RawRow(number, {}, f"{where}: expected a JSON object, got {kind}")

    # -- shared ------------------------------------------------------------------------------

    def _open_text(self) -> io.TextIOWrapper:
        raw, identity = open_regular(self.path, self.name)
        expected_sha256 = None
        if self._checked is not None:
            checked, expected_sha256 = self._checked
            try:
                check_same_file(self.name, identity, checked)
            except InputError:
                raw.close()
                raise
        watched = WatchedRaw(raw, hashlib.sha256(), self.name, identity, expected_sha256)
        return self._text(io.BufferedReader(watched, buffer_size=_BUFFER))

    def _text(self, binary: io.BufferedIOBase) -> io.TextIOWrapper:
        # utf-8-sig drops a leading BOM (Excel writes one); CSV needs newline="" so that line
        # breaks inside quoted cells reach the csv module intact; JSONL splits on "\n" only,
        # since a stray "\r" is JSON whitespace, not a line break.
        newline = "" if self.format == "csv" else "\n"
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline=newline)
        text._CHUNK_SIZE = 1 << 16  # type: ignore[attr-defined]  # fewer, larger decode calls
        return text

    @contextmanager
    def _failures(self) -> Iterator[_State]:
        """Turn decoding, quoting and I/O failures met while reading into one-line InputErrors."""
        state = _State()
        try:
            yield state
        except UnicodeDecodeError:
            raise InputError(_describe_bad_utf8(self.path, self.name)) from None
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise InputError(self._oversized_cell()) from None
            line = state.reader.line_num if state.reader is not None else "?"
            raise InputError(
                f"{self.name}: line {line}: broken CSV quoting ({exc}); "
                "the row boundaries cannot be trusted, fix the file"
            ) from None
        except OSError as exc:
            raise self._os_error(exc) from None

    def _oversized_cell(self) -> str:
        """Say which record holds a cell over the csv module's limit; run once, on the way out.

        The limit also bounds what an unclosed quote can swallow, so it is kept, and the
        message names that likelier cause along with the record where the cell starts.
        """
        limit = csv.field_size_limit()
        where = "a row"
        try:
            raw, _identity = open_regular(self.path, self.name)
            with self._text(io.BufferedReader(raw, buffer_size=_BUFFER)) as text:
                where = _locate_csv_failure(csv.reader(text, strict=True))
        except (InputError, OSError, UnicodeDecodeError):
            pass
        return (
            f"{self.name}: {where}: a cell is longer than {limit:,} characters, the most a "
            "CSV cell may hold; most often a quote (\") opened there and never closed, which "
            "runs the cell on over the lines after it; fix the file"
        )

    def _os_error(self, exc: OSError) -> InputError:
        reason = exc.strerror or exc.__class__.__name__
        return InputError(f"{self.name}: cannot read the file: {reason}")


class _State:
    __slots__ = ("reader",)

    def __init__(self) -> None:
        self.reader: Any = None


def _jsonl_lines(text: io.TextIOWrapper, *, deep: bool) -> Iterator[tuple[int, Any]]:
    """Yield (physical line, parsed value or _BadJson) for every non-blank line.

    ``deep``: also refuse values nested deeper than MAX_JSON_DEPTH (rows() needs it; a scan
    only counts lines).
    """
    decode = _DECODER.decode
    limit = MAX_LINE
    # A value cannot nest deeper than the line is long: shorter lines skip the depth check.
    deep_from = MAX_JSON_DEPTH if deep else limit
    readline = text.readline
    line_no = 0
    # readline with a limit never builds a string longer than it, however long the line.
    for line in iter(partial(readline, limit + 1), ""):
        line_no += 1
        size = len(line)
        if size > limit:
            if not line.endswith("\n"):
                _skip_line(readline, limit)
            yield line_no, _BadJson(
                f"the line is longer than {limit:,} characters, the most a JSONL line may hold",
                prefix="",
            )
            continue
        if line.isspace():
            continue
        try:
            value = decode(line)
        except ValueError:  # JSONDecodeError, and NaN/Infinity refused
            yield line_no, _BadJson(_json_reason(line))
        except RecursionError:  # the C decoder recurses once per level
            yield line_no, _BadJson(_TOO_DEEP)
        else:
            if size > deep_from and json_too_deep(line, value):
                yield line_no, _BadJson(_TOO_DEEP)
            else:
                yield line_no, value


def _skip_line(readline: Callable[[int], str], limit: int) -> None:
    """Read past the rest of an over-long line, a bounded piece at a time."""
    while True:
        piece = readline(limit)
        if not piece or piece.endswith("\n"):
            return


_TOO_DEEP = f"arrays and objects nested more than {MAX_JSON_DEPTH} levels deep"


def json_too_deep(text: str, value: Any) -> bool:
    """True when ``value``, parsed from ``text``, nests more than MAX_JSON_DEPTH levels.

    Cheap for ordinary text: a value cannot nest deeper than it has opening brackets, so
    the walk only runs for text with that many of them.
    """
    if len(text) <= MAX_JSON_DEPTH or text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    # Iterative, so that checking for deep nesting cannot itself recurse too deeply.
    if not isinstance(value, list | dict):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, list | dict))
    return False


class _BadJson:
    __slots__ = ("message",)

    def __init__(self, reason: str, prefix: str = "not valid JSON: ") -> None:
        self.message = prefix + reason


def format_of(path: Path) -> str | None:
    """The format a file's extension names (csv or jsonl), or None."""
    return _EXTENSIONS.get(path.suffix.lower())


def _pick_format(path: Path, name: str, format: str | None) -> str:
    if format is not None:
        chosen = _FORMAT_ALIASES.get(format.lower())
        if chosen is None:
            raise InputError(f"{name}: unknown input format {format!r}; use csv or jsonl")
        return chosen
    chosen = format_of(path)
    if chosen is None:
        raise InputError(
            f"{name}: cannot tell the format from the extension {path.suffix or '(none)'!r}; "
            "name it .csv or .jsonl, or give --format csv|jsonl"
        )
    return chosen


def _cells(n: int) -> str:
    return "1 cell" if n == 1 else f"{n} cells"


def _blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def _check_header(name: str, columns: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for position, column in enumerate(columns, 1):
        if not column:
            raise InputError(f"{name}: header column {position} has no name")
        if column in seen:
            raise InputError(f'{name}: the header names column "{column}" twice')
        seen.add(column)


def _locate_csv_failure(reader: Any) -> str:
    """'row N (line L)' of the record on which ``reader`` raises csv.Error."""
    number = end = 0
    header = False
    try:
        for record in reader:
            end = reader.line_num
            if _blank(record):
                continue
            number += header
            header = True
    except csv.Error:
        pass
    return f"row {number + 1} (line {end + 1})" if header else f"the header (line {end + 1})"


def _describe_bad_utf8(path: Path, name: str) -> str:
    """Find the first line that is not UTF-8; only ever run once, on the way to an error."""
    # A multi-byte UTF-8 sequence never contains the byte "\n", so lines decode independently.
    try:
        raw, _identity = open_regular(path, name)
        with io.BufferedReader(raw) as binary:
            for line_no, line in enumerate(binary, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return (
                        f"{name}: line {line_no} is not valid UTF-8 (byte 0x{line[exc.start]:02x} "
                        f"at column {exc.start + 1}); save the file as UTF-8"
                    )
    except (InputError, OSError):
        pass
    return f"{name}: is not valid UTF-8; save the file as UTF-8"


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


# One decoder for every line: json.loads with any option builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_reason(line: str) -> str:
    # Parsed again without the line break, so that a position at the end of the line is
    # reported as a column of that line rather than as the start of a next one.
    try:
        _DECODER.decode(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at column {exc.colno}"
    except ValueError as exc:
        return str(exc)
    return "unreadable"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number"


__all__ = ["FORMATS", "MAX_JSON_DEPTH", "MAX_LINE", "InputFile", "InputSummary", "RawRow",
           "json_too_deep"]
