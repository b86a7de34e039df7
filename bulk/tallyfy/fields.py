"""What a row may change on a Tallyfy run or template, and how its cells become typed values.

The API silently drops keys it does not know and still answers 200, so every column is checked
against the target's updatable fields before anything is sent (``check_columns``), and every
value is typed and checked here (``parse_row``) rather than left for the server to misread.

Values come from two kinds of source. CSV cells are text, typed by the field they belong to:
an empty or whitespace-only cell means "leave unchanged". JSONL values are already typed and
must have the field's JSON type; ``null`` means "leave unchanged".
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from bulk.engine.errors import InputError, RowInvalid
from bulk.engine.reader import MAX_JSON_DEPTH, RawRow, json_too_deep

# Field kinds: each has a converter from CSV text and one from a JSON value.
TEXT = "text"
BOOL = "bool"
USER = "user"  # a user id
URL = "url"
USERS = "users"  # a whole list of user ids (replaces the current members)
GROUPS = "groups"  # a whole list of group ids (replaces the current groups)
STRINGS = "strings"  # a list of strings
PRERUN = "prerun"  # an object keyed by kick-off field timeline_id

ADD_USERS, REMOVE_USERS = "add_users", "remove_users"
ADD_GROUPS, REMOVE_GROUPS = "add_groups", "remove_groups"
MEMBERSHIP_COLUMNS = (ADD_USERS, REMOVE_USERS, ADD_GROUPS, REMOVE_GROUPS)
PRERUN_PREFIX = "prerun."

_HEX32 = re.compile(r"[0-9a-f]{32}").fullmatch


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


# JSON read from cells; NaN and Infinity are refused since the request body could not carry them.
_JSON = json.JSONDecoder(parse_constant=_refuse_constant).decode
# Control characters other than tab and line breaks (CR only as part of CRLF, the line break
# of multi-line cells saved on Windows): in a text value they are almost always a damaged
# or mis-encoded file, and the API would store them as they are. C1 controls (U+0080-U+009F)
# are what Windows-1252 text read as Latin-1 turns into.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)").search
_CONTROL_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL"}
_TOO_DEEP = f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    max_length: int | None = None  # in characters, as the API counts them
    non_empty: bool = False  # a blank value is refused rather than sent


@dataclass(frozen=True, eq=False)  # identity equality: targets are singletons, and hashable
class Target:
    name: str  # "runs" | "templates"
    path: str  # API path segment: "runs" | "checklists"
    id_columns: tuple[str, ...]
    fields: Mapping[str, FieldSpec]  # updatable fields, named exactly as the API names them
    required_on_put: tuple[str, ...] = ()

    def columns(self) -> tuple[str, ...]:
        """Every column name this target accepts, kick-off columns aside."""
        return (*self.id_columns, *self.fields, *MEMBERSHIP_COLUMNS)


@dataclass(frozen=True)
class Change:
    """What one row asks for; only the fields the row gives are present."""

    row: int
    record_id: str
    set: dict[str, Any]  # typed values for plain fields, incl. a full users/groups replacement
    add_users: tuple[int, ...] = ()
    remove_users: tuple[int, ...] = ()
    add_groups: tuple[str, ...] = ()
    remove_groups: tuple[str, ...] = ()
    prerun: dict[str, Any] = field(default_factory=dict)  # kick-off timeline_id -> value


def _fields(*specs: FieldSpec) -> Mapping[str, FieldSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


_MEMBERS = (FieldSpec("users", USERS), FieldSpec("groups", GROUPS))

RUNS = Target(
    name="runs",
    path="runs",
    id_columns=("id", "run_id"),
    fields=_fields(
        FieldSpec("name", TEXT, max_length=550, non_empty=True),
        FieldSpec("summary", TEXT),
        FieldSpec("owner_id", USER),
        FieldSpec("starred", BOOL),
        FieldSpec("is_public", BOOL),
        FieldSpec("publicly_hidden_fields", STRINGS),
        *_MEMBERS,
        FieldSpec("prerun", PRERUN),
        FieldSpec("tags", STRINGS),
        FieldSpec("folders", STRINGS),
        FieldSpec("prevent_guest_comment", BOOL),
    ),
)

# Templates have no `prerun`: it is a run's kick-off data, and the template PUT would drop it
# silently.
TEMPLATES = Target(
    name="templates",
    path="checklists",
    id_columns=("id", "checklist_id", "template_id"),
    fields=_fields(
        FieldSpec("title", TEXT, max_length=250, non_empty=True),
        FieldSpec("summary", TEXT),
        FieldSpec("guidance", TEXT),
        FieldSpec("owner_id", USER),
        FieldSpec("webhook", URL),
        FieldSpec("starred", BOOL),
        FieldSpec("type", TEXT),
        FieldSpec("icon", TEXT),
        FieldSpec("folder_id", TEXT),
        FieldSpec("is_public", BOOL),
        FieldSpec("is_public_kickoff", BOOL),
        FieldSpec("explanation_video", URL),
        FieldSpec("default_process_name_format", TEXT, max_length=550),
        FieldSpec("auto_naming", BOOL),
        *_MEMBERS,
    ),
    required_on_put=("title",),
)

TARGETS: dict[str, Target] = {"runs": RUNS, "templates": TEMPLATES}


# -- columns ----------------------------------------------------------------------------------


def check_columns(target: Target, columns: Sequence[str], source: str) -> str:
    """Refuse, before any request, columns the target does not have; return the id column.

    Raises InputError naming every unknown column (with the closest known name when there is
    one), and when there is no id column or more than one.
    """
    known = target.columns()
    unknown: list[str] = []
    prerun_keys: dict[str, str] = {}
    for column in columns:
        if column in known:
            continue
        if column.startswith(PRERUN_PREFIX) and PRERUN in target.fields:
            key = column[len(PRERUN_PREFIX) :].lower()
            if not _HEX32(key):
                unknown.append(f'"{column}" (kick-off columns are prerun.<32-hex timeline_id>)')
            elif key in prerun_keys:
                raise InputError(
                    f'{source}: columns "{prerun_keys[key]}" and "{column}" '
                    "name the same kick-off field"
                )
            else:
                prerun_keys[key] = column
            continue
        unknown.append(_describe_unknown(target, column, known))
    if unknown:
        noun = "column is not a field" if len(unknown) == 1 else "columns are not fields"
        raise InputError(
            f"{source}: {noun} of {target.name}, and the API would silently ignore "
            f"{'it' if len(unknown) == 1 else 'them'}: {', '.join(unknown)}"
        )
    ids = [column for column in columns if column in target.id_columns]
    if not ids:
        wanted = ", ".join(f'"{name}"' for name in target.id_columns)
        raise InputError(f"{source}: no record id column; {target.name} need one of {wanted}")
    if len(ids) > 1:
        given = ", ".join(f'"{name}"' for name in ids)
        raise InputError(f"{source}: more than one record id column ({given}); keep one")
    return ids[0]


def _describe_unknown(target: Target, column: str, known: Sequence[str]) -> str:
    for other in TARGETS.values():
        kick_off = PRERUN in other.fields and column.startswith(PRERUN_PREFIX)
        if other is not target and (column in other.columns() or kick_off):
            return f'"{column}" (a {other.name} column: is the target right?)'
    lowered = {name.lower(): name for name in known}
    match = lowered.get(column.strip().lower())
    if match is None:
        close = difflib.get_close_matches(column.strip().lower(), list(lowered), n=1)
        match = lowered[close[0]] if close else None
    return f'"{column}" (did you mean "{match}"?)' if match else f'"{column}"'


# -- rows -------------------------------------------------------------------------------------


class _Bad(ValueError):
    """A value does not fit its column; the caller adds file, row and column."""


Converter = Callable[[Any], Any]

# Where a column's value goes in the Change.
_SET, _PRERUN_KEY, _PRERUN_OBJECT = "set", "prerun_key", "prerun_object"


class RowParser:
    """Types the rows of one input; converters are chosen once per column, not per row."""

    def __init__(self, target: Target, id_column: str, source: str, format: str = "csv") -> None:
        self.target = target
        self.id_column = id_column
        self.source = source
        # JSONL values are typed already; CSV values are text to be typed by the field. A
        # non-text value met in CSV mode (a JSONL row given without format) is still judged
        # by its JSON type, so a wrong format can mis-type nothing, only refuse.
        self.typed = format == "jsonl"
        self._columns: dict[str, tuple[str, str, Converter, Converter]] = {}
        for spec in target.fields.values():
            slot = _PRERUN_OBJECT if spec.kind == PRERUN else _SET
            self._columns[spec.name] = (slot, spec.name, *_converters(spec))
        for column in MEMBERSHIP_COLUMNS:
            kind = USERS if column.endswith("users") else GROUPS
            self._columns[column] = (column, column, *_delta_converters(kind))

    def parse(self, raw: RawRow) -> Change:
        """Type one row; raise RowInvalid (naming file, row and column) for any problem."""
        if raw.error is not None:
            raise RowInvalid(raw.error)
        number = raw.number
        values = raw.values
        id_column = self.id_column
        record_id = self._record_id(values.get(id_column), number)
        text_mode = not self.typed
        columns = self._columns
        changes: dict[str, Any] = {}
        prerun: dict[str, Any] = {}
        prerun_object: dict[str, Any] | None = None
        membership: dict[str, tuple[Any, ...]] = {}
        for column, value in values.items():
            if value is None or column == id_column:
                continue
            if text_mode and value.__class__ is str:
                if not value or value.isspace():
                    continue  # an empty cell leaves the field unchanged
                convert_index = 2
            else:
                convert_index = 3
            spec = columns.get(column) or self._column(column, number)
            try:
                typed = spec[convert_index](value)
            except _Bad as exc:
                raise self._invalid(number, column, str(exc)) from None
            slot = spec[0]
            if slot == _SET:
                changes[spec[1]] = typed
            elif slot == _PRERUN_KEY:
                prerun[spec[1]] = typed
            elif slot == _PRERUN_OBJECT:
                prerun_object = typed
            else:
                membership[slot] = typed
        if prerun_object:
            prerun = self._merge_prerun(prerun_object, prerun, number)
        if membership:
            self._check_membership(changes, membership, number)
        if not changes and not prerun and not any(membership.values()):
            # Most likely a mistake in the file (a half-filled spreadsheet row), so it is
            # reported rather than quietly counted as unchanged.
            raise RowInvalid(f"{self.source}: row {number}: nothing to change (no field is set)")
        return Change(
            number,
            record_id,
            changes,
            membership.get(ADD_USERS, ()),
            membership.get(REMOVE_USERS, ()),
            membership.get(ADD_GROUPS, ()),
            membership.get(REMOVE_GROUPS, ()),
            prerun,
        )

    def _record_id(self, value: Any, number: int) -> str:
        if isinstance(value, str):
            record_id = value.strip().lower()
            if _HEX32(record_id):
                return record_id
            if not record_id:
                raise self._invalid(number, self.id_column, "empty; every row needs a record id")
        elif value is None:
            raise self._invalid(number, self.id_column, "missing; every row needs a record id")
        raise self._invalid(
            number, self.id_column, f"expected a 32-character hex id, got {_show(value)}"
        )

    def _column(self, column: str, number: int) -> tuple[str, str, Converter, Converter]:
        """The converters of a prerun.<timeline_id> column, built on first sight."""
        key = column[len(PRERUN_PREFIX) :].lower()
        accepted = PRERUN in self.target.fields and column.startswith(PRERUN_PREFIX)
        if not accepted or not _HEX32(key):
            # check_columns refuses these before any row is read; this guards direct callers.
            raise self._invalid(number, column, f"not a field of {self.target.name}")
        spec = self._columns[column] = (_PRERUN_KEY, key, _prerun_value_text, _prerun_value_json)
        return spec

    def _merge_prerun(
        self, whole: dict[str, Any], columns: dict[str, Any], number: int
    ) -> dict[str, Any]:
        clash = whole.keys() & columns.keys()
        if clash:
            key = min(clash)
            raise self._invalid(
                number, "prerun", f'kick-off field {key} is also given as "prerun.{key}"'
            )
        return {**whole, **columns}

    def _check_membership(
        self, changes: dict[str, Any], membership: dict[str, tuple[Any, ...]], number: int
    ) -> None:
        for whole, add, remove, what in (
            ("users", ADD_USERS, REMOVE_USERS, "user"),
            ("groups", ADD_GROUPS, REMOVE_GROUPS, "group"),
        ):
            added, removed = membership.get(add, ()), membership.get(remove, ())
            if whole in changes and (added or removed):
                column = add if added else remove
                raise self._invalid(
                    number,
                    column,
                    f'cannot be combined with "{whole}" in the same row '
                    f'("{whole}" replaces the whole list)',
                )
            both = set(added).intersection(removed)
            if both:
                first = next(item for item in added if item in both)
                raise RowInvalid(
                    f'{self.source}: row {number}, columns "{add}" and "{remove}": '
                    f"{what} {first} is both added and removed"
                )

    def _invalid(self, number: int, column: str, message: str) -> RowInvalid:
        return RowInvalid(f'{self.source}: row {number}, column "{column}": {message}')


def parse_row(
    target: Target, raw: RawRow, id_column: str, source: str, format: str = "csv"
) -> Change:
    """Type one row; raise RowInvalid (message names file, row, column) for any problem.

    ``format`` is the input's format ("csv" or "jsonl"): JSONL values must have the field's
    JSON type, CSV cells are text typed by the field.
    """
    return _parser(target, id_column, source, format).parse(raw)


@lru_cache(maxsize=32)
def _parser(target: Target, id_column: str, source: str, format: str) -> RowParser:
    return RowParser(target, id_column, source, format)


# -- converters -------------------------------------------------------------------------------
# Each takes a value and returns it typed, or raises _Bad with a message that says what was
# expected and what was found. Text converters never see an empty cell.


def _converters(spec: FieldSpec) -> tuple[Converter, Converter]:
    if spec.kind == TEXT:
        return _text_converters(spec)
    if spec.kind in (USERS, GROUPS):
        return _list_converters(spec.kind, whole=True)
    return _SIMPLE[spec.kind]


def _delta_converters(kind: str) -> tuple[Converter, Converter]:
    return _list_converters(kind, whole=False)


def _text_converters(spec: FieldSpec) -> tuple[Converter, Converter]:
    name, limit, non_empty = spec.name, spec.max_length, spec.non_empty

    # Text is kept exactly as given, surrounding spaces included: it is what the user wrote.
    def from_text(value: str) -> str:
        if limit is not None and len(value) > limit:
            raise _Bad(f"{len(value)} characters; {name} allows at most {limit}")
        if not value.isprintable():  # a tab or a line break, or a control character
            _refuse_control_characters(value)
        return value

    def from_json(value: Any) -> str:
        if value.__class__ is not str:
            raise _Bad(f"expected a string, got {_show(value)}")
        if non_empty and (not value or value.isspace()):
            raise _Bad(f"{name} cannot be empty")
        return from_text(value)

    return from_text, from_json


def _bool_text(value: str) -> bool:
    result = _BOOLS.get(value.strip().lower())
    if result is None:
        raise _Bad(f"expected true/false/yes/no/1/0, got {_show(value)}")
    return result


def _bool_json(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise _Bad(f"expected true or false, got {_show(value)}")


def _user_text(value: str) -> int:
    digits = value.strip()
    # isascii: str.isdigit and int() also accept non-ASCII digits such as "١٢".
    if digits.isascii() and digits.isdigit() and int(digits) > 0:
        return int(digits)
    raise _Bad(f"expected a user id (positive integer), got {_show(value)}")


def _user_json(value: Any) -> int:
    # Newer docs send user ids as strings, so a string of digits is accepted too.
    if value.__class__ is int:
        if value > 0:
            return value
    elif value.__class__ is str:
        return _user_text(value)
    raise _Bad(f"expected a user id (positive integer), got {_show(value)}")


def _group(value: Any) -> str:
    if value.__class__ is str:
        group = value.strip().lower()
        if _HEX32(group):
            return group
    raise _Bad(f"expected a group id (32 hex characters), got {_show(value)}")


def _string_item(value: Any) -> str:
    if value.__class__ is str and value.strip():
        if not value.isprintable():
            _refuse_control_characters(value)
        return value
    raise _Bad(f"expected a non-empty string, got {_show(value)}")


def _url(value: Any) -> str:
    if value.__class__ is str:
        url = value.strip()
        _refuse_control_characters(url)
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            host = None
        else:
            if parts.scheme not in ("http", "https") or any(c.isspace() for c in url):
                host = None
        if host:
            return url
    raise _Bad(f"expected an http(s) URL with a host, got {_show(value)}")


def _split_text_list(value: str) -> list[Any]:
    """A cell holding a JSON array, or items separated by ";" (blank items ignored)."""
    cell = value.strip()
    if cell.startswith("["):
        try:
            items = _json_cell(cell)
        except _Bad:
            raise
        except ValueError:
            raise _Bad(f"not a valid JSON array: {_show(value)}") from None
        if not isinstance(items, list):
            raise _Bad(f"not a valid JSON array: {_show(value)}")
        return items
    items = [item.strip() for item in cell.split(";")]
    items = [item for item in items if item]
    if not items:
        raise _Bad(f"no items in {_show(value)}; write [] for an empty list")
    return items


def _strings_text(value: str) -> list[str]:
    return [_string_item(item) for item in _split_text_list(value)]


def _strings_json(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Bad(f"expected a JSON array of strings, got {_show(value)}")
    return [_string_item(item) for item in value]


def _list_converters(kind: str, *, whole: bool) -> tuple[Converter, Converter]:
    item = _user_json if kind == USERS else _group
    noun = "user ids" if kind == USERS else "group ids"

    def check(items: list[Any]) -> list[Any]:
        # Members are a set: a repeated id means nothing more, so it is dropped, order kept.
        typed = list(dict.fromkeys(item(value) for value in items))
        if whole and not typed:
            # An empty list is exactly the wipe this tool exists to prevent.
            raise _Bad(
                f"an empty list would remove every one of the record's {kind}; "
                f"use remove_{kind} to remove some"
            )
        return typed if whole else tuple(typed)

    def from_text(value: str) -> Any:
        return check(_split_text_list(value))

    def from_json(value: Any) -> Any:
        if not isinstance(value, list):
            raise _Bad(f"expected a JSON array of {noun}, got {_show(value)}")
        return check(value)

    return from_text, from_json


def _prerun_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"expected a JSON object keyed by kick-off field id, got {_show(value)}")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        timeline_id = key.strip().lower()
        if not _HEX32(timeline_id):
            raise _Bad(f"kick-off field ids are 32 hex characters, got {_show(key)}")
        if timeline_id in checked:
            raise _Bad(f"kick-off field {timeline_id} is given twice")
        checked[timeline_id] = _prerun_value_json(item)
    return checked


def _prerun_text(value: str) -> dict[str, Any]:
    try:
        parsed = _json_cell(value)
    except _Bad:
        raise
    except ValueError:
        raise _Bad(f"expected a JSON object, got {_show(value)}") from None
    return _prerun_object(parsed)


def _prerun_value_text(value: str) -> Any:
    # Dropdown, multi-select, table and assignee values are JSON objects or arrays; anything
    # else (text, dates, radio options) is sent as the bare string.
    head = value.lstrip()[:1]
    if head in ("{", "["):
        try:
            return _json_cell(value)
        except _Bad:
            raise
        except ValueError:
            pass
    if not value.isprintable():
        _refuse_control_characters(value)
    return value


def _prerun_value_json(value: Any) -> Any:
    if value.__class__ is str and not value.isprintable():
        _refuse_control_characters(value)
    return value


def _json_cell(text: str) -> Any:
    """JSON read from a cell: ValueError when it is not JSON, _Bad when nested too deeply."""
    try:
        value = _JSON(text)
    except RecursionError:  # the C decoder recurses once per level
        raise _Bad(_TOO_DEEP) from None
    if json_too_deep(text, value):
        raise _Bad(_TOO_DEEP)
    return value


def _refuse_control_characters(value: str) -> None:
    found = _CONTROL(value)
    if found is None:
        return
    char = found.group()
    code = ord(char)
    position = found.start() + 1
    if char == "\r":
        raise _Bad(
            f"contains a carriage return (U+000D) not followed by a line feed, at character "
            f"{position}: line breaks in a cell are LF or CRLF; is the file damaged?"
        )
    label = f"U+{code:04X}" + (f" {_CONTROL_NAMES[code]}" if code in _CONTROL_NAMES else "")
    raise _Bad(
        f"contains a control character ({label}) at character {position}: text may hold "
        "tabs and line breaks but no other control characters; the file is probably damaged "
        "or not plain text"
    )


_SIMPLE: dict[str, tuple[Converter, Converter]] = {
    BOOL: (_bool_text, _bool_json),
    USER: (_user_text, _user_json),
    URL: (_url, _url),
    STRINGS: (_strings_text, _strings_json),
    PRERUN: (_prerun_text, _prerun_object),
}


def _show(value: Any, limit: int = 60) -> str:
    """A value as it would be written in JSON, cut short: enough to recognise it."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "MEMBERSHIP_COLUMNS",
    "RUNS",
    "TARGETS",
    "TEMPLATES",
    "Change",
    "FieldSpec",
    "RowParser",
    "Target",
    "check_columns",
    "parse_row",
]
