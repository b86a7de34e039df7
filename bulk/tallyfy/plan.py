"""Turn (current record, requested change) into a PUT body that is safe to send.

This is where the API's hazards are handled, once:
- `users` and `groups` are ALWAYS in the body, taken from the record just read and
  merged with the row's changes, because a body without them wipes every member;
  a task's `owners` is always sent whole, all three lists (users, guests, groups);
- templates always carry `title`, tasks `title` and `deadline`, because the API refuses
  (one-off tasks) or may refuse a PUT without them;
- if the read did not return every membership list, nothing is sent at all;
- a completed task is left alone unless the job says otherwise, and a change that would
  leave a task with nobody assigned is refused.

Records reach here flat (``Target.view``): a task's assignee lists at the top, like a run's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bulk.engine.errors import PlanError
from bulk.tallyfy import form_values
from bulk.tallyfy.compare import member_key, prerun_values, same_value
from bulk.tallyfy.rows import Change
from bulk.tallyfy.shapes import fields_by_id
from bulk.tallyfy.targets import KEYED_FIELDS, Target


class InvalidHere(PlanError):
    """The row asks for something this record cannot take: the row is invalid."""


class NobodyLeft(InvalidHere):
    """The change would leave the record with no assignee at all: the row is invalid."""


class UnknownOption(InvalidHere):
    """A form field choice (dropdown, radio, multi-select) the field does not offer."""


class LeftAlone(PlanError):
    """The record is done (a completed task) and the job did not ask to change done ones."""


@dataclass(frozen=True)
class Plan:
    body: dict[str, Any]  # the whole PUT body
    before: dict[str, Any]  # changed fields as they are now
    after: dict[str, Any]  # changed fields as they will be
    #: The record's form fields by id (tasks read with them): how their values compare.
    form_fields: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _merged(current: list[Any], replace: list[Any] | None, add: tuple[Any, ...],
            remove: tuple[Any, ...], norm: Any) -> list[Any]:
    base = list(current if replace is None else replace)
    seen = {norm(v) for v in base}
    for value in add:
        if norm(value) not in seen:
            base.append(value)
            seen.add(norm(value))
    dropped = {norm(v) for v in remove}
    return [v for v in base if norm(v) not in dropped]


def plan_update(target: Target, record: Any, change: Change, *,
                include_done: bool = False) -> Plan | None:
    """The PUT to send, or None when the record already is as the row asks."""
    if not isinstance(record, dict):
        raise PlanError("the read returned no record; nothing sent")
    lists = target.membership
    missing = [name for name in lists if not isinstance(record.get(name), list)]
    if missing:
        where = f" (in {target.membership_object})" if target.membership_object else ""
        raise PlanError(
            f"the read did not return {' and '.join(missing)}{where}; nothing sent "
            "(a PUT without them would remove every member)"
        )
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}

    for field, wanted in change.set.items():
        if field in lists:
            continue
        current = record.get(field)
        if not same_value(field, current, wanted):
            before[field] = current
            after[field] = wanted

    memberships = {
        name: _merged(record[name], change.set.get(name), *change.delta(name), member_key(name))
        for name in lists
    }
    for field, merged in memberships.items():
        if not same_value(field, record[field], merged):
            before[field] = record[field]
            after[field] = merged

    fields = fields_by_id(record) or {}
    if change.prerun:
        keyed = target.keyed or "prerun"
        what = "kick-off" if keyed == "prerun" else "form"
        current_prerun = prerun_values(record.get(keyed))
        if current_prerun is None and fields:
            current_prerun = {}  # no answered field yet
        if current_prerun is None:
            raise PlanError(f"the read did not return the {what} ({keyed}) values; nothing sent")
        # A task's fields are those its read lists (`with=form_fields`): its taskdata holds
        # only the answered ones.
        unknown = sorted(set(change.prerun) - set(current_prerun) - set(fields))
        if unknown:
            raise PlanError(
                f"no {what} field {', '.join(unknown)} on this record; nothing sent "
                "(the API would drop it silently)"
            )
        changed = {}
        for key, value in change.prerun.items():
            try:
                sent = form_values.to_send(fields.get(key), value)
            except form_values.UnknownOption as exc:
                raise UnknownOption(str(exc)) from None
            if not form_values.same(fields.get(key), current_prerun.get(key), sent):
                changed[key] = sent
        if changed:
            before[keyed] = {key: current_prerun.get(key) for key in changed}
            after[keyed] = changed

    if not after:
        return None
    if target.done_status and record.get("status") == target.done_status and not include_done:
        raise LeftAlone(
            f"the {target.name[:-1]} is {target.done_status}; left alone, nothing sent "
            "(changing finished work changes history; --include-completed to do it anyway)"
        )
    had_someone = any(record[name] for name in lists)
    if target.needs_someone and had_someone and not any(memberships.values()):
        # Only a change that empties assignees who were there: a task nobody is assigned
        # to may still get a new title or deadline.
        raise NobodyLeft(
            f"this change would leave the {target.name[:-1]} with nobody assigned "
            f"(no {', '.join(lists[:-1])} or {lists[-1]}); nothing sent"
        )
    body = {name: value for name, value in after.items() if name not in lists}
    for name in lists:
        body[name] = memberships[name]
    for name in target.required_on_put:
        if name not in body:
            if record.get(name) is None:
                raise PlanError(f"the read did not return {name}, which every PUT needs")
            body[name] = record[name]
    return Plan(body=target.nest(body), before=before, after=after, form_fields=fields)


def unapplied(plan: Plan, written: Any) -> list[str]:
    """Fields the server's answer shows were not applied (it drops what it ignores).

    Only values are compared here: an answer that is not this record, or lacks a
    changed field, never gets this far (the client raises AmbiguousAnswer for it, and
    the row is read back rather than counted as written).
    """
    if not isinstance(written, dict):
        return []
    wrong = []
    for field, wanted in plan.after.items():
        if field in KEYED_FIELDS:
            current = prerun_values(written.get(field))
            if current is not None and any(
                    not form_values.same(plan.form_fields.get(k), current.get(k), v)
                    for k, v in wanted.items()):
                wrong.append(field)
        elif field in written and not same_value(field, written[field], wanted):
            wrong.append(field)
    return wrong
