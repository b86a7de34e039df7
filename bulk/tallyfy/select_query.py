"""What `bulk select` asks for, checked before any request: filters, `--where`, `--set`, columns.

Every filter is applied here, on the record itself, even when the list API was asked to
narrow the pages too: the API's own filters do not mean what ours say (`owners=` also
matches members and task assignees, `q=` may match more than the name), so the output holds
exactly what the filters say.

`--set FIELD=VALUE` makes the output a ready input for `bulk apply`: the VALUE (which may use
the record's current fields, `{name}`) goes in a FIELD column, and for every field it replaces
the record's current value goes in an `expect.FIELD` column, so a record someone changes
between select and apply is left alone (`conflict`). Membership deltas (`add_users` ...)
merge with whatever the record holds then, so they need no expectation.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bulk.engine.errors import BadValue, ConfigError
from bulk.tallyfy.compare import same_value
from bulk.tallyfy.expect import expect_converters
from bulk.tallyfy.select_cells import (
    KEYED_PREFIXES,
    cell_text,
    current_value,
    fill,
    placeholders,
)
from bulk.tallyfy.targets import (
    EXPECT_PREFIX,
    HEX32,
    PRERUN,
    REF,
    REF_PREFIX,
    Target,
)
from bulk.tallyfy.task_filters import status_matches, task_options_problem, task_statuses
from bulk.tallyfy.values import (
    Converter,
    Email,
    converters_for,
    delta_converters,
    prerun_value_text,
)


class SelectError(ConfigError):
    """A select that cannot go on (a bad option, or a --set value a record cannot take)."""


@dataclass(frozen=True)
class SetColumn:
    """One `--set FIELD=VALUE`: the column it fills and how its value is made and checked."""

    column: str  # the input column: a field, a membership delta or prerun.<timeline_id>
    template: str  # VALUE as given; {field} placeholders filled from the record
    from_text: Converter  # the field's own typing, as `bulk apply` will type the cell
    expect: str | None  # the expect.* key guarding it (None for membership deltas)
    placeholders: tuple[str, ...] = ()

    def value(self, record: dict[str, Any]) -> tuple[str, Any]:
        """(the cell text, the typed value) for one record. Raises BadValue."""
        text = fill(self.template, record) if self.placeholders else self.template
        if not text.strip():
            raise BadValue("the value is empty (an empty cell would mean 'leave unchanged')")
        typed = self.from_text(text)
        return text, list(typed) if isinstance(typed, tuple) else typed


@dataclass(frozen=True)
class Where:
    field: str
    text: str  # as given
    typed: Any  # for fields of the target: typed as the field; else the text itself

    def matches(self, record: dict[str, Any]) -> bool:
        current = current_value(record, self.field)
        if self.text == "":
            return current is None or current == "" or current == []
        if self.field.startswith(KEYED_PREFIXES):
            return current == self.typed
        if self.typed is not self.text or isinstance(current, str):
            return same_value(self.field, current, self.typed)
        return cell_text(current) == self.text


@dataclass
class Selection:
    """Filters, --where, --set and --columns of one select, all checked."""

    target: Target
    owner: int | None = None
    member: int | None = None
    group: str | None = None
    statuses: tuple[str, ...] = ()
    template: str | None = None
    name: str | None = None
    where: list[Where] = field(default_factory=list)
    sets: list[SetColumn] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # expect.* columns, in order
    assignee: int | None = None  # tasks: a user id in the task's assignees
    run: str | None = None  # tasks: of this run only

    @property
    def id_column(self) -> str:
        return self.target.id_column

    def id_cells(self, record: dict[str, Any]) -> dict[str, Any]:
        """The address columns of one record (a task: run_id, empty for a one-off, task_id)."""
        cells = {self.id_column: record["id"]}
        parent = self.target.parent_column
        return {parent: record.get(parent) or "", **cells} if parent else cells

    def list_segments(self) -> tuple[str, ...]:
        """The list to page through: the target's own, or a run's or a member's tasks."""
        if self.target.name != "tasks":
            return (self.target.path,)
        if self.run:
            return ("runs", self.run, "tasks")
        return ("users", str(self.assignee), "tasks")

    def needed(self) -> set[str]:
        """Record keys the filters and the output read (a list item lacking one is re-read)."""
        keys = {"id", self.target.name_field, *self.columns, *(w.field for w in self.where)}
        for item in self.sets:
            keys.update(item.placeholders)
            if item.expect:
                keys.add(item.expect)
        if self.owner is not None:
            keys.add("owner_id")
        if self.member is not None:
            keys.add("users")
        if self.group is not None:
            keys.add("groups")
        if self.statuses:
            keys.add("status")
        if self.template:
            keys.add("checklist_id")
        if self.name is not None:
            keys.add(self.target.name_field)
        if self.assignee is not None:
            keys.add("users")
        found = {key.partition(".")[0] if key.startswith(KEYED_PREFIXES) else key
                 for key in keys}
        if self.target.read_query and self.target.keyed in found:
            # A task's answers are typed by its form fields (option texts), which only a
            # read asked `with=form_fields` shows.
            found.add("form_fields")
        return found

    def api_params(self) -> dict[str, str]:
        """What the list endpoint may narrow by (every filter is still applied locally)."""
        params: dict[str, str] = {}
        if self.target.name == "tasks":
            # The member's (or run's) task list; status= narrows the same way ours does.
            if self.run and self.assignee is not None:
                params["owners"] = str(self.assignee)
            if self.statuses:
                params["status"] = ",".join(self.statuses)
            if "form_fields" in self.needed():
                params.update(self.target.read_query)  # saves a read per task
            return params
        if self.target.name == "runs":
            # owners= matches the owner, any member and any task assignee: wider than either
            # filter, so it narrows the pages without losing a record.
            who = self.owner if self.owner is not None else self.member
            if who is not None:
                params["owners"] = str(who)
            if self.statuses:
                params["status"] = ",".join(self.statuses)
            if self.template:
                params["checklist_id"] = self.template
        elif self.owner is not None:
            params["owner_id"] = str(self.owner)
        if self.name:
            params["q"] = self.name
        return params

    def matches(self, record: dict[str, Any]) -> bool:
        if self.owner is not None and not same_value("owner_id", record.get("owner_id"),
                                                     self.owner):
            return False
        if self.member is not None and not _has_user(record.get("users"), self.member):
            return False
        if self.group is not None and self.group not in (record.get("groups") or ()):
            return False
        if self.statuses and not self._status_ok(record.get("status")):
            return False
        if self.assignee is not None and not _has_user(record.get("users"), self.assignee):
            return False
        if self.run and record.get("run_id") != self.run:
            return False
        if self.template and record.get("checklist_id") != self.template:
            return False
        if self.name is not None:
            title = record.get(self.target.name_field)
            if not isinstance(title, str) or self.name.lower() not in title.lower():
                return False
        return all(where.matches(record) for where in self.where)

    def _status_ok(self, status: Any) -> bool:
        # Tasks also take "active" (not completed) and "all"; runs' statuses are exact.
        if self.target.name == "tasks":
            return status_matches(status, self.statuses)
        return status in self.statuses

    def header(self) -> list[str]:
        expects = self.expect_keys()
        parent = [self.target.parent_column] if self.target.parent_column else []
        return [*parent, self.id_column, self.ref_column, *(s.column for s in self.sets),
                *(EXPECT_PREFIX + key for key in expects)]

    @property
    def ref_column(self) -> str:
        """`ref.name` (runs) or `ref.title`: the record's name, for people; apply ignores it."""
        return REF_PREFIX + self.target.name_field

    def ref_cells(self, record: dict[str, Any], *, typed: bool) -> dict[str, Any]:
        """The reference column's cell (CSV) or object (JSONL) of one record."""
        name = self.target.name_of(record)
        if typed:
            return {REF: {self.target.name_field: name}}
        return {self.ref_column: cell_text(name)}

    def expect_keys(self) -> list[str]:
        keys = [s.expect for s in self.sets if s.expect]
        return list(dict.fromkeys([*keys, *self.columns]))


