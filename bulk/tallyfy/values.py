"""How a value becomes typed by the field it belongs to: converters from CSV text and from JSON.

CSV cells are text, typed by the field: an empty cell never reaches a converter (it means
"leave unchanged"). JSONL values are already typed and must have the field's JSON type. Each
converter returns the value typed, or raises ``BadValue`` saying what was expected and found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bulk.engine.errors import BadValue
from bulk.engine.reader import MAX_JSON_DEPTH, json_too_deep
from bulk.tallyfy.targets import (
    BOOL,
    COUNT,
    DATETIME,
    GROUPS,
    GUESTS,
    HEX32,
    PRERUN,
    STRINGS,
    TEXT,
    URL,
    USER,
    USERS,
    FieldSpec,
)


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
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+").fullmatch
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


Converter = Callable[[Any], Any]


# -- converters -------------------------------------------------------------------------------
# Each takes a value and returns it typed, or raises BadValue with a message that says what was
# expected and what was found. Text converters never see an empty cell.


def converters_for(spec: FieldSpec) -> tuple[Converter, Converter]:
    if spec.kind == TEXT:
        return _text_converters(spec)
    if spec.kind in (USERS, GROUPS, GUESTS):
        return _list_converters(spec.kind, whole=True)
    return _SIMPLE[spec.kind]


def delta_converters(kind: str) -> tuple[Converter, Converter]:
    return _list_converters(kind, whole=False)


def _text_converters(spec: FieldSpec) -> tuple[Converter, Converter]:
    name, limit, non_empty = spec.name, spec.max_length, spec.non_empty

    # Text is kept exactly as given, surrounding spaces included: it is what the user wrote.
    def from_text(value: str) -> str:
        if limit is not None and len(value) > limit:
            raise BadValue(f"{len(value)} characters; {name} allows at most {limit}")
        if not value.isprintable():  # a tab or a line break, or a control character
            _refuse_control_characters(value)
        return value

    def from_json(value: Any) -> str:
        if value.__class__ is not str:
            raise BadValue(f"expected a string, got {show(value)}")
        if non_empty and (not value or value.isspace()):
            raise BadValue(f"{name} cannot be empty")
        return from_text(value)

    return from_text, from_json


def _bool_text(value: str) -> bool:
    result = _BOOLS.get(value.strip().lower())
    if result is None:
        raise BadValue(f"expected true/false/yes/no/1/0, got {show(value)}")
    return result


def _bool_json(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise BadValue(f"expected true or false, got {show(value)}")


class Email(str):
    """A member named by email where a user id is taken: resolved to the id, once per job,
    from the organization's member list before any PUT (see people.py)."""

    __slots__ = ()


#: Loose on purpose: the organization's member list decides whether it names anyone.
_EMAIL = re.compile(r"[^@\s;,\[\]\"]+@[^@\s;,\[\]\"]+\.[^@\s;,\[\]\"]+").fullmatch


def _user_text(value: str) -> int | Email:
    digits = value.strip()
    # isascii: str.isdigit and int() also accept non-ASCII digits such as "١٢".
    if digits.isascii() and digits.isdigit() and int(digits) > 0:
        return int(digits)
    if _EMAIL(digits):
        return Email(digits.lower())
    raise BadValue(f"expected a user id (positive integer) or a member's email, "
                   f"got {show(value)}")


def _user_json(value: Any) -> int | Email:
    # Newer docs send user ids as strings, so a string of digits is accepted too.
    if value.__class__ is int:
        if value > 0:
            return value
    elif value.__class__ is str:
        return _user_text(value)
    raise BadValue(f"expected a user id (positive integer), got {show(value)}")


def _group(value: Any) -> str:
    if value.__class__ is str:
        group = value.strip().lower()
        if HEX32(group):
            return group
    raise BadValue(f"expected a group id (32 hex characters), got {show(value)}")


def _string_item(value: Any) -> str:
    if value.__class__ is str and value.strip():
        if not value.isprintable():
            _refuse_control_characters(value)
        return value
    raise BadValue(f"expected a non-empty string, got {show(value)}")


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
    raise BadValue(f"expected an http(s) URL with a host, got {show(value)}")


def split_text_list(value: str, *, allow_empty: bool = False) -> list[Any]:
    """A cell holding a JSON array, or items separated by ";" (blank items ignored)."""
    cell = value.strip()
    if cell.startswith("["):
        try:
            items = json_cell(cell)
        except BadValue:
            raise
        except ValueError:
            raise BadValue(f"not a valid JSON array: {show(value)}") from None
        if not isinstance(items, list):
            raise BadValue(f"not a valid JSON array: {show(value)}")
        return items
    items = [item.strip() for item in cell.split(";")]
    items = [item for item in items if item]
    if not items and not allow_empty:
        raise BadValue(f"no items in {show(value)}; write [] for an empty list")
    return items


