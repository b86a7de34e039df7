"""`bulk select tasks`: a member's (or a run's) open tasks, as a ready `--target tasks` input."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bulk.tallyfy.select_query import SelectError, build_selection
from bulk.tallyfy.targets import TARGETS
from tests.commands.test_select import read_csv, run_select
from tests.support.helpers import run_job

TASKS = TARGETS["tasks"]


def _busiest(store):
    counts: Counter[int] = Counter(
        u for t in store.tasks.values() for u in t["owners"]["users"])
    return counts.most_common(1)[0][0]


async def test_a_members_open_tasks_are_selected_across_runs_and_one_offs(sandbox, tmp_path):
    store = sandbox.store
    member = _busiest(store)
    heir = next(m for m in store.members if m != member)
    mine = [t for t in store.tasks.values() if member in t["owners"]["users"]]
    open_ones = [t for t in mine if t["status"] != "completed"]
    assert len(open_ones) < len(mine)  # the default leaves completed tasks out
    out = tmp_path / "tasks.csv"

    summary = await run_select(sandbox, out, TASKS, assignee=member,
                               sets=[f"add_users={heir}", f"remove_users={member}"])

    rows = read_csv(out)
    assert list(rows[0]) == ["run_id", "task_id", "ref.title", "add_users", "remove_users"]
    assert [r["ref.title"] for r in rows] == [t["title"] for t in open_ones]
    assert [(r["run_id"], r["task_id"]) for r in rows] == [
        (t["run_id"] or "", t["id"]) for t in open_ones]
    assert all(r["add_users"] == str(heir) and r["remove_users"] == str(member) for r in rows)
    assert summary.selected == len(open_ones)
    journal = [e.path for e in sandbox.stats.journal]
    assert journal == [f"/api/organizations/{sandbox.org_id}/users/{member}/tasks"]

    # and the file is a ready input: the member's open tasks go to the heir
    _, entries = await run_job(sandbox, out, target="tasks")

    assert Counter(e.status for e in entries) == {"ok": len(open_ones)}
    assert all(heir in t["owners"]["users"] and member not in t["owners"]["users"]
               for t in open_ones)
    assert all(member in t["owners"]["users"] for t in mine if t["status"] == "completed")


async def test_a_runs_tasks_filtered_by_assignee_status_and_template(sandbox, tmp_path):
    store = sandbox.store
    task = next(t for t in store.tasks.values() if t["run_id"] and t["owners"]["users"])
    run_id, member = task["run_id"], task["owners"]["users"][0]
    out = tmp_path / "run.jsonl"

    await run_select(sandbox, out, TASKS, run=run_id, assignee=member, statuses=["all"],
                     template=store.runs[run_id]["checklist_id"])

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [t for t in store.tasks.values()
                if t["run_id"] == run_id and member in t["owners"]["users"]]
    assert [r["task_id"] for r in rows] == [t["id"] for t in expected]
    assert rows[0]["run_id"] == run_id
    # without --set: the assignees as expectations, ready for a spreadsheet edit
    assert set(rows[0]["expect"]) == {"title", "users", "guests", "groups"}
    assert rows[0]["expect"]["guests"] == task["owners"]["guests"]


def test_task_options_are_checked_before_any_request():
    with pytest.raises(SelectError, match="--assignee USER_ID or --run"):
        build_selection(TASKS)
    with pytest.raises(SelectError, match="tasks take --assignee"):
        build_selection(TASKS, owner=5)
    with pytest.raises(SelectError, match="applies to tasks only"):
        build_selection(TARGETS["runs"], assignee=5)
    with pytest.raises(SelectError, match="form fields are taskdata"):
        build_selection(TASKS, assignee=5, where=["taskdata.nothex=1"])
    with pytest.raises(SelectError, match="not a field tasks can change"):
        build_selection(TASKS, assignee=5, sets=["owner_id=5"])
    selection = build_selection(TASKS, assignee=5, sets=["add_guests=a@b.example.org"])
    assert selection.statuses == ("active",)


def test_active_means_not_completed_for_tasks_only():
    runs = build_selection(TARGETS["runs"], statuses=["active"])
    tasks = build_selection(TASKS, assignee=5, statuses=["active"])

    assert not runs.matches({"id": "x", "status": "problem"})
    assert runs.matches({"id": "x", "status": "active"})
    assert tasks.matches({"id": "x", "status": "in-progress", "users": [5]})
    assert not tasks.matches({"id": "x", "status": "completed", "users": [5]})
