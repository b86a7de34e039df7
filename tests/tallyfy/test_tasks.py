"""Target `tasks`: a leaver's open tasks handed over, every other assignee kept."""

from __future__ import annotations

from collections import Counter

from tests.support.helpers import run_job, write_csv, write_jsonl


def _leaver(store):
    """The member with open process tasks in the most runs, and someone else to take them."""
    runs: Counter[int] = Counter()
    for task in store.tasks.values():
        if task["run_id"] and task["status"] != "completed":
            runs.update(set(task["owners"]["users"]))
    leaver = runs.most_common(1)[0][0]
    heir = next(m for m in store.members if m != leaver)
    return leaver, heir


def _address(task):
    return [task["run_id"] or "", task["id"]]


async def test_a_leavers_open_tasks_move_and_every_other_assignee_stays(sandbox, tmp_path):
    store = sandbox.store
    leaver, heir = _leaver(store)
    guest, group = "pat@client.example.org", next(iter(store.groups))
    theirs = [t for t in store.tasks.values() if leaver in t["owners"]["users"]]
    for task in theirs:  # every kind of assignee beside the leaver
        task["owners"]["guests"] = [guest]
        task["owners"]["groups"] = [group]
        task["owners"]["users"].append(next(m for m in store.members if m not in (leaver, heir)))
    open_ones = [t for t in theirs if t["status"] != "completed"]
    done = next(t for t in store.tasks.values() if t["status"] == "completed" and t["run_id"])
    done["owners"]["users"].append(leaver)
    done_before = {**done, "owners": {k: list(v) for k, v in done["owners"].items()}}
    before = {t["id"]: {k: list(v) for k, v in t["owners"].items()} for t in open_ones}
    titles = {t["id"]: (t["title"], t["deadline"]) for t in open_ones}
    assert len({t["run_id"] for t in open_ones}) >= 2
    rows = [[*_address(t), heir, leaver] for t in [*open_ones, done]]
    path = write_csv(tmp_path / "handover.csv",
                     ["run_id", "task_id", "add_users", "remove_users"], rows)

    summary, entries = await run_job(sandbox, path, target="tasks")

    statuses = Counter(e.status for e in entries)
    assert statuses == {"ok": len(open_ones), "conflict": 1}
    for task in open_ones:
        was = before[task["id"]]
        assert task["owners"]["users"] == [u for u in was["users"] if u != leaver] + [heir]
        assert task["owners"]["guests"] == was["guests"] == [guest]
        assert task["owners"]["groups"] == was["groups"] == [group]
        assert (task["title"], task["deadline"]) == titles[task["id"]]
    # a completed task is history: left alone, and the row says why
    assert done == done_before and store.tasks[done["id"]]["last_updated"] == done["last_updated"]
    conflict = next(e for e in entries if e.status == "conflict")
    assert "completed" in conflict.error and "--include-completed" in conflict.error
    assert sandbox.stats.writes_per_record[done["id"]] == 0
    assert leaver not in {u for t in open_ones for u in t["owners"]["users"]}
    assert summary.exit_code == 1


async def test_include_completed_changes_a_completed_task(sandbox, tmp_path):
    done = next(t for t in sandbox.store.tasks.values() if t["status"] == "completed")
    heir = next(m for m in sandbox.store.members if m not in done["owners"]["users"])
    path = write_csv(tmp_path / "done.csv", ["run_id", "task_id", "add_users"],
                     [[*_address(done), heir]])

    _, entries = await run_job(sandbox, path, target="tasks", include_completed=True)

    assert [e.status for e in entries] == ["ok"]
    assert heir in done["owners"]["users"]


async def test_one_off_tasks_keep_title_and_deadline(sandbox, tmp_path):
    one_offs = [t for t in sandbox.store.tasks.values()
                if t["run_id"] is None and t["status"] != "completed"]
    kept = {t["id"]: (t["title"], t["deadline"], dict(t["owners"])) for t in one_offs}
    rows = [{"task_id": t["id"], "summary": f"Checked {n}"} for n, t in enumerate(one_offs)]
    path = write_jsonl(tmp_path / "one-off.jsonl", rows)

    _, entries = await run_job(sandbox, path, target="tasks")

    # The sandbox answers 422 to a one-off update without title, deadline or owners.
    assert [e.status for e in entries] == ["ok"] * len(one_offs)
    for n, task in enumerate(one_offs):
        assert task["summary"] == f"Checked {n}"
        assert (task["title"], task["deadline"], task["owners"]) == kept[task["id"]]


