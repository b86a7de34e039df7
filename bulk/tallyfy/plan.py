"""Turn (current record, requested change) into a PUT body that is safe to send.

This is where the API's hazards are handled, once:
- `users` and `groups` are ALWAYS in the body, taken from the record just read and
  merged with the row's changes, because a body without them wipes every member;
- templates always carry `title`, because the API refuses a PUT without it;
- if the read did not return both membership lists, nothing is sent at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bulk.tallyfy.targets import Target

if TYPE_CHECKING:  # fields.py needs this module (through expect.py) at import time
    from bulk.tallyfy.fields import Change

MEMBERSHIP = ("users", "groups")


class PlanError(Exception):
    """The row cannot be applied safely to this record; nothing is sent."""


@dataclass(frozen=True)
class Plan:
    body: dict[str, Any]  # the whole PUT body
    before: dict[str, Any]  # changed fields as they are now
    after: dict[str, Any]  # changed fields as they will be


def _user_id(value: Any) -> Any:
    # Newer docs send user ids as strings, older ones and the SDK as integers:
    # compare them as one kind, and send what the record used.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _same(field: str, current: Any, wanted: Any) -> bool:
    if field in ("users", "publicly_hidden_fields", "tags", "folders", "groups"):
        if isinstance(current, list) and isinstance(wanted, list):
            norm = _user_id if field == "users" else (lambda v: v)
            return sorted(map(str, map(norm, current))) == sorted(map(str, map(norm, wanted)))
    if field == "owner_id":
        return _user_id(current) == _user_id(wanted)
    return current == wanted


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


def _prerun_values(prerun: Any) -> dict[str, Any] | None:
    """The record's kick-off values keyed by timeline_id, whatever shape they came in."""
    if isinstance(prerun, dict):
        return prerun
    if isinstance(prerun, list):
        values = {}
        for item in prerun:
            if isinstance(item, dict) and "timeline_id" in item:
                values[item["timeline_id"]] = item.get("value")
        return values
    return None


#: Shared with the expectation check (expect.py), which compares exactly as the plan does.
same_value = _same
prerun_values = _prerun_values


def plan_update(target: Target, record: Any, change: Change) -> Plan | None:
    """The PUT to send, or None when the record already is as the row asks."""
    if not isinstance(record, dict):
        raise PlanError("the read returned no record; nothing sent")
    missing = [name for name in MEMBERSHIP if not isinstance(record.get(name), list)]
    if missing:
        raise PlanError(
            f"the read did not return {' and '.join(missing)}; nothing sent "
            "(a PUT without them would remove every member)"
        )
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}

    for field, wanted in change.set.items():
        if field in MEMBERSHIP:
            continue
        current = record.get(field)
        if not _same(field, current, wanted):
            before[field] = current
            after[field] = wanted

    memberships = {
        "users": _merged(record["users"], change.set.get("users"), change.add_users,
                         change.remove_users, lambda v: str(_user_id(v))),
        "groups": _merged(record["groups"], change.set.get("groups"), change.add_groups,
                          change.remove_groups, str),
    }
    for field, merged in memberships.items():
        if not _same(field, record[field], merged):
            before[field] = record[field]
            after[field] = merged

    if change.prerun:
        current_prerun = _prerun_values(record.get("prerun"))
        if current_prerun is None:
            raise PlanError("the read did not return the kick-off (prerun) values; nothing sent")
        unknown = sorted(set(change.prerun) - set(current_prerun))
        if unknown:
            raise PlanError(
                f"no kick-off field {', '.join(unknown)} on this record; nothing sent "
                "(the API would drop it silently)"
            )
        changed = {
            key: value for key, value in change.prerun.items() if current_prerun[key] != value
        }
        if changed:
            before["prerun"] = {key: current_prerun[key] for key in changed}
            after["prerun"] = changed

    if not after:
        return None
    body = {name: value for name, value in after.items() if name not in MEMBERSHIP}
    body["users"] = memberships["users"]
    body["groups"] = memberships["groups"]
    for name in target.required_on_put:
        if name not in body:
            if record.get(name) is None:
                raise PlanError(f"the read did not return {name}, which every PUT needs")
            body[name] = record[name]
    return Plan(body=body, before=before, after=after)


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
        if field == "prerun":
            current = _prerun_values(written.get("prerun"))
            if current is not None and any(current.get(k) != v for k, v in wanted.items()):
                wrong.append("prerun")
        elif field in written and not _same(field, written[field], wanted):
            wrong.append(field)
    return wrong
