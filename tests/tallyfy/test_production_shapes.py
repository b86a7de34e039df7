"""Jobs against the shapes production answers in (../shared "How production shapes its
answers"): owners as objects in a task PUT answer, form fields only with ?with=form_fields
(wrapped or bare), taskdata holding only answered fields, choice values as option objects and
arrays, deadlines back in UTC milliseconds."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from bulk.sandbox import Sandbox
from bulk.sandbox._form_fields import generated_field
from bulk.tallyfy.targets import TARGETS
from bulk.tallyfy.undo import write_undo
from tests.commands.test_select import read_csv, run_select
from tests.support.helpers import config, run_job, write_csv, write_jsonl

TASKS = TARGETS["tasks"]
TEXT, DROPDOWN, MULTI = "a" * 31 + "1", "b" * 31 + "2", "c" * 31 + "3"


def _open_tasks(store, count):
    tasks = [t for t in store.tasks.values() if t["status"] != "completed"
             and t["owners"]["users"]]
    assert len(tasks) >= count
    return tasks[:count]


def _give_form(tasks, taskdata=None):
    """The same step's three fields on each task (ids are the step's, as on production)."""
    for task in tasks:
        task["form_fields"] = [generated_field(TEXT, "text"), generated_field(DROPDOWN, "dropdown"),
                               generated_field(MULTI, "multiselect")]
        task["taskdata"] = dict(taskdata or {})


def _picked(value):
    return sorted(o["text"] for o in value if o["selected"])


@pytest.mark.parametrize("shape", ["data", "bare"])
async def test_fifty_tasks_filled_from_option_texts_and_undone_exactly(tmp_path, shape):
    async with Sandbox(config(runs=60, form_fields_shape=shape), host="127.0.0.1",
                       port=0) as sandbox:
        store = sandbox.store
        tasks = _open_tasks(store, 50)
        _give_form(tasks)
        before = {t["id"]: json.dumps(t, sort_keys=True) for t in tasks}
        path = write_csv(tmp_path / "form.csv",
                         ["run_id", "task_id", f"taskdata.{TEXT}", f"taskdata.{DROPDOWN}",
                          f"taskdata.{MULTI}"],
                         [[t["run_id"] or "", t["id"], f"ref {n}", "High", "Email; portal"]
                          for n, t in enumerate(tasks)])

        _, entries = await run_job(sandbox, path, target="tasks")

        assert Counter(e.status for e in entries) == {"ok": 50}, [e.error for e in entries]
        assert all(e.attempts == 1 for e in entries)  # every answer read right the first time
        for n, task in enumerate(tasks):
            data = task["taskdata"]
            assert data[TEXT] == f"ref {n}"
            assert data[DROPDOWN] == {"id": 3, "text": "High", "value": None}
            assert _picked(data[MULTI]) == ["Email", "Portal"] and len(data[MULTI]) == 4
            assert sandbox.stats.writes_per_record[task["id"]] == 1
        _, again = await run_job(sandbox, path, target="tasks",
                                 ledger=tmp_path / "again.db")
        assert Counter(e.status for e in again) == {"unchanged": 50}  # compared as chosen

        undo = tmp_path / "undo.jsonl"
        write_undo(tmp_path / "form.csv.ledger.db", undo)
        _, undone = await run_job(sandbox, undo, target="tasks")

        assert Counter(e.status for e in undone) == {"ok": 50}, [e.error for e in undone]
        after = {t["id"]: json.loads(json.dumps(t, sort_keys=True)) for t in tasks}
        for task_id, was in before.items():
            now = after[task_id]
            assert now["taskdata"] == {}  # every field unanswered again, as before the job
            was = json.loads(was)
            for key in ("owners", "title", "deadline", "summary", "form_fields"):
                assert now[key] == was[key]


async def test_an_unknown_option_is_invalid_before_any_put(sandbox, tmp_path):
    tasks = _open_tasks(sandbox.store, 3)
    _give_form(tasks)
    path = write_csv(tmp_path / "bad.csv", ["run_id", "task_id", f"taskdata.{DROPDOWN}",
                                            f"taskdata.{MULTI}"],
                     [[tasks[0]["run_id"] or "", tasks[0]["id"], "Highest", ""],
                      [tasks[1]["run_id"] or "", tasks[1]["id"], "", "Email; Fax"],
                      [tasks[2]["run_id"] or "", tasks[2]["id"], "low", "phone;letter"]])

    summary, entries = await run_job(sandbox, path, target="tasks")

    first, second, third = sorted(entries, key=lambda e: e.row)
    assert first.status == "invalid" and '"Highest" is not an option' in first.error
    assert '"High"' in first.error  # the options it does have
    assert second.status == "invalid" and '"Fax" is not an option' in second.error
    assert third.status == "ok"  # case and spaces aside, the option texts
    assert sandbox.stats.writes_per_record[tasks[0]["id"]] == 0
    assert sandbox.stats.writes_per_record[tasks[1]["id"]] == 0
    assert tasks[2]["taskdata"][DROPDOWN]["text"] == "Low"
    assert _picked(tasks[2]["taskdata"][MULTI]) == ["Letter", "Phone"]
    assert summary.exit_code == 1


async def test_an_empty_field_is_known_from_the_field_list_not_from_taskdata(sandbox,
                                                                            tmp_path):
    # A plain read shows no field list and taskdata has no key for an empty field: only the
    # read asked with=form_fields tells the row that the field exists.
    task = _open_tasks(sandbox.store, 1)[0]
    _give_form([task])
    path = write_jsonl(tmp_path / "one.jsonl", [
        {"run_id": task["run_id"] or "", "task_id": task["id"],
         "taskdata": {TEXT: "first answer"}}])

    _, entries = await run_job(sandbox, path, target="tasks")

    assert [e.status for e in entries] == ["ok"], entries[0].error
    assert task["taskdata"] == {TEXT: "first answer"}
    reads = [e.path for e in sandbox.stats.journal if e.method == "GET"
             and task["id"] in e.path]
    assert len(reads) == 1  # the ids come in the same read: no extra request
    assert entries[0].before == {"taskdata": {TEXT: None}}


async def test_select_writes_option_texts_and_select_edit_apply_undo_round_trips(
        sandbox, tmp_path):
    store = sandbox.store
    member = Counter(u for t in store.tasks.values() if t["status"] != "completed"
                     for u in t["owners"]["users"]).most_common(1)[0][0]
    mine = [t for t in store.tasks.values() if t["status"] != "completed"
            and member in t["owners"]["users"]]
    low = {"id": 1, "text": "Low", "value": None}
    channels = [{"id": n, "text": text, "value": None, "selected": text in ("Email", "Phone")}
                for n, text in enumerate(("Email", "Phone", "Letter", "Portal"), start=1)]
    _give_form(mine, {DROPDOWN: low, MULTI: channels})
    out = tmp_path / "mine.csv"

    await run_select(sandbox, out, TASKS, assignee=member,
                     columns=f"title,taskdata.{DROPDOWN},taskdata.{MULTI}")

    rows = read_csv(out)
    assert all(r[f"expect.taskdata.{DROPDOWN}"] == "Low" for r in rows)
    assert all(r[f"expect.taskdata.{MULTI}"] == "Email; Phone" for r in rows)
    reads = [e for e in sandbox.stats.journal if e.method == "GET"]
    assert len(reads) == 1  # the list page carried the fields: no read per task

    # edit: a person adds change columns in a spreadsheet; one task changed meanwhile
    edited = tmp_path / "edited.csv"
    with edited.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*rows[0], f"taskdata.{DROPDOWN}", f"taskdata.{MULTI}"])
        for row in rows:
            writer.writerow([*row.values(), "Urgent", "Letter;Portal"])
    moved = mine[0]
    moved["taskdata"][DROPDOWN] = {"id": 2, "text": "Medium", "value": None}
    original = {t["id"]: json.dumps(t["taskdata"], sort_keys=True) for t in mine}

    _, entries = await run_job(sandbox, edited, target="tasks")

    statuses = {e.record_id.rpartition("/")[2]: e.status for e in entries}
    assert statuses.pop(moved["id"]) == "conflict"
    assert set(statuses.values()) == {"ok"}
    for task in mine[1:]:
        assert task["taskdata"][DROPDOWN]["text"] == "Urgent"
        assert _picked(task["taskdata"][MULTI]) == ["Letter", "Portal"]

    undo = tmp_path / "undo.jsonl"
    write_undo(tmp_path / "edited.csv.ledger.db", undo)
    _, undone = await run_job(sandbox, undo, target="tasks")

    assert {e.status for e in undone} == {"ok"}
    assert {t["id"]: json.dumps(t["taskdata"], sort_keys=True) for t in mine} == original


async def test_the_leaver_handover_of_the_readme_is_ok_and_undone(sandbox, tmp_path):
    # README "When someone leaves": every task PUT is answered with owners.users as objects.
    store = sandbox.store
    leaver = Counter(u for t in store.tasks.values() for u in t["owners"]["users"]
                     ).most_common(1)[0][0]
    heir = next(m for m in store.members if m != leaver)
    theirs = [t for t in store.tasks.values() if leaver in t["owners"]["users"]
              and t["status"] != "completed"]
    was = {t["id"]: {k: sorted(v) for k, v in t["owners"].items()} for t in theirs}
    out = tmp_path / "leaver-tasks.csv"
    await run_select(sandbox, out, TASKS, assignee=leaver,
                     sets=[f"add_users={heir}", f"remove_users={leaver}"])

    summary, entries = await run_job(sandbox, out, target="tasks")

    assert Counter(e.status for e in entries) == {"ok": len(theirs)}
    assert all(e.attempts == 1 for e in entries) and summary.exit_code == 0
    assert all(leaver not in t["owners"]["users"] and heir in t["owners"]["users"]
               for t in theirs)
    undo = tmp_path / "leaver-tasks.undo.jsonl"
    write_undo(tmp_path / "leaver-tasks.csv.ledger.db", undo)
    _, undone = await run_job(sandbox, undo, target="tasks")
    assert Counter(e.status for e in undone) == {"ok": len(theirs)}
    assert {t["id"]: {k: sorted(v) for k, v in t["owners"].items()} for t in theirs} == was


async def test_a_deadline_is_compared_as_an_instant(sandbox, tmp_path):
    task = _open_tasks(sandbox.store, 1)[0]
    path = write_jsonl(tmp_path / "deadline.jsonl", [
        {"run_id": task["run_id"] or "", "task_id": task["id"],
         "deadline": "2026-03-31T19:00:00+02:00"}])

    _, entries = await run_job(sandbox, path, target="tasks")
    _, again = await run_job(sandbox, path, target="tasks", ledger=tmp_path / "again.db")

    assert [e.status for e in entries] == ["ok"] and entries[0].attempts == 1
    assert task["deadline"] == "2026-03-31T17:00:00.000Z"  # as production answers it
    assert [e.status for e in again] == ["unchanged"]


async def test_a_task_summary_is_read_back_since_no_put_answer_shows_it(sandbox, tmp_path):
    task = _open_tasks(sandbox.store, 1)[0]
    path = write_jsonl(tmp_path / "summary.jsonl", [
        {"run_id": task["run_id"] or "", "task_id": task["id"], "summary": "Handed over"}])

    _, entries = await run_job(sandbox, path, target="tasks")

    assert [e.status for e in entries] == ["ok"], entries[0].error
    assert task["summary"] == "Handed over"
    assert sandbox.stats.writes_per_record[task["id"]] == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
async def test_select_set_on_choice_fields_guards_with_option_texts(sandbox, tmp_path, suffix):
    store = sandbox.store
    member = Counter(u for t in store.tasks.values() if t["status"] != "completed"
                     for u in t["owners"]["users"]).most_common(1)[0][0]
    mine = [t for t in store.tasks.values() if t["status"] != "completed"
            and member in t["owners"]["users"]]
    _give_form(mine, {DROPDOWN: {"id": 1, "text": "Low", "value": None}})
    out = tmp_path / f"set{suffix}"

    await run_select(sandbox, out, TASKS, assignee=member, where=[f"taskdata.{DROPDOWN}=Low"],
                     sets=[f"taskdata.{DROPDOWN}=Urgent", f"taskdata.{MULTI}=Phone;Letter"])
    mine[0]["taskdata"][DROPDOWN] = {"id": 3, "text": "High", "value": None}  # edited since
    _, entries = await run_job(sandbox, out, target="tasks")

    statuses = {e.record_id.rpartition("/")[2]: e.status for e in entries}
    assert statuses.pop(mine[0]["id"]) == "conflict"
    assert set(statuses.values()) == {"ok"} and len(statuses) == len(mine) - 1
    assert all(t["taskdata"][DROPDOWN]["text"] == "Urgent" for t in mine[1:])
    assert all(_picked(t["taskdata"][MULTI]) == ["Letter", "Phone"] for t in mine[1:])