def build_selection(
    target: Target,
    *,
    owner: int | None = None,
    member: int | None = None,
    group: str | None = None,
    statuses: Sequence[str] = (),
    template: str | None = None,
    name: str | None = None,
    where: Sequence[str] = (),
    sets: Sequence[str] = (),
    columns: str | None = None,
    assignee: int | None = None,
    run: str | None = None,
) -> Selection:
    """Check every option; raise SelectError (one line) for the first bad one."""
    runs_only = {"--status": statuses, "--template": template}
    if target.name == "templates":
        for flag, value in runs_only.items():
            if value:
                raise SelectError(f"{flag} applies to runs only (templates have no {flag[2:]})")
    if target.name == "tasks":
        problem = task_options_problem(owner, member, assignee, run)
        if problem:
            raise SelectError(problem)
        statuses = task_statuses(statuses)
    else:
        for flag, value in {"--assignee": assignee, "--run": run}.items():
            if value is not None:
                raise SelectError(f"{flag} applies to tasks only")
    if run is not None and not HEX32(run.strip().lower()):
        raise SelectError(f"--run {run!r}: a run id is 32 hex characters")
    if group is not None and not HEX32(group.strip().lower()):
        raise SelectError(f"--group {group!r}: a group id is 32 hex characters")
    if template is not None and not HEX32(template.strip().lower()):
        raise SelectError(f"--template {template!r}: a template id is 32 hex characters")
    selection = Selection(
        target, owner=owner, member=member,
        group=group.strip().lower() if group else None,
        statuses=tuple(statuses), template=template.strip().lower() if template else None,
        name=name or None, assignee=assignee, run=run.strip().lower() if run else None,
    )
    selection.where = [_where(target, text) for text in where]
    selection.sets = _sets(target, sets)
    if columns is not None:
        selection.columns = _columns(target, columns)
    elif not sets:
        selection.columns = list(target.select_columns)
    return selection


