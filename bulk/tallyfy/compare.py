"""How two values of a field are compared, the same way everywhere: when planning a PUT
(plan.py), checking a row's expect.* (expect.py), and filtering a select (select_query.py).

The API may answer a value in another spelling than the one sent: user ids as strings or
integers, guests' emails in any case, date-times with Z or +00:00, lists in any order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _user_id(value: Any) -> Any:
    # Newer docs send user ids as strings, older ones and the SDK as integers:
    # compare them as one kind, and send what the record used.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _guest(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _moment(value: Any) -> Any:
    # The API may answer a date-time in another spelling than the one sent (Z, +00:00, .000)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        # The older pages' "YYYY-MM-DD HH:MM:SS" carries no zone: the API reads it as UTC.
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value


_NORMS = {"users": _user_id, "guests": _guest}


def member_key(name: str) -> Any:
    """How two members of one list are told apart (user ids as numbers, guests sans case)."""
    norm = _NORMS.get(name)
    return (lambda value: str(norm(value))) if norm else str


def same_value(field: str, current: Any, wanted: Any) -> bool:
    """Whether the record's `current` value already is the `wanted` one."""
    if field in ("users", "publicly_hidden_fields", "tags", "folders", "groups", "guests"):
        if isinstance(current, list) and isinstance(wanted, list):
            norm = _NORMS.get(field, lambda v: v)
            return sorted(map(str, map(norm, current))) == sorted(map(str, map(norm, wanted)))
    if field == "owner_id":
        return _user_id(current) == _user_id(wanted)
    if field in ("deadline", "started_at") and current != wanted:
        moment = _moment(current)
        return isinstance(moment, datetime) and moment == _moment(wanted)
    return current == wanted


def prerun_values(prerun: Any) -> dict[str, Any] | None:
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
