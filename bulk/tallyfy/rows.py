"""What one input row asks for, typed: ``RowParser`` turns a raw row into a ``Change``.

The targets and their fields live in ``targets.py`` (columns are checked there, before any
request), the typing of single values in ``values.py``; import them from there.

Values come from two kinds of source. CSV cells are text, typed by the field they belong to:
an empty or whitespace-only cell means "leave unchanged". JSONL values are already typed and
must have the field's JSON type; ``null`` means "leave unchanged".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bulk.engine.errors import BadValue, RowInvalid
from bulk.engine.reader import RawRow
from bulk.tallyfy.expect import (
    clear_converters,
    expect_converters,
    expect_object,
    expect_prerun_converters,
)
from bulk.tallyfy.targets import (
    ADD_GROUPS,
    ADD_USERS,
    CLEAR,
    EXPECT,
    EXPECT_PREFIX,
    HEX32,
    PRERUN,
    REMOVE_GROUPS,
    REMOVE_USERS,
    Target,
    is_reference,
)
from bulk.tallyfy.values import (
    Converter,
    converters_for,
    delta_converters,
    json_cell,
    prerun_value_json,
    prerun_value_text,
    show,
)


@dataclass(frozen=True, kw_only=True)
class Change:
    """What one row asks for; only the fields the row gives are present (keywords only:
    eleven fields of like types are too easy to swap by position)."""

    row: int
    record_id: str
    set: dict[str, Any]  # typed values for plain fields, incl. a full users/groups replacement
    add_users: tuple[int, ...] = ()
    remove_users: tuple[int, ...] = ()
    add_groups: tuple[str, ...] = ()
    remove_groups: tuple[str, ...] = ()
    #: keyed values (a run's kick-off timeline_id, a task's form field id) -> value
    prerun: dict[str, Any] = field(default_factory=dict)
    #: field -> the value it must have now for the row to be written ("prerun": a dict)
    expect: dict[str, Any] = field(default_factory=dict)
    add_guests: tuple[str, ...] = ()  # task assignees only
    remove_guests: tuple[str, ...] = ()

    def changes_nothing(self) -> bool:
        """Only expectations: there is nothing to write (a spreadsheet row left as it was)."""
        return not (self.set or self.prerun or self.add_users or self.remove_users
                    or self.add_groups or self.remove_groups or self.add_guests
                    or self.remove_guests)

    def delta(self, name: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(added, removed) for one membership list: users, guests or groups."""
        return getattr(self, f"add_{name}", ()), getattr(self, f"remove_{name}", ())


# -- rows -------------------------------------------------------------------------------------


