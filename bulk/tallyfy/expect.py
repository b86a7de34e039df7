"""Expectations: the value a field must have now for a row to be written.

Between the moment an input is made (by `bulk select`, `bulk undo`, or a person) and the moment
it is applied, people keep working in Tallyfy. An `expect.FIELD` column (or a JSONL `expect`
object) says what the row's author saw; if the record read just before the write shows
something else, nothing is sent and the row is recorded as `conflict`.

Expected values are typed by the field, like the changes are, and compared as the plan compares
a change with the record: user ids as numbers whatever their JSON type, `users`, `groups` and
the other lists as sets. An empty CSV cell means "no expectation"; inside a JSONL `expect`
object, `null` means "expected empty" (how a null before-value is guarded).

`clear` lists fields to set to null (text and URL fields that may be empty): what `bulk undo`
needs to restore a field that was empty before the job.
"""

from __future__ import annotations

from typing import Any

from bulk.engine.errors import BadValue
from bulk.tallyfy import form_values
from bulk.tallyfy.compare import prerun_values, same_value
from bulk.tallyfy.shapes import fields_by_id
from bulk.tallyfy.targets import (
    DATETIME,
    GROUPS,
    GUESTS,
    HEX32,
    KEYED_FIELDS,
    PRERUN,
    STRINGS,
    TEXT,
    URL,
    USER,
    USERS,
    FieldSpec,
    Target,
)
from bulk.tallyfy.values import (
    Converter,
    converters_for,
    prerun_value_text,
    show,
    split_text_list,
)

#: Marks a kick-off field the record does not have at all (never equal to an expectation).
_ABSENT = object()


def expect_converters(spec: FieldSpec) -> tuple[Converter, Converter]:
    """(from CSV text, from JSON) for `expect.<spec.name>`.

    Looser than a change's converters where the record itself may hold what a change may not
    send: an empty list of members, a text over the length limit, a blank name.
    """
    if spec.kind == TEXT:
        return _expected_text, _expected_text
    if spec.kind in (USERS, GROUPS, GUESTS, STRINGS):
        item = {USERS: converters_for(FieldSpec(spec.name, USER))[1], GROUPS: _group_item,
                GUESTS: _guest_item, STRINGS: _expected_text}[spec.kind]

        def from_text(value: str) -> list[Any]:
            return _items(_list_text(value), item)

        def from_json(value: Any) -> list[Any]:
            if not isinstance(value, list):
                raise BadValue(f"expected a JSON array, got {show(value)}")
            return _items(value, item)

        return from_text, from_json
    if spec.kind in (URL, DATETIME):
        return _expected_text, _expected_text
    return converters_for(spec)


def expect_object(target: Target, value: Any) -> dict[str, Any]:
    """A whole `expect` object (JSONL, or a CSV cell holding one): field -> typed value.

    Keys are field names, `prerun` (an object) or `prerun.<timeline_id>`; `null` means
    the field is expected to be empty.
    """
    if not isinstance(value, dict):
        raise BadValue(f"expected a JSON object of field: value, got {show(value)}")
    typed: dict[str, Any] = {}
    for key, item in value.items():
        keyed = target.keyed or PRERUN
        if target.is_keyed_column(key):
            timeline_id = key[len(keyed) + 1 :].strip().lower()
            if not HEX32(timeline_id):
                raise BadValue(f"kick-off field ids are 32 hex characters, got {show(key)}")
            typed.setdefault(keyed, {})[timeline_id] = item
            continue
        spec = target.fields.get(key)
        if spec is None:
            raise BadValue(f"{show(key)} is not a field of {target.name}")
        if item is None and spec.kind != PRERUN:
            typed[key] = None
        elif spec.kind == PRERUN:
            prerun = converters_for(spec)[1](item)
            typed.setdefault(keyed, {}).update(prerun)
        else:
            typed[key] = expect_converters(spec)[1](item)
    return typed


def expect_prerun_converters() -> tuple[Converter, Converter]:
    """(from CSV text, from JSON) for one `expect.prerun.<timeline_id>` column."""
    return prerun_value_text, _as_is


def clear_converters(target: Target) -> tuple[Converter, Converter]:
    """(from CSV text, from JSON) for the `clear` column: fields to set to null."""

    def check(names: list[Any]) -> tuple[str, ...]:
        fields = []
        for name in names:
            spec = target.fields.get(name) if isinstance(name, str) else None
            if spec is None:
                raise BadValue(f"{show(name)} is not a field of {target.name}")
            if spec.kind not in (TEXT, URL) or spec.non_empty:
                raise BadValue(f"{name} cannot be cleared (only text and URL fields can)")
            fields.append(name)
        return tuple(dict.fromkeys(fields))

    def from_text(value: str) -> tuple[str, ...]:
        return check(_list_text(value))

    def from_json(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise BadValue(f"expected a JSON array of field names, got {show(value)}")
        return check(value)

    return from_text, from_json


def find_conflict(record: dict[str, Any], expect: dict[str, Any]) -> str | None:
    """The first expectation the record does not meet, described; None when all are met."""
    for field in sorted(expect):
        wanted = expect[field]
        if field in KEYED_FIELDS:
            current_prerun = prerun_values(record.get(field)) or {}
            fields = fields_by_id(record) or {}
            for key in sorted(wanted):
                # A field the task lists but nobody answered has no taskdata key: empty.
                found = current_prerun.get(key, None if key in fields else _ABSENT)
                if found is _ABSENT or not form_values.same(fields.get(key), found,
                                                            wanted[key]):
                    shown = ("no such field" if found is _ABSENT
                             else show(form_values.cell(fields.get(key), found)))
                    return _describe(f"{field}.{key}", wanted[key], shown)
            continue
        current = record.get(field)
        if not same_value(field, current, wanted):
            return _describe(field, wanted, show(current))
    return None


def _describe(field: str, wanted: Any, found: str) -> str:
    return (
        f'field "{field}" was expected to be {show(wanted)} but is {found} now '
        "(changed since the input was made); nothing sent"
    )


def _expected_text(value: Any) -> str:
    # Exactly as given: the comparison is exact, spaces included.
    if value.__class__ is not str:
        raise BadValue(f"expected a string, got {show(value)}")
    return value


def _group_item(value: Any) -> str:
    if value.__class__ is str and HEX32(value.strip().lower()):
        return value.strip().lower()
    raise BadValue(f"expected a group id (32 hex characters), got {show(value)}")


def _guest_item(value: Any) -> str:
    if value.__class__ is str and value.strip():
        return value.strip()  # compared without case (compare.same_value)
    raise BadValue(f"expected a guest's email address, got {show(value)}")


def _list_text(value: str) -> list[Any]:
    """A cell holding a JSON array (`[]` for an empty list) or `;`-separated items."""
    return split_text_list(value, allow_empty=True)


def _items(values: list[Any], item: Converter) -> list[Any]:
    return list(dict.fromkeys(item(value) for value in values))


def _as_is(value: Any) -> Any:
    return value


__all__ = [
    "clear_converters",
    "expect_converters",
    "expect_object",
    "expect_prerun_converters",
    "find_conflict",
]
