"""The targets a row can name (runs, templates, tasks) and the fields each one may change.

A target is a spec, not a fork of the applier: it says how a row's ids become the record's
path, which membership lists every PUT re-sends and where they live in the record, which
fields every PUT re-sends, and the name of its keyed values object (`prerun`, `taskdata`).

The API silently drops keys it does not know and still answers 200, so every column is checked
against the target's updatable fields before anything is sent (``check_columns``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bulk.engine.errors import InputError
from bulk.tallyfy.shapes import view_record

# Field kinds: each has a converter from CSV text and one from a JSON value.
TEXT = "text"
BOOL = "bool"
USER = "user"  # a user id
URL = "url"
USERS = "users"  # a whole list of user ids (replaces the current members)
GROUPS = "groups"  # a whole list of group ids (replaces the current groups)
GUESTS = "guests"  # a whole list of guest emails (task assignees)
DATETIME = "datetime"  # an ISO-8601 date-time
COUNT = "count"  # a non-negative integer
STRINGS = "strings"  # a list of strings
PRERUN = "prerun"  # an object keyed by field id (a run's kick-off values, a task's taskdata)

ADD_USERS, REMOVE_USERS = "add_users", "remove_users"
ADD_GROUPS, REMOVE_GROUPS = "add_groups", "remove_groups"
MEMBERSHIP_COLUMNS = (ADD_USERS, REMOVE_USERS, ADD_GROUPS, REMOVE_GROUPS)
PRERUN_PREFIX = "prerun."
#: The keyed values objects of the targets, by field name (each of kind PRERUN).
KEYED_FIELDS = ("prerun", "taskdata")
#: `expect.FIELD` columns (or a JSONL `expect` object) hold the value a field must have now
#: for the row to be written; `clear` lists fields to empty (set to null).
EXPECT, EXPECT_PREFIX = "expect", "expect."
CLEAR = "clear"
#: `ref.NAME` columns (a JSONL `ref` object) are for people, to tell rows apart (select
#: writes the record's name or title there): every apply ignores them, whatever they hold.
REF, REF_PREFIX = "ref", "ref."


def is_reference(column: str) -> bool:
    return column == REF or column.startswith(REF_PREFIX)

HEX32 = re.compile(r"[0-9a-f]{32}").fullmatch


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
    #: The id column `bulk select` and `bulk undo` write (one of `id_columns`).
    id_column: str
    #: What a person calls a record: `--name` filters on it; shown beside its id (select's
    #: ref. column, the ledger).
    name_field: str
    #: What a select without --set or --columns writes as expect.* columns.
    select_columns: tuple[str, ...]
    #: Fields a read returns that no PUT changes: usable in `--where` and `{placeholders}`.
    read_only: tuple[str, ...]
    required_on_put: tuple[str, ...] = ()
    #: The lists every PUT re-sends whole (an absent one is wiped), merged with the row.
    membership: tuple[str, ...] = ("users", "groups")
    #: Where those lists live: at the top of the record (None), or inside this object, which
    #: a PUT then sends whole (tasks: `owners`).
    membership_object: str | None = None
    #: A column naming the record's parent (tasks: `run_id`; empty for a one-off task).
    parent_column: str | None = None
    #: A record with this status is left alone unless the job says otherwise.
    done_status: str | None = None
    #: A change that would leave every membership list empty is refused for the row.
    needs_someone: bool = False
    #: The organization-wide list the job's preflight asks one item of (default: `path`;
    #: tasks have no such list, and the runs list checks the same URL, token and org).
    list_path: str | None = None
    #: What a read of one record asks for besides the record (tasks: its form fields, the
    #: only place the ids of unanswered fields show).
    read_query: tuple[tuple[str, str], ...] = ()
    #: Fields a write's answer never shows, changed or not (a task PUT answer omits
    #: `summary`): see ``not_shown``.
    unechoed: tuple[str, ...] = ()

    @property
    def preflight_path(self) -> str:
        return self.list_path or self.path

    def columns(self) -> tuple[str, ...]:
        """Every column name this target accepts, keyed-value columns aside."""
        parent = (self.parent_column,) if self.parent_column else ()
        return (*self.id_columns, *parent, *self.fields, *self.delta_columns())

    def delta_columns(self) -> tuple[str, ...]:
        """`add_users`, `remove_users`, ... for each membership list."""
        return tuple(f"{op}_{name}" for name in self.membership for op in ("add", "remove"))

    @property
    def keyed(self) -> str | None:
        """The keyed values field (`prerun`, `taskdata`), if the target has one."""
        return next((s.name for s in self.fields.values() if s.kind == PRERUN), None)

    def is_keyed_column(self, name: str) -> bool:
        """`prerun.<id>` for runs, `taskdata.<id>` for tasks."""
        keyed = self.keyed
        return keyed is not None and name.startswith(keyed + ".")

    def record_path(self, record_id: str) -> tuple[str, ...]:
        """The API path segments of one record (a task's id may be `run_id/task_id`)."""
        parent, _, own = record_id.rpartition("/")
        if self.parent_column and parent:
            return ("runs", parent, self.path, own)
        return (self.path, own)

    @staticmethod
    def answer_id(record_id: str) -> str:
        """The `id` the record's own answer shows."""
        return record_id.rpartition("/")[2]

    def view(self, record: Any) -> Any:
        """The record as plans and filters read it, whatever shape production sent: its
        membership lists at the top, as ids (never objects), form fields read (shapes.py)."""
        if not isinstance(record, dict):
            return record
        return view_record(record, self.membership, self.membership_object)

    def not_shown(self, answer: Any, names: Sequence[str]) -> list[str]:
        """The fields (as `shown_fields` names them) a write's answer does not show.

        The one place that decides it: a field absent or null in the answer, or one this
        target's answers never show (`unechoed`), whatever the answer holds for it. Such an
        answer is no evidence either way: the row reads the record back; it never counts
        the field as "not applied".
        """
        record = answer if isinstance(answer, dict) else {}
        return [name for name in names
                if name in self.unechoed or record.get(name) is None]

    def nest(self, body: dict[str, Any]) -> dict[str, Any]:
        """A PUT body with the membership lists where the API wants them (all of them)."""
        if self.membership_object is None:
            return body
        inner = {name: body.pop(name) for name in self.membership}
        body[self.membership_object] = inner
        return body

    def name_of(self, record: Any) -> str | None:
        """The record's name or title, if it has one that is text."""
        name = record.get(self.name_field) if isinstance(record, dict) else None
        return name if isinstance(name, str) else None

    def shown_fields(self, names: Sequence[str]) -> tuple[str, ...]:
        """What an answer must show for these (flat) fields."""
        if self.membership_object is None:
            return tuple(names)
        out = [self.membership_object if name in self.membership else name for name in names]
        return tuple(dict.fromkeys(out))



def _fields(*specs: FieldSpec) -> Mapping[str, FieldSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


_MEMBERS = (FieldSpec("users", USERS), FieldSpec("groups", GROUPS))

RUNS = Target(
    name="runs",
    path="runs",
    id_columns=("id", "run_id"),
    id_column="run_id",
    name_field="name",
    select_columns=("name", "owner_id", "users", "groups"),
    read_only=("id", "increment_id", "status", "checklist_id", "checklist_title", "started_by",
               "created_at", "started_at", "last_updated", "completed_at", "archived_at"),
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
    id_column="checklist_id",
    name_field="title",
    select_columns=("title", "owner_id", "users", "groups"),
    read_only=("id", "created_at", "last_updated", "archived_at"),
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

# Tasks: `owners` {users, guests, groups} replaces all three lists on a PUT, and one-off
# tasks refuse an update without title, deadline and owners: all are always sent.
TASKS = Target(
    name="tasks",
    path="tasks",
    list_path="runs",
    id_columns=("task_id",),
    id_column="task_id",
    name_field="title",
    select_columns=("title", "users", "guests", "groups"),
    read_only=("id", "run_id", "checklist_id", "status", "position", "is_oneoff_task",
               "completed_at", "created_at", "last_updated"),
    fields=_fields(
        FieldSpec("title", TEXT, max_length=600, non_empty=True),
        FieldSpec("summary", TEXT),
        FieldSpec("deadline", DATETIME),
        FieldSpec("started_at", DATETIME),
        FieldSpec("top_secret", BOOL),
        FieldSpec("webhook", URL),
        FieldSpec("prevent_guest_comment", BOOL),
        FieldSpec("max_assignable", COUNT),
        FieldSpec("users", USERS),
        FieldSpec("guests", GUESTS),
        FieldSpec("groups", GROUPS),
        FieldSpec("taskdata", PRERUN),
    ),
    required_on_put=("title", "deadline"),
    membership=("users", "guests", "groups"),
    membership_object="owners",
    parent_column="run_id",
    done_status="completed",
    needs_someone=True,
    read_query=(("with", "form_fields"),),
    unechoed=("summary",),
)

TARGETS: dict[str, Target] = {"runs": RUNS, "templates": TEMPLATES, "tasks": TASKS}


# -- columns ----------------------------------------------------------------------------------


def check_columns(target: Target, columns: Sequence[str], source: str) -> str:
    """Refuse, before any request, columns the target does not have; return the id column.

    Raises InputError naming every unknown column (with the closest known name when there is
    one), and when there is no id column or more than one.
    """
    known = target.columns()
    unknown: list[str] = []
    prerun_keys: dict[str, dict[str, str]] = {"": {}, EXPECT_PREFIX: {}}
    for column in columns:
        if column in known or column in (EXPECT, CLEAR) or is_reference(column):
            continue
        # `expect.FIELD` names the value a field must have for the row to be written.
        prefix = EXPECT_PREFIX if column.startswith(EXPECT_PREFIX) else ""
        name = column[len(prefix) :]
        if prefix and name in target.fields:
            continue
        if target.is_keyed_column(name):
            key = name[len(f"{target.keyed}.") :].lower()
            seen = prerun_keys[prefix]
            what = "kick-off" if target.keyed == PRERUN else "form"
            key_name = "timeline_id" if target.keyed == PRERUN else "field id"
            if not HEX32(key):
                unknown.append(f'"{column}" ({what} columns are '
                               f"{prefix}{target.keyed}.<32-hex {key_name}>)")
            elif key in seen:
                raise InputError(
                    f'{source}: columns "{seen[key]}" and "{column}" '
                    f"name the same {what} field"
                )
            else:
                seen[key] = column
            continue
        suggestions = [prefix + field for field in target.fields] if prefix else known
        unknown.append(_describe_unknown(target, column, suggestions))
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
    if target.membership_object and column.strip().lower() == target.membership_object:
        lists = ", ".join(target.membership)
        return (f'"{column}" (give {lists} to replace a list, or add_/remove_ columns; the '
                f"whole {column} object is always sent)")
    for other in TARGETS.values():
        kick_off = other.is_keyed_column(column)
        if other is not target and (column in other.columns() or kick_off):
            return f'"{column}" (a {other.name} column: is the target right?)'
    lowered = {name.lower(): name for name in known}
    match = lowered.get(column.strip().lower())
    if match is None:
        close = difflib.get_close_matches(column.strip().lower(), list(lowered), n=1)
        match = lowered[close[0]] if close else None
    return f'"{column}" (did you mean "{match}"?)' if match else f'"{column}"'


__all__ = [
    "BOOL",
    "CLEAR",
    "COUNT",
    "DATETIME",
    "EXPECT",
    "EXPECT_PREFIX",
    "GROUPS",
    "GUESTS",
    "HEX32",
    "KEYED_FIELDS",
    "MEMBERSHIP_COLUMNS",
    "PRERUN",
    "PRERUN_PREFIX",
    "REF",
    "REF_PREFIX",
    "RUNS",
    "STRINGS",
    "TARGETS",
    "TASKS",
    "TEMPLATES",
    "TEXT",
    "URL",
    "USER",
    "USERS",
    "FieldSpec",
    "Target",
    "check_columns",
    "is_reference",
]
