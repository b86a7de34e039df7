"""Streaming reader for the job's input file (CSV or JSONL); knows nothing of Tallyfy.

Two passes over the file, both streaming: ``scan()`` checks the file as a whole (header,
encoding, quoting), counts the rows and hashes the bytes for the job's fingerprint, so that a
file-level problem stops the job before any request; ``rows()`` then yields the rows one by one.
Neither keeps more than one row in memory.

Problems with one row (a ragged CSV line, a JSONL line that is not an object) do not stop the
file: the row comes out with ``error`` set and the job records it as invalid. Problems that make
the row boundaries or the text itself uncertain (bad UTF-8, broken quoting) stop the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulk.engine.errors import InputError

FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_FORMAT_ALIASES = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}
# Large reads keep the per-byte cost of Python-level I/O negligible on million-row files while
# staying far below any memory concern.
_BUFFER = 1 << 20


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

    def scan(self) -> InputSummary:
        """Check the whole file, count its rows and hash it, in one streaming pass.

        Raises InputError (one line, naming the file) when the file cannot be used at all.
        """
        digest = hashlib.sha256()
        try:
            raw = open(self.path, "rb", buffering=0)  # closed with the wrapper below
        except OSError as exc:
            raise self._os_error(exc) from None
        # The hash is taken from the very bytes the parser reads, so one pass does both.
        buffered = io.BufferedReader(_HashingRaw(raw, digest), buffer_size=_BUFFER)
        with self._text(buffered) as text, self._failures() as state:
            if self.format == "csv":
                columns, count = self._scan_csv(text, state)
            else:
                columns, count = self._scan_jsonl(text)
        if count == 0:
            if self.format == "csv":
                raise InputError(f"{self.name}: has a header row but no data rows")
            raise InputError(f"{self.name}: has no rows (no JSON object lines)")
        return InputSummary(self.path, self.format, digest.hexdigest(), count, columns)

    def rows(self) -> Iterator[RawRow]:
        """Yield every data row in file order, numbered as scan() counts them.

        The file is opened on the first next() and closed when the iterator ends or is closed.
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
        for _line, value in _jsonl_lines(text):
            count += 1
            if isinstance(value, dict) and not seen.keys() >= value.keys():
                seen.update(dict.fromkeys(value))
        return tuple(seen), count

    def _jsonl_rows(self) -> Iterator[RawRow]:
        with self._open_text() as text, self._failures():
            number = 0
            for line, value in _jsonl_lines(text):
                number += 1
                if isinstance(value, dict):
                    yield RawRow(number, value)
                    continue
                where = f"{self.name}: row {number} (line {line})"
                if isinstance(value, _BadJson):
                    yield RawRow(number, {}, f"{where}: not valid JSON: {value.reason}")
                else:
                    kind = _json_kind(value)
                    yield RawRow(number, {}, f"{where}: expected a JSON object, got {kind}")

    # -- shared ------------------------------------------------------------------------------

    def _open_text(self) -> io.TextIOWrapper:
        try:
            raw = open(self.path, "rb", buffering=_BUFFER)
        except OSError as exc:
            raise self._os_error(exc) from None
        return self._text(raw)

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
            line = state.reader.line_num if state.reader is not None else "?"
            raise InputError(
                f"{self.name}: line {line}: broken CSV quoting ({exc}); "
                "the row boundaries cannot be trusted, fix the file"
            ) from None
        except OSError as exc:
            raise self._os_error(exc) from None

    def _os_error(self, exc: OSError) -> InputError:
        reason = exc.strerror or exc.__class__.__name__
        return InputError(f"{self.name}: cannot read the file: {reason}")


class _State:
    __slots__ = ("reader",)

    def __init__(self) -> None:
        self.reader: Any = None


def _jsonl_lines(text: io.TextIOWrapper) -> Iterator[tuple[int, Any]]:
    """Yield (physical line, parsed value or _BadJson) for every non-blank line."""
    decode = _DECODER.decode
    line_no = 0
    for line in text:
        line_no += 1
        if line.isspace():
            continue
        try:
            yield line_no, decode(line)
        except ValueError:  # JSONDecodeError, and NaN/Infinity refused
            yield line_no, _BadJson(_json_reason(line))


class _HashingRaw(io.RawIOBase):
    """A raw stream that feeds every byte it reads into a hash."""

    def __init__(self, raw: io.FileIO, digest: Any) -> None:
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        n = self._raw.readinto(buffer)
        if n:
            self._digest.update(memoryview(buffer)[:n])
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class _BadJson:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _pick_format(path: Path, name: str, format: str | None) -> str:
    if format is not None:
        chosen = _FORMAT_ALIASES.get(format.lower())
        if chosen is None:
            raise InputError(f"{name}: unknown input format {format!r}; use csv or jsonl")
        return chosen
    chosen = _EXTENSIONS.get(path.suffix.lower())
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


def _describe_bad_utf8(path: Path, name: str) -> str:
    """Find the first line that is not UTF-8; only ever run once, on the way to an error."""
    # A multi-byte UTF-8 sequence never contains the byte "\n", so lines decode independently.
    try:
        with open(path, "rb") as binary:
            for line_no, line in enumerate(binary, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return (
                        f"{name}: line {line_no} is not valid UTF-8 (byte 0x{line[exc.start]:02x} "
                        f"at column {exc.start + 1}); save the file as UTF-8"
                    )
    except OSError:
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


__all__ = ["FORMATS", "InputFile", "InputSummary", "RawRow"]
