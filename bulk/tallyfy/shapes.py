"""How production shapes what it answers, read into one shape (see ../shared "How production
shapes its answers"): every reader of a record goes through ``Target.view``, which uses these.

* Member lists come as ids (a task GET, runs, templates) or as objects (``{"id": 1005, ...}``,
  the answer to a task PUT): read both, anywhere, as ids. Guests as objects carry ``email``.
* A task's form fields come only with ``?with=form_fields``: wrapped (``{"data": [...]}``, the
  answer in ``field_value``, as Tallyfy's MCP server shows production) or a bare array (the
  answer in ``value``, the documentation's sample). Read both into one list of
  ``{id, field_type, label, options, value}``.
* ``taskdata`` holds only answered fields; the answers the field list shows are merged in.
"""

from __future__ import annotations

from typing import Any

#: What identifies one member of each list when it comes as an object.
_OBJECT_KEY = {"users": "id", "groups": "id", "guests": "email"}


def member_id(item: Any, kind: str) -> Any:
    """One member of a `kind` list (users, groups, guests) as an id, whatever its shape."""
    if isinstance(item, dict):
        return item.get(_OBJECT_KEY.get(kind, "id"))
    return item


def member_ids(items: Any, kind: str) -> Any:
    """A member list as ids (a non-list is left as it is: the plan refuses it)."""
    if not isinstance(items, list):
        return items
    return [member_id(item, kind) for item in items]


def form_fields(raw: Any) -> list[dict[str, Any]] | None:
    """The fields of `?with=form_fields` in one shape; None when the answer has none."""
    if isinstance(raw, dict) and isinstance(raw.get("data"), list):
        raw = raw["data"]
    if not isinstance(raw, list):
        return None
    fields = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        value = entry.get("field_value", entry.get("value"))
        options = entry.get("options")
        fields.append({
            "id": entry["id"].strip().lower(),
            "field_type": entry.get("field_type"),
            "label": entry.get("label"),
            "options": [o for o in options if isinstance(o, dict)]
            if isinstance(options, list) else [],
            "value": value,
        })
    return fields


def view_record(record: dict[str, Any], membership: tuple[str, ...],
                membership_object: str | None) -> dict[str, Any]:
    """The record flat and in one shape: member lists at the top as ids, form fields read."""
    flat = dict(record)
    inner = record.get(membership_object) if membership_object else record
    if isinstance(inner, dict):
        for name in membership:
            if isinstance(inner.get(name), list):
                flat[name] = member_ids(inner[name], name)
    if isinstance(flat.get("owner_id"), dict):
        flat["owner_id"] = member_id(flat["owner_id"], "users")
    if "form_fields" in record:
        fields = form_fields(record["form_fields"])
        flat["form_fields"] = fields
        taskdata = record.get("taskdata")
        answers = dict(taskdata) if isinstance(taskdata, dict) else {}
        for field in fields or ():
            if field["id"] not in answers and field["value"] not in (None, "", []):
                answers[field["id"]] = field["value"]
        flat["taskdata"] = answers
    return flat


def fields_by_id(record: Any) -> dict[str, dict[str, Any]] | None:
    """A viewed record's form fields by id; None when the read did not ask for them."""
    fields = record.get("form_fields") if isinstance(record, dict) else None
    if not isinstance(fields, list):
        return None
    return {field["id"]: field for field in fields}


__all__ = ["fields_by_id", "form_fields", "member_id", "member_ids", "view_record"]
