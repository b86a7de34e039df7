"""The sandbox serves tasks (process and one-off) with production's hazards."""

from __future__ import annotations


def _process_task(sandbox, **want):
    return next(t for t in sandbox.store.tasks.values() if t["run_id"]
                and all(t.get(k) == v for k, v in want.items()))


def _one_off(sandbox):
    return next(t for t in sandbox.store.tasks.values() if t["run_id"] is None)


async def test_a_process_task_is_read_under_its_run_and_nowhere_else(api, sandbox):
    task = _process_task(sandbox)
    other_run = next(r for r in sandbox.store.runs if r != task["run_id"])

    read = await api.get(f"/runs/{task['run_id']}/tasks/{task['id']}")
    wrong = await api.get(f"/runs/{other_run}/tasks/{task['id']}")

    # A plain read shows no field list (?with=form_fields adds it).
    assert read.status == 200 and read.data == {k: v for k, v in task.items()
                                                if k != "form_fields"}
    assert set(read.data["owners"]) == {"users", "guests", "groups"}
    assert wrong.status == 404 and wrong.body["code"] == "RESOURCE_NOT_FOUND"


async def test_owners_in_an_update_replaces_all_three_lists(api, sandbox):
    task = _process_task(sandbox)
    guest, group = "x@example.org", next(iter(sandbox.store.groups))
    task["owners"] = {"users": [next(iter(sandbox.store.members))], "guests": [guest],
                      "groups": [group]}
    new_user = list(sandbox.store.members)[3]

    reply = await api.put(f"/runs/{task['run_id']}/tasks/{task['id']}",
                          {"owners": {"users": [new_user]}})

    # guests and groups were missing from `owners`: read as empty, so gone
    assert reply.status == 200
    assert task["owners"] == {"users": [new_user], "guests": [], "groups": []}
    assert sandbox.store.task_assignees[task["run_id"]] == sorted(
        {u for t in sandbox.store.tasks.values() if t["run_id"] == task["run_id"]
         for u in t["owners"]["users"]})


async def test_an_update_without_owners_leaves_the_assignees_alone(api, sandbox):
    task = _process_task(sandbox)
    before = dict(task["owners"])

    reply = await api.put(f"/runs/{task['run_id']}/tasks/{task['id']}", {"title": "Renamed"})

    assert reply.status == 200 and reply.data["title"] == "Renamed"
    assert task["owners"] == before


async def test_a_one_off_update_without_title_deadline_or_owners_is_422(api, sandbox):
    task = _one_off(sandbox)
    before = dict(task)

    reply = await api.put(f"/tasks/{task['id']}", {"summary": "more"})
    whole = await api.put(f"/tasks/{task['id']}", {
        "summary": "more", "title": task["title"], "deadline": task["deadline"],
        "owners": task["owners"]})

    assert reply.status == 422
    assert set(reply.body["errors"]) == {"title", "deadline", "owners"}
    assert before["summary"] is None
    assert whole.status == 200 and task["summary"] == "more"


async def test_unknown_keys_and_taskdata_ids_are_dropped_with_a_200(api, sandbox):
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"] and any(
        f["field_type"] == "text" for f in t["form_fields"]))
    field_id = next(f["id"] for f in task["form_fields"] if f["field_type"] == "text")
    unknown = "f" * 32

    reply = await api.put(f"/runs/{task['run_id']}/tasks/{task['id']}",
                          {"titel": "typo", "taskdata": {field_id: "yes", unknown: "lost"}})

    assert reply.status == 200
    assert "titel" not in task and unknown not in task["taskdata"]
    assert task["taskdata"][field_id] == "yes"


async def test_bad_assignees_are_refused_whole(api, sandbox):
    task = _process_task(sandbox)
    before = dict(task["owners"])

    reply = await api.put(f"/runs/{task['run_id']}/tasks/{task['id']}",
                          {"owners": {"users": [1], "guests": ["not-an-email"], "groups": []}})

    assert reply.status == 422
    assert set(reply.body["errors"]) == {"owners.users", "owners.guests"}
    assert task["owners"] == before


async def test_a_members_tasks_and_a_runs_tasks_are_paged_lists(api, sandbox):
    store = sandbox.store
    member = max(store.members, key=lambda m: sum(
        m in t["owners"]["users"] for t in store.tasks.values()))
    theirs = [t["id"] for t in store.tasks.values() if member in t["owners"]["users"]]
    open_ones = [t["id"] for t in store.tasks.values()
                 if member in t["owners"]["users"] and t["status"] != "completed"]
    run_id = next(t["run_id"] for t in store.tasks.values() if t["run_id"])

    first = await api.get(f"/users/{member}/tasks", params={"per_page": 2})
    every = await api.get(f"/users/{member}/tasks", params={"per_page": 100})
    active = await api.get(f"/users/{member}/tasks", params={"per_page": 100,
                                                               "status": "active"})
    of_run = await api.get(f"/runs/{run_id}/tasks", params={"per_page": 100})
    nobody = await api.get("/users/1/tasks")

    assert len(theirs) > 2 and len(first.data) == 2
    assert first.body["meta"]["pagination"]["total"] == len(theirs)
    assert [t["id"] for t in every.data] == theirs
    assert [t["id"] for t in active.data] == open_ones
    assert [t["id"] for t in of_run.data] == [
        t["id"] for t in store.tasks.values() if t["run_id"] == run_id]
    assert nobody.status == 404


def test_task_assignees_is_derived_from_the_tasks(sandbox):
    from bulk.sandbox._task_data import assignees_of

    assert sandbox.store.task_assignees == assignees_of(list(sandbox.store.tasks.values()))
    assert sandbox.store.task_assignees  # the run list's owners= has something to match
