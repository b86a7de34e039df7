"""Tasks: what a task PUT does, hazards included, and the task endpoints.

* ``owners`` in a body REPLACES all three assignee lists, and a list missing from it is read
  as an empty one (the task loses those assignees). ``owners`` omitted leaves them alone.
* A one-off task update (``PUT /tasks/{id}``) without ``title``, ``deadline`` or ``owners``
  is a 422.
* Unknown keys, and ``taskdata`` ids the task has no field for, are dropped with a 200.
* Answers as production shapes them: a GET shows ``owners.users`` as integers, a PUT answer
  as objects (``{"id", "email", ...}``) and without ``summary`` (it never echoes it back);
  no read shows the form fields unless asked ``?with=form_fields`` (see _form_fields.py);
  deadlines come back as ISO 8601 UTC with milliseconds, whatever spelling was sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bulk.sandbox._form_fields import FieldValueError, include, stored_value
from bulk.sandbox._store import Store
from bulk.sandbox._writes import (
    Errors,
    Rejected,
    _boolean,
    _Context,
    _groups,
    _Invalid,
    _members,
    _text,
    _url,
)

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+").fullmatch
OWNER_LISTS = ("users", "guests", "groups")


def _moment(field: str, value: Any, ctx: _Context) -> str | None:
    if value is None and field == "started_at":
        return None
    if isinstance(value, str):
        try:
            # ISO 8601, or the older pages' "YYYY-MM-DD HH:MM:SS" (read as UTC).
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return utc_millis(moment)
    raise _Invalid(f"The {field.replace('_', ' ')} is not a valid date.")


def utc_millis(moment: datetime) -> str:
    """How production answers a task's date-time: ISO 8601 UTC with milliseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _count(field: str, value: Any, ctx: _Context) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _Invalid(f"The {field.replace('_', ' ')} must be a non-negative integer.")


def _guests(field: str, value: Any, ctx: _Context) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"The {field} must be an array.")
    out: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _EMAIL(item):
            raise _Invalid(f"The {field}.{index} must be a valid email address.")
        if item not in out:
            out.append(item)
    return out


TASK_FIELDS: dict[str, Callable[[str, Any, _Context], Any]] = {
    "title": _text(600, required=True),
    "summary": _text(),
    "deadline": _moment,
    "started_at": _moment,
    "top_secret": _boolean,
    "webhook": _url,
    "prevent_guest_comment": _boolean,
    "max_assignable": _count,
    "position": _count,
    # "owners" and "taskdata" are handled apart
}


def update_task(store: Store, task: dict[str, Any], body: dict[str, Any], *,
                one_off_path: bool) -> None:
    """Apply a task PUT body to ``task`` in place, or raise :class:`Rejected` changing nothing."""
    errors: Errors = {}
    if one_off_path:
        for name in ("title", "deadline", "owners"):
            if name not in body:
                errors[name] = [f"The {name} field is required."]
    ctx = _Context(store)
    changes: dict[str, Any] = {}
    for field, check in TASK_FIELDS.items():
        if field in body:
            try:
                changes[field] = check(field, body[field], ctx)
            except _Invalid as exc:
                errors[field] = [str(exc)]
    if "owners" in body:
        owners = body["owners"]
        if not isinstance(owners, dict):
            errors["owners"] = ["The owners must be an object of users, guests and groups."]
        else:
            # The hazard: every list missing from `owners` is read as an empty one.
            replaced: dict[str, list[Any]] = {}
            for name, check in (("users", _members), ("guests", _guests), ("groups", _groups)):
                try:
                    replaced[name] = check(f"owners.{name}", owners.get(name), ctx)
                except _Invalid as exc:
                    errors[f"owners.{name}"] = [str(exc)]
            changes["owners"] = replaced
    taskdata: dict[str, Any] = {}
    if "taskdata" in body:
        if not isinstance(body["taskdata"], dict):
            errors["taskdata"] = ["The taskdata must be an object keyed by form field id."]
        else:
            fields = {f["id"]: f for f in task.get("form_fields") or ()}
            for key, value in body["taskdata"].items():
                if key not in fields:
                    continue  # dropped, and still a 200
                try:
                    taskdata[key] = stored_value(fields[key], value)
                except FieldValueError as exc:
                    errors[f"taskdata.{key}"] = [str(exc)]
    if errors:
        raise Rejected(dict(sorted(errors.items())))
    task.update(changes)
    if taskdata:
        merged = {**(task.get("taskdata") or {}), **taskdata}
        # Only answered fields keep a key.
        task["taskdata"] = {key: value for key, value in merged.items() if value is not None}
    task["last_updated"] = store.stamp()
    if "owners" in changes and task.get("run_id"):
        store.run_task_assignees(task["run_id"])