async def test_a_row_that_would_leave_a_task_unassigned_is_invalid(sandbox, tmp_path):
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"]
                and t["status"] != "completed" and len(t["owners"]["users"]) == 1)
    task["owners"]["guests"], task["owners"]["groups"] = [], []
    only = task["owners"]["users"][0]
    path = write_csv(tmp_path / "empty.csv", ["run_id", "task_id", "remove_users"],
                     [[*_address(task), only]])

    summary, entries = await run_job(sandbox, path, target="tasks")

    assert [e.status for e in entries] == ["invalid"]
    assert "nobody assigned" in entries[0].error
    assert task["owners"]["users"] == [only]
    assert sandbox.stats.writes_per_record[task["id"]] == 0
    assert summary.exit_code == 1


async def test_an_unknown_taskdata_id_is_refused_before_any_put(sandbox, tmp_path):
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"] and t["status"] !=
                "completed" and any(f["field_type"] == "text" for f in t["form_fields"]))
    known = next(f["id"] for f in task["form_fields"] if f["field_type"] == "text")
    unknown = "e" * 32
    path = write_jsonl(tmp_path / "taskdata.jsonl", [
        {"run_id": task["run_id"], "task_id": task["id"], f"taskdata.{unknown}": "lost"},
        {"run_id": task["run_id"], "task_id": task["id"], "taskdata": {known: "kept"}},
    ])

    _, entries = await run_job(sandbox, path, target="tasks")

    first, second = sorted(entries, key=lambda e: e.row)
    assert first.status == "failed" and f"no form field {unknown}" in first.error
    assert second.status == "ok" and task["taskdata"][known] == "kept"
    assert sandbox.stats.writes_per_record[task["id"]] == 1  # only the known field's row


async def test_guests_and_groups_replace_or_merge_inside_owners(sandbox, tmp_path):
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"]
                and t["status"] != "completed" and t["owners"]["users"])
    group = next(iter(sandbox.store.groups))
    task["owners"]["guests"] = ["a@x.example.org", "b@x.example.org"]
    path = write_jsonl(tmp_path / "owners.jsonl", [{
        "run_id": task["run_id"], "task_id": task["id"], "remove_guests": ["A@x.example.org"],
        "add_guests": ["c@x.example.org"], "groups": [group]}])

    _, entries = await run_job(sandbox, path, target="tasks")

    assert [e.status for e in entries] == ["ok"]
    assert task["owners"]["guests"] == ["b@x.example.org", "c@x.example.org"]
    assert task["owners"]["groups"] == [group]
    assert entries[0].before["guests"] == ["a@x.example.org", "b@x.example.org"]


async def test_a_task_under_the_wrong_run_is_a_failed_row_not_a_write(sandbox, tmp_path):
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"])
    other = next(r for r in sandbox.store.runs if r != task["run_id"])
    path = write_csv(tmp_path / "wrong.csv", ["run_id", "task_id", "title"],
                     [[other, task["id"], "New"], ["nothex", task["id"], "New"]])

    _, entries = await run_job(sandbox, path, target="tasks")

    first, second = sorted(entries, key=lambda e: e.row)
    assert first.status == "failed" and first.http_status == 404
    assert second.status == "invalid" and 'column "run_id"' in second.error
    assert task["title"] != "New"


async def test_a_read_without_deadline_or_a_whole_owners_sends_nothing(sandbox, tmp_path):
    tasks = [t for t in sandbox.store.tasks.values() if t["run_id"]
             and t["status"] != "completed" and t["owners"]["users"]][:2]
    no_deadline, partial = tasks
    no_deadline["deadline"] = None
    del partial["owners"]["guests"]  # an answer that lost a list: not a task with no guests
    heir = next(m for m in sandbox.store.members
                if m not in no_deadline["owners"]["users"] + partial["owners"]["users"])
    path = write_csv(tmp_path / "reads.csv", ["run_id", "task_id", "add_users"],
                     [[*_address(t), heir] for t in tasks])

    _, entries = await run_job(sandbox, path, target="tasks")

    first, second = sorted(entries, key=lambda e: e.row)
    assert first.status == "failed" and "did not return deadline" in first.error
    assert second.status == "failed" and "guests (in owners)" in second.error
    assert all(sandbox.stats.writes_per_record[t["id"]] == 0 for t in tasks)