def _split(flag: str, text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise SelectError(f"{flag} {text!r}: expected FIELD=VALUE")
    return name.strip(), value


def readable(target: Target) -> list[str]:
    return [*target.fields, *target.read_only]


def _check_readable(target: Target, flag: str, name: str) -> None:
    if target.is_keyed_column(name):
        if HEX32(name.partition(".")[2]):
            return
        if target.keyed == PRERUN:
            raise SelectError(f"{flag} {name!r}: kick-off fields are prerun.<32-hex timeline_id>")
        raise SelectError(f"{flag} {name!r}: form fields are {target.keyed}.<32-hex field id>")
    known = readable(target)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise SelectError(f'{flag}: "{name}" is not a field of {target.name}{hint}')


def _where(target: Target, text: str) -> Where:
    name, value = _split("--where", text)
    _check_readable(target, "--where", name)
    spec = target.fields.get(name)
    if value == "" or spec is None or spec.kind == PRERUN:
        typed: Any = prerun_value_text(value) if target.is_keyed_column(name) else value
        return Where(name, value, typed)
    try:
        typed = expect_converters(spec)[0](value)
    except BadValue as exc:
        raise SelectError(f"--where {name}={value}: {exc}") from None
    if any(isinstance(item, Email) for item in (typed if isinstance(typed, list) else [typed])):
        # Records hold ids; an email here would quietly match nothing.
        raise SelectError(f"--where {name}={value}: give user ids here (--owner, --member and "
                          "--assignee take emails)")
    return Where(name, value, typed)


def _sets(target: Target, texts: Sequence[str]) -> list[SetColumn]:
    out: dict[str, SetColumn] = {}
    for text in texts:
        name, value = _split("--set", text)
        if name in out:
            raise SelectError(f"--set {name}: given twice")
        if name in target.delta_columns():
            convert, expect = delta_converters(name.partition("_")[2])[0], None
        elif target.is_keyed_column(name):
            _check_readable(target, "--set", name)
            name = name.lower()
            convert, expect = prerun_value_text, name
        elif name in target.fields and target.fields[name].kind != PRERUN:
            convert, expect = converters_for(target.fields[name])[0], name
        else:
            known = [*target.fields, *target.delta_columns()]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise SelectError(f'--set: "{name}" is not a field {target.name} can change{hint}')
        try:
            named = placeholders(value)
        except ValueError as exc:
            raise SelectError(f"--set {name}: {exc}") from None
        for placeholder in named:
            _check_readable(target, f"--set {name}: placeholder", placeholder)
        column = SetColumn(name, value, convert, expect, named)
        if not named:  # a fixed value is checked now, before any request
            try:
                column.value({})
            except BadValue as exc:
                raise SelectError(f"--set {name}={value}: {exc}") from None
        out[name] = column
    _refuse_contradictions(target, out)
    return list(out.values())


def _refuse_contradictions(target: Target, sets: dict[str, SetColumn]) -> None:
    """Pairs that `bulk apply` would refuse in every row, refused here before any request
    (the rows would all be `invalid`)."""
    for whole in target.membership:
        add, remove = f"add_{whole}", f"remove_{whole}"
        for delta in (add, remove):
            if whole in sets and delta in sets:
                raise SelectError(f"--set {whole} and --set {delta} cannot go together "
                                  f'("{whole}" replaces the whole list)')
        if add in sets and remove in sets:
            both = _fixed_ids(sets[add]) & _fixed_ids(sets[remove])
            if both:
                raise SelectError(f"--set {add} and --set {remove}: "
                                  f"{', '.join(sorted(both))} both added and removed")


def _fixed_ids(column: SetColumn) -> set[str]:
    """The ids a fixed-value membership column names (none when it uses placeholders)."""
    if column.placeholders:
        return set()
    typed = column.value({})[1]
    return {str(item) for item in typed} if isinstance(typed, list | tuple) else set()


def _columns(target: Target, text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise SelectError("--columns: no field named (give f1,f2,...)")
    for name in names:
        if target.is_keyed_column(name):
            _check_readable(target, "--columns", name)
            continue
        if name not in target.fields or target.fields[name].kind == PRERUN:
            close = difflib.get_close_matches(name, list(target.fields), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise SelectError(
                f'--columns: "{name}" is not a field {target.name} can change{hint}')
    return list(dict.fromkeys(name.lower() if target.is_keyed_column(name) else name
                              for name in names))


def _has_user(users: Any, user_id: int) -> bool:
    return isinstance(users, list) and any(same_value("owner_id", u, user_id) for u in users)
