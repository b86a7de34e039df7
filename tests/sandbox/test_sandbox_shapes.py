"""The sandbox answers tasks in production's shapes by default (../shared "How production
shapes its answers")."""

from __future__ import annotations

import pytest

from bulk.sandbox import SandboxConfig
from bulk.sandbox._form_fields import generated_field

TEXT, DROPDOWN, MULTI, RADIO, DATE = ("1" * 32, "2" * 32, "3" * 32, "4" * 32, "5" * 32)


def _task(sandbox):
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"] and t["owners"]["users"])
    task["form_fields"] = [generated_field(TEXT, "text"), generated_field(DROPDOWN, "dropdown"),
                           generated_field(MULTI, "multiselect"),
                           generated_field(RADIO, "radio"), generated_field(DATE, "date")]
    task["taskdata"] = {}
    return task, f"/runs/{task['run_id']}/tasks/{task['id']}"


async def test_a_put_answer_lists_users_as_objects_and_omits_summary(api, sandbox):
    _, path = _task(sandbox)
    member = next(iter(sandbox.store.members))

    put = await api.put(path, {"summary": "Handed over",
                               "owners": {"users": [member], "guests": [], "groups": []}})
    get = await api.get(path)

    assert put.status == 200 and "summary" not in put.data
    assert put.data["owners"]["users"] == [
        {"id": member, **{k: sandbox.store.members[member][k] for k in
                          ("email", "first_name", "last_name", "full_name")
                          if k in sandbox.store.members[member]}}]
    assert get.data["owners"]["users"] == [member] and get.data["summary"] == "Handed over"


async def test_form_fields_only_with_the_include_wrapped_with_field_value(api, sandbox):
    task, path = _task(sandbox)
    task["taskdata"] = {TEXT: "answered"}

    plain = await api.get(path)
    included = await api.get(path, params={"with": "form_fields"})
    listed = await api.get(f"/runs/{task['run_id']}/tasks", params={"with": "form_fields"})

    assert "form_fields" not in plain.data and plain.data["taskdata"] == {TEXT: "answered"}
    fields = included.data["form_fields"]["data"]
    assert [f["id"] for f in fields] == [TEXT, DROPDOWN, MULTI, RADIO, DATE]
    assert {"id", "field_type", "label", "options", "field_value"} <= set(fields[0])
    assert fields[0]["field_value"] == "answered" and fields[1]["field_value"] is None
    assert "value" not in fields[0]
    assert next(t for t in listed.data if t["id"] == task["id"])["form_fields"]["data"]


async def test_the_docs_shape_is_a_bare_array_with_value(start_sandbox, api_for):
    sandbox = await start_sandbox(form_fields_shape="bare")
    _, path = _task(sandbox)

    included = await api_for(sandbox).get(path, params={"with": "form_fields"})

    fields = included.data["form_fields"]
    assert isinstance(fields, list) and "value" in fields[0] and "field_value" not in fields[0]


def test_an_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="form_fields_shape"):
        SandboxConfig(form_fields_shape="wrapped")


async def test_values_by_type_and_only_answered_fields_kept(api, sandbox):
    task, path = _task(sandbox)
    high = {"id": 3, "text": "High", "value": None}
    picks = [{"id": 1, "text": "Email", "selected": True}, {"id": 4, "text": "Portal",
                                                            "selected": True}]

    reply = await api.put(path, {"taskdata": {TEXT: "x", DROPDOWN: high, MULTI: picks,
                                              RADIO: "No", DATE: "2026-01-02T00:00:00Z",
                                              "f" * 32: "dropped"}})

    assert reply.status == 200
    data = task["taskdata"]
    assert set(data) == {TEXT, DROPDOWN, MULTI, RADIO, DATE}
    assert data[DROPDOWN] == high and data[RADIO] == "No"
    assert [(o["text"], o["selected"]) for o in data[MULTI]] == [
        ("Email", True), ("Phone", False), ("Letter", False), ("Portal", True)]

    cleared = await api.put(path, {"taskdata": {TEXT: None, MULTI: []}})
    assert cleared.status == 200 and set(task["taskdata"]) == {DROPDOWN, RADIO, DATE}


@pytest.mark.parametrize(("field", "value"), [
    (DROPDOWN, "High"), (DROPDOWN, {"id": 9}), (RADIO, "Maybe"), (MULTI, "Email"),
    (MULTI, [{"id": 9, "selected": True}]), (DATE, "not a date"), (TEXT, 5)])
async def test_a_value_of_the_wrong_shape_is_422_and_changes_nothing(api, sandbox, field,
                                                                    value):
    task, path = _task(sandbox)

    reply = await api.put(path, {"title": "Renamed", "taskdata": {field: value}})

    assert reply.status == 422 and f"taskdata.{field}" in reply.body["errors"]
    assert task["taskdata"] == {} and task["title"] != "Renamed"


@pytest.mark.parametrize("sent", ["2026-03-31T19:00:00+02:00", "2026-03-31T17:00:00Z",
                                  "2026-03-31 17:00:00"])
async def test_deadlines_come_back_in_utc_with_milliseconds(api, sandbox, sent):
    task, path = _task(sandbox)

    put = await api.put(path, {"deadline": sent})

    assert put.data["deadline"] == "2026-03-31T17:00:00.000Z" == task["deadline"]
    assert all(t["deadline"].endswith(".000Z") or len(t["deadline"]) == 24
               for t in sandbox.store.tasks.values())