async def test_an_assignee_change_since_the_select_is_a_conflict(sandbox, tmp_path):
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"]
                and t["status"] != "completed" and t["owners"]["users"])
    seen = dict(task["owners"])
    heir, newcomer = [m for m in sandbox.store.members if m not in task["owners"]["users"]][:2]
    path = write_jsonl(tmp_path / "guarded.jsonl", [{
        "run_id": task["run_id"], "task_id": task["id"], "users": [heir],
        "expect": {"users": seen["users"], "guests": seen["guests"]}}])
    sandbox.edit_as_person(task["id"], owners={**task["owners"],
                                               "users": [*task["owners"]["users"], newcomer]})

    _, entries = await run_job(sandbox, path, target="tasks")

    assert [e.status for e in entries] == ["conflict"]
    assert 'field "users" was expected' in entries[0].error
    assert newcomer in task["owners"]["users"] and heir not in task["owners"]["users"]


def test_cli_select_then_apply_tasks(threaded_sandbox, tmp_path):
    from click.testing import CliRunner

    from bulk.cli import main
    from tests.support.helpers import env_for

    store = threaded_sandbox.store
    leaver, heir = _leaver(store)
    done = [t for t in store.tasks.values()
            if leaver in t["owners"]["users"] and t["status"] == "completed"]
    out = tmp_path / "handover.csv"
    env = env_for(threaded_sandbox)

    selected = CliRunner().invoke(main, [
        "select", "tasks", "--assignee", str(leaver), "--status", "all", "-o", str(out),
        "--set", f"add_users={heir}", "--set", f"remove_users={leaver}"], env=env)
    applied = CliRunner().invoke(main, ["apply", "--input", str(out), "--target", "tasks",
                                        "-q"], env=env)
    again = CliRunner().invoke(main, ["apply", "--input", str(out), "--target", "tasks", "-q",
                                      "--retry-failed", "--include-completed"], env=env)

    assert selected.exit_code == 0, selected.output
    assert done  # --status all selected the completed ones too: left alone, then included
    assert applied.exit_code == 1 and f"conflict {len(done)}" in applied.output
    assert again.exit_code == 0, again.output
    assert not [t for t in store.tasks.values() if leaver in t["owners"]["users"]]


def test_task_columns_are_checked_before_any_request(tmp_path):
    import pytest

    from bulk.commands.apply import options_from_settings
    from bulk.engine.errors import InputError
    from bulk.jobfile import load_job_file
    from bulk.tallyfy.targets import TARGETS, check_columns

    tasks, runs = TARGETS["tasks"], TARGETS["runs"]
    assert check_columns(tasks, ["run_id", "task_id", "add_guests", f"taskdata.{'a' * 32}",
                                 "expect.guests", "deadline"], "t.csv") == "task_id"
    with pytest.raises(InputError, match=r'"owners" \(give users, guests, groups to replace'):
        check_columns(tasks, ["task_id", "owners"], "t.csv")
    with pytest.raises(InputError, match=r"form columns are taskdata\.<32-hex field id>"):
        check_columns(tasks, ["task_id", "taskdata.x"], "t.csv")
    with pytest.raises(InputError, match=r'"add_guests" \(a tasks column: is the target right'):
        check_columns(runs, ["run_id", "add_guests"], "r.csv")
    with pytest.raises(InputError, match=r"tasks need one of \"task_id\""):
        check_columns(tasks, ["run_id", "title"], "t.csv")
    job = tmp_path / "job.toml"
    job.write_text('target = "tasks"\ninput = "x.csv"\ninclude_completed = true\n')
    assert options_from_settings(load_job_file(job)).include_completed is True


async def test_every_task_put_carries_owners_whole_as_the_server_received_it(sandbox, tmp_path):
    # The sandbox reads a list missing from `owners` as empty, so the store alone cannot tell
    # a whole `owners` from one missing its empty lists; the body as received can. A server
    # that reads "missing" as "leave alone" (or the other way round) must get the same result.
    store = sandbox.store
    open_tasks = [t for t in store.tasks.values() if t["status"] != "completed"]
    empty, full = open_tasks[0], open_tasks[1]
    empty["owners"]["guests"], empty["owners"]["groups"] = [], []
    full["owners"]["guests"], full["owners"]["groups"] = ["pat@x.example.org"], [
        next(iter(store.groups))]
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"run_id": t["run_id"] or "", "task_id": t["id"], "title": f"Renamed {n}"}
        for n, t in enumerate((empty, full))])

    _, entries = await run_job(sandbox, path, target="tasks")

    assert [e.status for e in entries] == ["ok", "ok"], [e.error for e in entries]
    puts = {e.path.rsplit("/", 1)[1]: e.body for e in sandbox.stats.journal if e.method == "PUT"}
    for task in (empty, full):
        body = puts[task["id"]]
        assert list(body["owners"]) == ["users", "guests", "groups"], body
        assert body["owners"] == task["owners"]
        assert {"title", "deadline"} <= set(body)
    assert puts[empty["id"]]["owners"]["guests"] == [] == puts[empty["id"]]["owners"]["groups"]
