"""`bulk undo` of a tasks job: the assignees come back exactly, as deltas."""

from __future__ import annotations

import csv
import json

import pytest

from bulk.tallyfy.undo import write_undo
from tests.support.helpers import run_job, write_jsonl


def owners_of(tasks: dict) -> dict:
    """Every task's assignees as sets (the API keeps no meaningful order), and its title."""
    return {tid: ({k: set(v) for k, v in t["owners"].items()}, t["title"], t["deadline"],
                  dict(t["taskdata"]))
            for tid, t in tasks.items()}


def handover_job(sandbox, tmp_path, *, taskdata=True):
    """The leaver's tasks to an heir, a guest swapped, a group added, a form field filled."""
    store = sandbox.store
    group = next(iter(store.groups))
    rows = []
    for n, task in enumerate(t for t in store.tasks.values()
                             if t["status"] != "completed" and t["owners"]["users"]):
        heir = next(m for m in store.members if m not in task["owners"]["users"])
        task["owners"]["guests"] = ["Old.Guest@x.example.org"]
        row = {"run_id": task["run_id"], "task_id": task["id"], "add_users": [heir],
               "remove_users": task["owners"]["users"][:1], "add_guests": ["new@x.example.org"],
               "remove_guests": ["old.guest@x.example.org"]}
        if n % 2 == 0:
            row["add_groups"] = [group] if group not in task["owners"]["groups"] else []
        texts = [f["id"] for f in task["form_fields"] if f["field_type"] == "text"]
        if texts and taskdata:  # a CSV undo has no taskdata.<id> columns
            key = texts[0]
            task["taskdata"][key] = "was"  # an empty before-value needs a JSONL undo
            row[f"taskdata.{key}"] = f"filled {n}"
        if n % 3 == 0:
            row["title"] = f"Handed over {n}"
        rows.append(row)
    return write_jsonl(tmp_path / "handover.jsonl", rows), len(rows)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_undo_restores_the_assignees_exactly(sandbox, tmp_path, suffix):
    store = sandbox.store
    job, count = handover_job(sandbox, tmp_path, taskdata=suffix == ".jsonl")
    original = owners_of(store.tasks)
    _, entries = await run_job(sandbox, job, target="tasks")
    assert [e.status for e in entries] == ["ok"] * count, [e.error for e in entries]
    assert owners_of(store.tasks) != original

    undo = tmp_path / f"undo{suffix}"
    summary = write_undo(tmp_path / "handover.jsonl.ledger.db", undo)
    _, undone = await run_job(sandbox, undo, target="tasks")

    assert summary.rows == count and not summary.skipped
    assert [e.status for e in undone] == ["ok"] * count, [e.error for e in undone]
    assert owners_of(store.tasks) == original
    if suffix == ".csv":
        with undo.open(newline="") as handle:
            header = next(csv.reader(handle))
        assert header[:2] == ["run_id", "task_id"] and "add_guests" in header
    else:
        first = json.loads(undo.read_text().splitlines()[0])
        assert {"run_id", "task_id", "remove_users", "add_users"} <= set(first)
        assert "users" not in first  # deltas, never a replaced list


async def test_undo_keeps_an_assignee_added_since_and_one_off_tasks_work(sandbox, tmp_path):
    store = sandbox.store
    task = next(t for t in store.tasks.values() if t["run_id"] is None
                and t["status"] != "completed")
    leaver = task["owners"]["users"][0]
    heir, since = [m for m in store.members if m not in task["owners"]["users"]][:2]
    job = write_jsonl(tmp_path / "one.jsonl", [
        {"task_id": task["id"], "add_users": [heir], "remove_users": [leaver]}])
    await run_job(sandbox, job, target="tasks")
    sandbox.edit_as_person(task["id"], owners={**task["owners"],
                                               "users": [*task["owners"]["users"], since]})

    write_undo(tmp_path / "one.jsonl.ledger.db", tmp_path / "undo.jsonl")
    _, undone = await run_job(sandbox, tmp_path / "undo.jsonl", target="tasks")

    assert [e.status for e in undone] == ["ok"]
    assert set(task["owners"]["users"]) >= {leaver, since} and heir not in task["owners"]["users"]


def test_undo_apply_leaves_a_task_completed_since_alone_unless_asked(threaded_sandbox, tmp_path):
    from click.testing import CliRunner

    from bulk.cli import main
    from tests.support.helpers import env_for

    store = threaded_sandbox.store
    task = next(t for t in store.tasks.values() if t["run_id"] and t["status"] != "completed"
                and t["owners"]["users"])
    leaver = task["owners"]["users"][0]
    heir = next(m for m in store.members if m not in task["owners"]["users"])
    job = write_jsonl(tmp_path / "h.jsonl", [{"run_id": task["run_id"], "task_id": task["id"],
                                              "add_users": [heir], "remove_users": [leaver]}])
    env = env_for(threaded_sandbox)
    done = CliRunner().invoke(main, ["apply", "--input", str(job), "--target", "tasks", "-q"],
                              env=env)
    threaded_sandbox.edit_as_person(task["id"], status="completed")
    ledger = str(tmp_path / "h.jsonl.ledger.db")

    refused = CliRunner().invoke(main, ["undo", ledger, "--apply", "-q"], env=env)
    included = CliRunner().invoke(main, ["undo", ledger, "--apply", "-q", "--retry-failed",
                                         "--include-completed"], env=env)

    assert done.exit_code == 0, done.output
    assert refused.exit_code == 1 and "conflict 1" in refused.output
    assert included.exit_code == 0, included.output
    assert leaver in task["owners"]["users"] and heir not in task["owners"]["users"]


async def test_a_guest_respelt_in_another_case_is_the_same_guest_to_undo(sandbox, tmp_path):
    # Guest emails compare without case everywhere (plan, expect, undo): Tallyfy stores an
    # address as given, and Ann@Example.com and ann@example.com are one person. A job that
    # re-lists her in lower case while adding someone did not add her; its undo removes
    # only the newcomer, never her.
    task = next(t for t in sandbox.store.tasks.values()
                if t["run_id"] and t["status"] != "completed" and t["owners"]["users"])
    task["owners"]["guests"] = ["Ann@Example.com"]
    job = write_jsonl(tmp_path / "g.jsonl", [{
        "run_id": task["run_id"], "task_id": task["id"],
        "guests": ["ann@example.com", "new@x.example.org"]}])
    _, entries = await run_job(sandbox, job, target="tasks")
    assert [e.status for e in entries] == ["ok"], entries[0].error
    assert task["owners"]["guests"] == ["ann@example.com", "new@x.example.org"]

    write_undo(tmp_path / "g.jsonl.ledger.db", tmp_path / "undo.jsonl")
    [row] = [json.loads(line) for line in (tmp_path / "undo.jsonl").read_text().splitlines()]
    _, undone = await run_job(sandbox, tmp_path / "undo.jsonl", target="tasks")

    assert row["remove_guests"] == ["new@x.example.org"] and "add_guests" not in row
    assert [e.status for e in undone] == ["ok"], undone[0].error
    assert [g.lower() for g in task["owners"]["guests"]] == ["ann@example.com"]