def _strings_text(value: str) -> list[str]:
    return [_string_item(item) for item in split_text_list(value)]


def _strings_json(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadValue(f"expected a JSON array of strings, got {show(value)}")
    return [_string_item(item) for item in value]


def _guest(value: Any) -> str:
    # Guests are people outside the org, named by email: kept as written (an undo puts
    # back exactly what was there), compared without case (plan.py).
    if value.__class__ is str and _EMAIL(value.strip()):
        return value.strip()
    raise BadValue(f"expected a guest's email address, got {show(value)}")


def _datetime_text(value: str) -> str:
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or "T" not in text:
        raise BadValue(f"expected an ISO-8601 date-time (2026-03-31T17:00:00Z), got {show(value)}")
    return text


def _datetime_json(value: Any) -> str:
    if value.__class__ is not str:
        raise BadValue(f"expected an ISO-8601 date-time string, got {show(value)}")
    return _datetime_text(value)


def _count_text(value: str) -> int:
    digits = value.strip()
    if digits.isascii() and digits.isdigit():
        return int(digits)
    raise BadValue(f"expected a whole number (0 or more), got {show(value)}")


def _count_json(value: Any) -> int:
    if value.__class__ is int and value >= 0:
        return value
    raise BadValue(f"expected a whole number (0 or more), got {show(value)}")


def _list_converters(kind: str, *, whole: bool) -> tuple[Converter, Converter]:
    item = {USERS: _user_json, GROUPS: _group, GUESTS: _guest}[kind]
    noun = {USERS: "user ids", GROUPS: "group ids", GUESTS: "guest emails"}[kind]

    def check(items: list[Any]) -> list[Any]:
        # Members are a set: a repeated id means nothing more, so it is dropped, order kept.
        typed = list(dict.fromkeys(item(value) for value in items))
        if whole and not typed:
            # An empty list is exactly the wipe this tool exists to prevent.
            raise BadValue(
                f"an empty list would remove every one of the record's {kind}; "
                f"use remove_{kind} to remove some"
            )
        return typed if whole else tuple(typed)

    def from_text(value: str) -> Any:
        return check(split_text_list(value))

    def from_json(value: Any) -> Any:
        if not isinstance(value, list):
            raise BadValue(f"expected a JSON array of {noun}, got {show(value)}")
        return check(value)

    return from_text, from_json


def _prerun_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadValue(f"expected a JSON object keyed by kick-off field id, got {show(value)}")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        timeline_id = key.strip().lower()
        if not HEX32(timeline_id):
            raise BadValue(f"kick-off field ids are 32 hex characters, got {show(key)}")
        if timeline_id in checked:
            raise BadValue(f"kick-off field {timeline_id} is given twice")
        checked[timeline_id] = prerun_value_json(item)
    return checked


def _prerun_text(value: str) -> dict[str, Any]:
    try:
        parsed = json_cell(value)
    except BadValue:
        raise
    except ValueError:
        raise BadValue(f"expected a JSON object, got {show(value)}") from None
    return _prerun_object(parsed)


def prerun_value_text(value: str) -> Any:
    # Dropdown, multi-select, table and assignee values are JSON objects or arrays; anything
    # else (text, dates, radio options) is sent as the bare string.
    head = value.lstrip()[:1]
    if head in ("{", "["):
        try:
            return json_cell(value)
        except BadValue:
            raise
        except ValueError:
            pass
    if not value.isprintable():
        _refuse_control_characters(value)
    return value


def prerun_value_json(value: Any) -> Any:
    if value.__class__ is str and not value.isprintable():
        _refuse_control_characters(value)
    return value


def json_cell(text: str) -> Any:
    """JSON read from a cell: ValueError when it is not JSON, BadValue when nested too deeply."""
    try:
        value = _JSON(text)
    except RecursionError:  # the C decoder recurses once per level
        raise BadValue(_TOO_DEEP) from None
    if json_too_deep(text, value):
        raise BadValue(_TOO_DEEP)
    return value


def _refuse_control_characters(value: str) -> None:
    found = _CONTROL(value)
    if found is None:
        return
    char = found.group()
    code = ord(char)
    position = found.start() + 1
    if char == "\r":
        raise BadValue(
            f"contains a carriage return (U+000D) not followed by a line feed, at character "
            f"{position}: line breaks in a cell are LF or CRLF; is the file damaged?"
        )
    label = f"U+{code:04X}" + (f" {_CONTROL_NAMES[code]}" if code in _CONTROL_NAMES else "")
    raise BadValue(
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
    DATETIME: (_datetime_text, _datetime_json),
    COUNT: (_count_text, _count_json),
}


def show(value: Any, limit: int = 60) -> str:
    """A value as it would be written in JSON, cut short: enough to recognise it."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"



__all__ = [
    "Converter",
    "Email",
    "converters_for",
    "delta_converters",
    "prerun_value_json",
    "prerun_value_text",
    "show",
    "split_text_list",
]
