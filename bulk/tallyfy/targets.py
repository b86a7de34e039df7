"""The targets a row can name (runs, templates) and the fields each one may change.

The API silently drops keys it does not know and still answers 200, so every column is checked
against the target's updatable fields before anything is sent (``check_columns``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from bulk.engine.errors import InputError

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
#: `expect.FIELD` columns (or a JSONL `expect` object) hold the value a field must have now
#: for the row to be written; `clear` lists fields to empty (set to null).
EXPECT, EXPECT_PREFIX = "expect", "expect."
CLEAR = "clear"

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
    required_on_put: tuple[str, ...] = ()

    def columns(self) -> tuple[str, ...]:
        """Every column name this target accepts, kick-off columns aside."""
        return (*self.id_columns, *self.fields, *MEMBERSHIP_COLUMNS)



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
    prerun_keys: dict[str, dict[str, str]] = {"": {}, EXPECT_PREFIX: {}}
    for column in columns:
        if column in known or column in (EXPECT, CLEAR):
            continue
        # `expect.FIELD` names the value a field must have for the row to be written.
        prefix = EXPECT_PREFIX if column.startswith(EXPECT_PREFIX) else ""
        name = column[len(prefix) :]
        if prefix and name in target.fields:
            continue
        if name.startswith(PRERUN_PREFIX) and PRERUN in target.fields:
            key = name[len(PRERUN_PREFIX) :].lower()
            seen = prerun_keys[prefix]
            if not HEX32(key):
                unknown.append(
                    f'"{column}" (kick-off columns are {prefix}prerun.<32-hex timeline_id>)'
                )
            elif key in seen:
                raise InputError(
                    f'{source}: columns "{seen[key]}" and "{column}" '
                    "name the same kick-off field"
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


__all__ = [
    "BOOL",
    "CLEAR",
    "EXPECT",
    "EXPECT_PREFIX",
    "GROUPS",
    "HEX32",
    "MEMBERSHIP_COLUMNS",
    "PRERUN",
    "PRERUN_PREFIX",
    "RUNS",
    "STRINGS",
    "TARGETS",
    "TEMPLATES",
    "TEXT",
    "URL",
    "USER",
    "USERS",
    "FieldSpec",
    "Target",
    "check_columns",
]
