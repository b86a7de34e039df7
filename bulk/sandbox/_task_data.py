"""The tasks of a generated organization: process tasks (steps of runs) and one-off tasks.

A task's assignees live in ``owners`` ({users, guests, groups}), as production answers them.
The user assignees of a run's tasks are the run's entry in the generated ``task_assignees``
(people who may not be members) and often its owner, whom the run list's ``owners=`` filter
matches anyway: so adding tasks changed no list answer. The other tasks of a run are assigned
to guests or groups only.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

from bulk.sandbox._form_fields import generated_field

#: Production's task statuses; "completed" ones are history, left alone by default.
TASK_STATUSES = ("not-started", "in-progress", "completed")
_STEPS = ("Collect details", "Review request", "Approve", "Set up accounts", "Send welcome pack",
          "Check documents", "Sign off", "Notify the team")
_ONE_OFF = ("Chase the signed contract", "Book the kick-off call", "Renew the SSL certificate",
            "Update the price list", "Archive last year's invoices", "Review vendor access")
_GUESTS = ("pat@client.example.org", "lee@vendor.example.net", "sam@partner.example.com")


def _hex32(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _iso(moment: datetime) -> str:
    """A task's date-times as production answers them: ISO 8601 UTC with milliseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=None)


def generate_tasks(rng: random.Random, runs: list[dict[str, Any]],
                   assignees: dict[str, list[int]], member_ids: list[int],
                   group_ids: list[str], one_offs: int = 6) -> list[dict[str, Any]]:
    """Tasks for every run (user assignees exactly ``assignees[run id]``) and a few one-offs."""
    tasks: list[dict[str, Any]] = []
    for run in runs:
        users = list(assignees.get(run["id"], ()))
        if run.get("owner_id") not in users and rng.random() < 0.7:
            # Owners work on their own processes (owners= matches them already).
            users.append(run["owner_id"])
        # Kept small: the sample org file stays under 100 kB.
        count = len(users) + (1 if rng.random() < 0.15 else 0)
        for position in range(count):
            owners: dict[str, list[Any]] = {"users": [], "guests": [], "groups": []}
            if position < len(users):
                owners["users"] = [users[position]]
            if rng.random() < 0.3 or not owners["users"]:
                if rng.random() < 0.5 or not group_ids:
                    owners["guests"] = [rng.choice(_GUESTS)]
                else:
                    owners["groups"] = [rng.choice(group_ids)]
            done = run["status"] == "complete" or (position == 0 and rng.random() < 0.3)
            tasks.append(_task(rng, run, _STEPS[position % len(_STEPS)], position + 1, owners,
                               done))
    for index in range(one_offs):
        owners = {"users": sorted(rng.sample(member_ids, rng.randint(1, 2))),
                  "guests": [rng.choice(_GUESTS)] if rng.random() < 0.4 else [],
                  "groups": [rng.choice(group_ids)] if group_ids and rng.random() < 0.4 else []}
        tasks.append(_task(rng, None, _ONE_OFF[index % len(_ONE_OFF)], 1, owners,
                           done=index == one_offs - 1))
    return tasks


def _task(rng: random.Random, run: dict[str, Any] | None, title: str, position: int,
          owners: dict[str, list[Any]], done: bool) -> dict[str, Any]:
    started = _parse(run["started_at"]) if run else datetime(2025, 1, 6, 9, 0)
    created = started + timedelta(minutes=position)
    deadline = started + timedelta(days=rng.randint(3, 30), hours=17 - started.hour)
    field_ids = [_hex32(rng) for _ in range(rng.randint(0, 2))]
    task = {
        "id": _hex32(rng),
        "title": title,
        "run_id": run["id"] if run else None,
        "checklist_id": run["checklist_id"] if run else None,
        "status": "completed" if done else rng.choice(TASK_STATUSES[:2]),
        "position": position,
        "owners": owners,
        "deadline": _iso(deadline),
        "created_at": _iso(created),
    }
    # Only what differs from TASK_DEFAULTS is kept in the file (the store fills the rest).
    if done:
        task["completed_at"] = _iso(created + timedelta(days=1))
    if field_ids:
        # The step's form fields, all unanswered (taskdata holds only answered ones).
        # Kept short in the file (whole_task fills in label and options).
        task["form_fields"] = [
            {"id": field_id, "field_type": generated_field(field_id)["field_type"]}
            for field_id in field_ids]
    return task


#: The fields of a task a data file may leave out; every task is served with all of them.
TASK_DEFAULTS: dict[str, Any] = {
    "summary": None, "run_id": None, "checklist_id": None, "task_type": "task",
    "status": "not-started", "completed_at": None, "top_secret": False, "webhook": None,
    "prevent_guest_comment": False, "max_assignable": None, "taskdata": {},
}


def whole_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task as the sandbox keeps it: every field present, and its step's ``form_fields``
    (what ``?with=form_fields`` shows; never in a plain read)."""
    whole = dict(task)  # its own order first, so compact_task() gives the same text back
    created = task.get("created_at")
    for key, value in {**TASK_DEFAULTS, "started_at": created, "last_updated": created}.items():
        whole.setdefault(key, json.loads(json.dumps(value)))
    whole["is_oneoff_task"] = task.get("run_id") is None
    taskdata = whole["taskdata"] if isinstance(whole["taskdata"], dict) else {}
    if "form_fields" not in whole:
        # A data file from before form fields: each taskdata key is a text field.
        whole["form_fields"] = [generated_field(key, "text") for key in taskdata]
    else:
        whole["form_fields"] = [{**generated_field(f["id"], f.get("field_type")), **f}
                                for f in whole["form_fields"]]
    # Only answered fields have a key.
    whole["taskdata"] = {key: value for key, value in taskdata.items() if value is not None}
    return whole


def compact_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task as a data file keeps it: what whole_task() would fill in left out."""
    created = task.get("created_at")
    implied = {**TASK_DEFAULTS, "started_at": created, "last_updated": created,
               "form_fields": []}
    compact = {key: value for key, value in task.items() if key != "is_oneoff_task"
               and (key in _ALWAYS_KEPT or not (key in implied and value == implied[key]))}
    if compact.get("form_fields"):
        compact["form_fields"] = [_compact_field(f) for f in compact["form_fields"]]
    return compact


def _compact_field(field: dict[str, Any]) -> dict[str, Any]:
    made = generated_field(field["id"], field.get("field_type"))
    return {key: value for key, value in field.items()
            if key in ("id", "field_type") or made.get(key) != value}


_ALWAYS_KEPT = ("run_id", "checklist_id", "status")


def assignees_of(tasks: list[dict[str, Any]]) -> dict[str, list[int]]:
    """run id -> the user ids assigned to any of its tasks (what the run list's owners= sees)."""
    out: dict[str, set[int]] = {}
    for task in tasks:
        run_id = task.get("run_id")
        users = (task.get("owners") or {}).get("users") or ()
        if run_id and users:
            out.setdefault(run_id, set()).update(users)
    return {run_id: sorted(users) for run_id, users in out.items()}