# Where a column's value goes in the Change.
_SET, _PRERUN_KEY, _PRERUN_OBJECT = "set", "prerun_key", "prerun_object"
_EXPECT, _EXPECT_PRERUN, _EXPECT_OBJECT, _CLEAR = "expect", "expect_prerun", "expect_obj", "clear"


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
            self._columns[spec.name] = (slot, spec.name, *converters_for(spec))
        for column in target.delta_columns():
            kind = column.partition("_")[2]  # users, guests or groups: the kind's name
            self._columns[column] = (column, column, *delta_converters(kind))
        for spec in target.fields.values():
            column = EXPECT_PREFIX + spec.name
            if spec.kind == PRERUN:
                self._columns[column] = (_EXPECT_OBJECT, column, *_object_converters(
                    target, lambda value, name=spec.name: {name: value}))
            else:
                self._columns[column] = (_EXPECT, spec.name, *expect_converters(spec))
        self._columns[EXPECT] = (_EXPECT_OBJECT, EXPECT, *_object_converters(target, None))
        self._columns[CLEAR] = (_CLEAR, CLEAR, *clear_converters(target))

    def parse(self, raw: RawRow) -> Change:
        """Type one row; raise RowInvalid (naming file, row and column) for any problem."""
        if raw.error is not None:
            raise RowInvalid(raw.error)
        number = raw.number
        values = raw.values
        id_column = self.id_column
        record_id = self._record_id(values.get(id_column), number)
        parent_column = self.target.parent_column
        if parent_column is not None:
            record_id = self._with_parent(record_id, values.get(parent_column), number)
        text_mode = not self.typed
        columns = self._columns
        changes: dict[str, Any] = {}
        prerun: dict[str, Any] = {}
        prerun_object: dict[str, Any] | None = None
        cleared: tuple[str, ...] = ()
        membership: dict[str, tuple[Any, ...]] = {}
        expect: dict[str, Any] = {}
        for column, value in values.items():
            if (value is None or column == id_column or column == parent_column
                    or is_reference(column)):
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
            except BadValue as exc:
                raise self._invalid(number, column, str(exc)) from None
            slot = spec[0]
            if slot == _SET:
                changes[spec[1]] = typed
            elif slot == _PRERUN_KEY:
                prerun[spec[1]] = typed
            elif slot == _PRERUN_OBJECT:
                prerun_object = typed
            elif slot == _EXPECT:
                expect[spec[1]] = typed
            elif slot == _EXPECT_PRERUN:
                expect.setdefault(self.target.keyed or PRERUN, {})[spec[1]] = typed
            elif slot == _EXPECT_OBJECT:
                self._merge_expect(expect, typed, number, column)
            elif slot == _CLEAR:
                cleared = typed
            else:
                membership[slot] = typed
        if cleared:
            self._clear(changes, cleared, number)
        if prerun_object:
            prerun = self._merge_prerun(prerun_object, prerun, number)
        if membership:
            self._check_membership(changes, membership, number)
        if not changes and not prerun and not any(membership.values()) and not expect:
            # Most likely a mistake in the file (a half-filled spreadsheet row), so it is
            # reported rather than quietly counted as unchanged.
            raise RowInvalid(f"{self.source}: row {number}: nothing to change (no field is set)")
        return Change(
            row=number,
            record_id=record_id,
            set=changes,
            add_users=membership.get(ADD_USERS, ()),
            remove_users=membership.get(REMOVE_USERS, ()),
            add_groups=membership.get(ADD_GROUPS, ()),
            remove_groups=membership.get(REMOVE_GROUPS, ()),
            prerun=prerun,
            expect=expect,
            add_guests=membership.get("add_guests", ()),
            remove_guests=membership.get("remove_guests", ()),
        )

    def _with_parent(self, record_id: str, parent: Any, number: int) -> str:
        """`run_id/task_id` for a process task; the task id alone when the cell is empty."""
        column = self.target.parent_column or ""
        if parent is None or (isinstance(parent, str) and not parent.strip()):
            return record_id  # a one-off task
        if isinstance(parent, str) and HEX32(parent.strip().lower()):
            return f"{parent.strip().lower()}/{record_id}"
        raise self._invalid(number, column,
                            f"expected a 32-character hex id (or empty), got {show(parent)}")

    def _record_id(self, value: Any, number: int) -> str:
        if isinstance(value, str):
            record_id = value.strip().lower()
            if HEX32(record_id):
                return record_id
            if not record_id:
                raise self._invalid(number, self.id_column, "empty; every row needs a record id")
        elif value is None:
            raise self._invalid(number, self.id_column, "missing; every row needs a record id")
        raise self._invalid(
            number, self.id_column, f"expected a 32-character hex id, got {show(value)}"
        )

    def _column(self, column: str, number: int) -> tuple[str, str, Converter, Converter]:
        """The converters of a [expect.]prerun.<timeline_id> column, built on first sight."""
        expected = column.startswith(EXPECT_PREFIX)
        name = column[len(EXPECT_PREFIX) :] if expected else column
        key = name.partition(".")[2].lower()
        accepted = self.target.is_keyed_column(name)
        if not accepted or not HEX32(key):
            # check_columns refuses these before any row is read; this guards direct callers.
            raise self._invalid(number, column, f"not a field of {self.target.name}")
        if expected:
            spec = (_EXPECT_PRERUN, key, *expect_prerun_converters())
        else:
            spec = (_PRERUN_KEY, key, prerun_value_text, prerun_value_json)
        self._columns[column] = spec
        return spec

    def _merge_expect(
        self, expect: dict[str, Any], more: dict[str, Any], number: int, column: str
    ) -> None:
        for name, value in more.items():
            if name == self.target.keyed and isinstance(value, dict):
                expect.setdefault(name, {}).update(value)
            elif name in expect:
                raise self._invalid(number, column, f"expects {name} a second time")
            else:
                expect[name] = value

    def _clear(self, changes: dict[str, Any], cleared: tuple[str, ...], number: int) -> None:
        for name in cleared:
            if name in changes:
                raise self._invalid(number, CLEAR, f"{name} is both set and cleared")
            changes[name] = None

    def _merge_prerun(
        self, whole: dict[str, Any], columns: dict[str, Any], number: int
    ) -> dict[str, Any]:
        clash = whole.keys() & columns.keys()
        if clash:
            key = min(clash)
            keyed = self.target.keyed or PRERUN
            what = "kick-off field" if keyed == PRERUN else "form field"
            raise self._invalid(
                number, keyed, f'{what} {key} is also given as "{keyed}.{key}"'
            )
        return {**whole, **columns}

    def _check_membership(
        self, changes: dict[str, Any], membership: dict[str, tuple[Any, ...]], number: int
    ) -> None:
        for whole in self.target.membership:
            add, remove, what = f"add_{whole}", f"remove_{whole}", whole[:-1]
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


def _object_converters(target: Target, wrap: Callable[[Any], Any] | None
                       ) -> tuple[Converter, Converter]:
    """An `expect` object (or `expect.prerun`): JSON in a CSV cell, or as typed in JSONL."""

    def from_json(value: Any) -> dict[str, Any]:
        return expect_object(target, wrap(value) if wrap else value)

    def from_text(value: str) -> dict[str, Any]:
        try:
            parsed = json_cell(value)  # NaN refused, nesting bounded (BadValue)
        except BadValue:
            raise
        except ValueError:
            raise BadValue(f"expected a JSON object, got {show(value)}") from None
        return from_json(parsed)

    return from_text, from_json


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



__all__ = ["Change", "RowParser", "parse_row"]