def matches_status(task: dict[str, Any], statuses: set[str] | None) -> bool:
    """``status=`` of the task lists: statuses, "active" (not completed) or "all"."""
    if statuses is None or "all" in statuses:
        return True
    status = task.get("status")
    return status in statuses or ("active" in statuses and status != "completed")


class TaskEndpoints:
    """The task routes of a sandbox ``Service`` (it gives lookup, paging and JSON)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def add_routes(self, router: web.UrlDispatcher, base: str, api: Any) -> None:
        router.add_get(base + "/runs/{run_id}/tasks", api(self.list_run_tasks))
        router.add_get(base + "/runs/{run_id}/tasks/{task_id}", api(self.get_run_task))
        router.add_put(base + "/runs/{run_id}/tasks/{task_id}", api(self.put_run_task))
        router.add_get(base + "/tasks/{task_id}", api(self.get_task))
        router.add_put(base + "/tasks/{task_id}", api(self.put_task))
        router.add_get(base + "/users/{user_id}/tasks", api(self.list_member_tasks))

    def _task(self, request: web.Request, *, in_run: bool) -> dict[str, Any]:
        service = self.service
        task = service.store.tasks.get(request.match_info["task_id"])
        if task is None or (in_run and task.get("run_id") != request.match_info["run_id"]):
            raise service.bad_request(service.not_found())
        if task["id"] in service.forbidden:
            raise service.bad_request(service.forbidden_answer())
        return task

    def shown(self, task: dict[str, Any], request: web.Request, *,
              answer_to_put: bool = False) -> dict[str, Any]:
        """The task as an answer shows it (see the module's docstring)."""
        shown = {key: value for key, value in task.items() if key != "form_fields"}
        if "form_fields" in request.query.get("with", "").split(","):
            shown["form_fields"] = include(task.get("form_fields") or [],
                                           task.get("taskdata") or {},
                                           self.service.form_fields_shape)
        if answer_to_put:
            shown.pop("summary", None)
            members = self.service.store.members
            owners = dict(task["owners"])
            owners["users"] = [_member_object(members.get(user_id), user_id)
                               for user_id in owners.get("users") or ()]
            shown["owners"] = owners
        return shown

    async def get_run_task(self, request: web.Request) -> web.Response:
        task = self._task(request, in_run=True)
        return self.service.json(200, {"data": self.shown(task, request)})

    async def get_task(self, request: web.Request) -> web.Response:
        task = self._task(request, in_run=False)
        return self.service.json(200, {"data": self.shown(task, request)})

    async def put_run_task(self, request: web.Request) -> web.Response:
        return await self._put(request, in_run=True)

    async def put_task(self, request: web.Request) -> web.Response:
        return await self._put(request, in_run=False)

    async def _put(self, request: web.Request, *, in_run: bool) -> web.Response:
        service = self.service
        task = self._task(request, in_run=in_run)
        body = await service.body(request)
        try:
            update_task(service.store, task, body, one_off_path=not in_run)
        except Rejected as exc:
            return service.json(422, {"error": True, "errors": exc.errors})
        service.stats.writes_per_record[task["id"]] += 1
        return service.json(200, {"data": self.shown(task, request, answer_to_put=True)})

    async def list_run_tasks(self, request: web.Request) -> web.Response:
        service = self.service
        run_id = request.match_info["run_id"]
        if run_id not in service.store.runs:
            raise service.bad_request(service.not_found())
        owners = service.id_set(request.query, "owners")
        statuses = self._statuses(request)
        items = [task for task in service.store.tasks.values()
                 if task.get("run_id") == run_id and matches_status(task, statuses)
                 and (owners is None or not owners.isdisjoint(task["owners"]["users"]))]
        return service.page(request, [self.shown(task, request) for task in items])

    async def list_member_tasks(self, request: web.Request) -> web.Response:
        service = self.service
        try:
            user_id = int(request.match_info["user_id"])
        except ValueError:
            user_id = -1
        if user_id not in service.store.members:
            raise service.bad_request(service.not_found())
        statuses = self._statuses(request)
        items = [task for task in service.store.tasks.values()
                 if user_id in task["owners"]["users"] and matches_status(task, statuses)]
        return service.page(request, [self.shown(task, request) for task in items])

    @staticmethod
    def _statuses(request: web.Request) -> set[str] | None:
        value = request.query.get("status")
        return set(value.split(",")) if value else None


def _member_object(member: dict[str, Any] | None, user_id: int) -> dict[str, Any]:
    """A user as a task PUT answer lists it (production: the member's profile)."""
    member = member or {}
    return {"id": user_id, **{key: member[key] for key in
                              ("email", "first_name", "last_name", "full_name") if key in member}}
