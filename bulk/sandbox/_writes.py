"""What a PUT does to a run or a template, hazards included, as production does it.

* Known keys replace. Unknown keys are dropped silently (and the answer is still 200).
* ``users`` and ``groups`` absent from the body mean an EMPTY list: the record loses them.
* ``prerun`` must be an object; its keys that are not kick-off fields of the run are dropped,
  the known ones replace that field's value, the other fields keep theirs.
* A template PUT without ``title`` is refused.
* Validation fails as a whole (422, every problem listed), and a refused PUT changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bulk.sandbox._store import Store

Errors = dict[str, list[str]]


class Rejected(Exception):
    """The body failed validation; ``errors`` is the 422 body's ``errors`` object."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


class _Invalid(Exception):
    pass


class _Context:
    """What checks need beyond the value; membership sets are built once per write."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._members: set[int] | None = None
        self._groups: set[str] | None = None

    @property
    def members(self) -> set[int]:
        if self._members is None:
            self._members = self.store.member_ids()
        return self._members

    @property
    def groups(self) -> set[str]:
        if self._groups is None:
            self._groups = self.store.group_ids()
        return self._groups


Check = Callable[[str, Any, _Context], Any]


def _label(field: str) -> str:
    return field.replace("_", " ")


def _text(max_len: int | None = None, *, required: bool = False) -> Check:
    def check(field: str, value: Any, ctx: _Context) -> Any:
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise _Invalid(f"The {_label(field)} must be a string.")
        if required and not value.strip():
            raise _Invalid(f"The {_label(field)} field is required.")
        if max_len is not None and len(value) > max_len:
            raise _Invalid(f"The {_label(field)} must not be greater than {max_len} characters.")
        return value

    return check


# Laravel's `boolean` rule (the API runs on Laravel) takes true, false, 1, 0, "1" and "0",
# and nothing else: "true", "yes" and "on" are refused.
_BOOLEAN_STRINGS = {"1": True, "0": False}


def _boolean(field: str, value: Any, ctx: _Context) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in _BOOLEAN_STRINGS:
        return _BOOLEAN_STRINGS[value]
    raise _Invalid(f"The {_label(field)} field must be true or false.")


def _user_id(value: Any) -> int | None:
    """Integer ids, and digit strings too (newer docs send user ids as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _member(field: str, value: Any, ctx: _Context) -> int:
    user_id = _user_id(value)
    if user_id is None or user_id not in ctx.members:
        raise _Invalid(f"The selected {_label(field)} is invalid: {value!r} is not a member "
                       f"of this organization.")
    return user_id


def _array(field: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"The {_label(field)} must be an array.")
    return value


def _members(field: str, value: Any, ctx: _Context) -> list[int]:
    if value is None:  # null reads like an absent key: nobody
        return []
    out: list[int] = []
    for index, item in enumerate(_array(field, value)):
        user_id = _user_id(item)
        if user_id is None or user_id not in ctx.members:
            raise _Invalid(f"The selected {field}.{index} is invalid: {item!r} is not a member "
                           f"of this organization.")
        if user_id not in out:
            out.append(user_id)
    return out


def _groups(field: str, value: Any, ctx: _Context) -> list[str]:
    if value is None:
        return []
    out: list[str] = []
    for index, item in enumerate(_array(field, value)):
        if not isinstance(item, str) or item not in ctx.groups:
            raise _Invalid(f"The selected {field}.{index} is invalid: {item!r} is not a group "
                           f"of this organization.")
        if item not in out:
            out.append(item)
    return out


def _strings(field: str, value: Any, ctx: _Context) -> list[str]:
    items = _array(field, value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise _Invalid(f"The {field}.{index} must be a string.")
    return list(items)


def _url(field: str, value: Any, ctx: _Context) -> str | None:
    if value is None or value == "":
        return value
    if not isinstance(value, str):
        raise _Invalid(f"The {_label(field)} must be a valid URL.")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
    else:
        if parts.scheme not in ("http", "https"):
            host = None
    if not host or any(c.isspace() for c in value) or ("." not in host and host != "localhost"):
        raise _Invalid(f"The {_label(field)} format is invalid.")
    return value


def _template_type(field: str, value: Any, ctx: _Context) -> str:
    if value not in ("procedure", "form", "document"):
        raise _Invalid(f"The selected {_label(field)} is invalid.")
    return value


RUN_FIELDS: dict[str, Check] = {
    "name": _text(550, required=True),
    "summary": _text(),
    "owner_id": _member,
    "starred": _boolean,
    "is_public": _boolean,
    "publicly_hidden_fields": _strings,
    "users": _members,
    "groups": _groups,
    "tags": _strings,
    "folders": _strings,
    "prevent_guest_comment": _boolean,
    # "prerun" is handled apart: it merges into the run's kick-off values
}

CHECKLIST_FIELDS: dict[str, Check] = {
    "title": _text(250, required=True),
    "summary": _text(),
    "guidance": _text(),
    "owner_id": _member,
    "webhook": _url,
    "starred": _boolean,
    "type": _template_type,
    "icon": _text(),
    "folder_id": _text(),
    "is_public": _boolean,
    "is_public_kickoff": _boolean,
    "explanation_video": _url,
    "default_process_name_format": _text(550),
    "auto_naming": _boolean,
    "users": _members,
    "groups": _groups,
}

#: The keys a PUT may change, per record kind (everything else in a body is dropped).
UPDATABLE = {"run": frozenset([*RUN_FIELDS, "prerun"]), "checklist": frozenset(CHECKLIST_FIELDS)}


def _changes(fields: dict[str, Check], body: dict[str, Any], ctx: _Context,
             errors: Errors) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field, check in fields.items():
        if field in body:
            try:
                changes[field] = check(field, body[field], ctx)
            except _Invalid as exc:
                errors[field] = [str(exc)]
    # The hazard: an absent list is read as an empty one.
    for field in ("users", "groups"):
        if field not in body:
            changes[field] = []
    return changes


def update_run(store: Store, run: dict[str, Any], body: dict[str, Any]) -> None:
    """Apply a run PUT body to ``run`` in place, or raise :class:`Rejected` changing nothing."""
    errors: Errors = {}
    changes = _changes(RUN_FIELDS, body, _Context(store), errors)
    prerun_updates: dict[str, Any] = {}
    if "prerun" in body:
        prerun = body["prerun"]
        if not isinstance(prerun, dict):
            errors["prerun"] = ["The prerun must be an object keyed by kick-off field id."]
        else:
            known = store.kickoff_ids(run)
            prerun_updates = {k: v for k, v in prerun.items() if k in known}
    if errors:
        raise Rejected(errors)
    run.update(changes)
    if prerun_updates:
        run["prerun"] = {**(run.get("prerun") or {}), **prerun_updates}
    run["last_updated"] = store.stamp()


def update_checklist(store: Store, checklist: dict[str, Any], body: dict[str, Any]) -> None:
    """Apply a template PUT body in place, or raise :class:`Rejected` changing nothing."""
    errors: Errors = {}
    if "title" not in body:
        errors["title"] = ["The title field is required."]
    changes = _changes(CHECKLIST_FIELDS, body, _Context(store), errors)
    if errors:
        raise Rejected(dict(sorted(errors.items())))
    checklist.update(changes)
    checklist["last_updated"] = store.stamp()
