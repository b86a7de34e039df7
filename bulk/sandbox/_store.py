"""The in-memory organization: records by id, members, groups, and write time stamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bulk.sandbox._data import iso
from bulk.sandbox._task_data import assignees_of, compact_task, whole_task


class Store:
    """The live data of one sandbox. Records are plain dicts, exactly as ``GET`` answers them.

    Every collection maps id -> dict, so iterating one gives ids: ``runs`` and ``checklists``
    (records), ``members`` (integer user id -> member) and ``groups`` (group id -> group);
    ``kickoff_fields`` maps checklist id -> its kick-off field definitions. Tests may read and
    change any of it directly: the server reads the same objects on every request.
    """

    def __init__(self, org: dict[str, Any]) -> None:
        self._last_stamp = datetime.min.replace(tzinfo=UTC)
        self.load(org)

    def load(self, org: dict[str, Any]) -> None:
        """Replace the whole content with (a copy of) ``org``, in place."""
        org = _copy(org)
        self.org_id: str = org["org_id"]
        self.members: dict[int, dict[str, Any]] = {m["id"]: m for m in org["members"]}
        self.groups: dict[str, dict[str, Any]] = {g["id"]: g for g in org["groups"]}
        self.checklists: dict[str, dict[str, Any]] = {c["id"]: c for c in org["checklists"]}
        self.runs: dict[str, dict[str, Any]] = {r["id"]: r for r in org["runs"]}
        self.kickoff_fields: dict[str, list[dict[str, Any]]] = org.get("kickoff_fields", {})
        #: task id -> task (process tasks carry their ``run_id``, one-off tasks None).
        self.tasks: dict[str, dict[str, Any]] = {
            t["id"]: whole_task(t) for t in org.get("tasks") or ()}
        #: run id -> user ids assigned to any of its tasks. Not part of the run record (as on
        #: production, tasks are their own endpoint), but the run list's `owners=` matches them.
        #: Derived from the tasks when there are any (kept current by task writes); a data
        #: file without tasks may give it directly.
        self.task_assignees: dict[str, list[int]] = (
            assignees_of(list(self.tasks.values())) if self.tasks
            else org.get("task_assignees", {}))
        self._extra = {k: v for k, v in org.items()
                       if k not in ("members", "groups", "checklists", "runs",
                                    "kickoff_fields", "task_assignees", "tasks")}

    # Read afresh for every validated write, so a test that adds a member to ``members``
    # sees it accepted on the next PUT.
    def member_ids(self) -> set[int]:
        return set(self.members)

    def group_ids(self) -> set[str]:
        return set(self.groups)

    def record(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """``("run" | "checklist" | "task", record)`` for any record id, or None."""
        if record_id in self.runs:
            return "run", self.runs[record_id]
        if record_id in self.checklists:
            return "checklist", self.checklists[record_id]
        if record_id in self.tasks:
            return "task", self.tasks[record_id]
        return None

    def run_task_assignees(self, run_id: str) -> None:
        """Recompute one run's ``task_assignees`` entry after a write to one of its tasks."""
        users = sorted({user for task in self.tasks.values() if task.get("run_id") == run_id
                        for user in (task.get("owners") or {}).get("users") or ()})
        if users:
            self.task_assignees[run_id] = users
        else:
            self.task_assignees.pop(run_id, None)

    def kickoff_ids(self, run: dict[str, Any]) -> set[str]:
        """The prerun keys a run accepts: its template's kick-off fields and what it holds."""
        ids = set(run.get("prerun") or ())
        for field in self.kickoff_fields.get(run.get("checklist_id") or "", ()):
            ids.add(field.get("timeline_id") or field.get("id"))
        return ids

    def stamp(self) -> str:
        """A ``last_updated`` value strictly later than every earlier one, even within the
        same microsecond, so a client can always tell two writes apart."""
        now = datetime.now(UTC)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return iso(now)

    def edit_as_person(self, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a record as someone in the web app would: only the given fields change
        (no membership wipe, no API validation), ``last_updated`` moves, and no API request
        or write is counted. What tests use to play "a person edited it in between".
        ``prerun`` merges into the kick-off values. Returns the record; KeyError if unknown."""
        found = self.record(record_id)
        if found is None:
            raise KeyError(record_id)
        record = found[1]
        changes = _copy(changes)
        prerun = changes.pop("prerun", None)
        record.update(changes)
        if prerun:
            record["prerun"] = {**(record.get("prerun") or {}), **prerun}
        record["last_updated"] = self.stamp()
        if found[0] == "task" and record.get("run_id"):
            self.run_task_assignees(record["run_id"])
        return record

    def to_org(self) -> dict[str, Any]:
        """The current state in the data file shape (a deep copy: safe to keep or dump)."""
        return _copy({
            **self._extra,
            "members": list(self.members.values()),
            "groups": list(self.groups.values()),
            "checklists": list(self.checklists.values()),
            "kickoff_fields": self.kickoff_fields,
            "runs": list(self.runs.values()),
            "task_assignees": self.task_assignees,
            **({"tasks": [compact_task(t) for t in self.tasks.values()]} if self.tasks else {}),
        })


def _copy(org: dict[str, Any]) -> dict[str, Any]:
    # A JSON round trip: several times faster than deepcopy for 10,000 runs, and it proves
    # the data is what a JSON API can serve.
    return json.loads(json.dumps(org))
