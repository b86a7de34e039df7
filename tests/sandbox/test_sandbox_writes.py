"""PUT of runs and templates behaves like production, hazards included."""

from __future__ import annotations

import copy

import pytest


def run_path(run: dict) -> str:
    return f"/runs/{run['id']}"


def checklist_path(checklist: dict) -> str:
    return f"/checklists/{checklist['id']}"


# ---------------------------------------------------------------- the wipe hazard


async def test_run_put_without_users_or_groups_wipes_both(api, sandbox, first_run):
    sandbox.store.runs[first_run["id"]]["groups"] = [next(iter(sandbox.store.groups))]
    assert first_run["users"]

    reply = await api.put(run_path(first_run), {"name": "Renamed"})

    assert reply.status == 200
    assert reply.data["name"] == "Renamed"
    assert reply.data["users"] == [] and reply.data["groups"] == []
    stored = sandbox.store.runs[first_run["id"]]
    assert stored["users"] == [] and stored["groups"] == []


async def test_run_put_with_users_only_still_wipes_groups(api, sandbox, first_run):
    group = next(iter(sandbox.store.groups))
    first_run["groups"] = [group]
    users = list(first_run["users"])

    reply = await api.put(run_path(first_run), {"name": "Renamed", "users": users})

    assert reply.status == 200
    assert reply.data["users"] == users
    assert reply.data["groups"] == []


async def test_run_put_that_resends_users_and_groups_keeps_them(api, sandbox, first_run):
    group = next(iter(sandbox.store.groups))
    first_run["groups"] = [group]
    users = list(first_run["users"])

    reply = await api.put(run_path(first_run), {"name": "Safe", "users": users, "groups": [group]})

    assert reply.status == 200
    assert (reply.data["users"], reply.data["groups"]) == (users, [group])


async def test_users_replace_never_merge(api, sandbox, first_run):
    other = next(m for m in sandbox.store.members if m not in first_run["users"])

    reply = await api.put(run_path(first_run), {"users": [other]})

    assert reply.data["users"] == [other]


async def test_template_put_without_users_or_groups_wipes_both(api, sandbox, first_checklist):
    first_checklist["users"] = [next(iter(sandbox.store.members))]
    first_checklist["groups"] = [next(iter(sandbox.store.groups))]

    reply = await api.put(checklist_path(first_checklist), {"title": "New title"})

    assert reply.status == 200
    assert reply.data["title"] == "New title"
    assert reply.data["users"] == [] and reply.data["groups"] == []
    assert sandbox.store.checklists[first_checklist["id"]]["users"] == []


# ---------------------------------------------------------------- title, unknown keys


async def test_template_put_without_title_is_422_and_changes_nothing(api, sandbox,
                                                                     first_checklist):
    first_checklist["users"] = [next(iter(sandbox.store.members))]
    before = copy.deepcopy(first_checklist)

    reply = await api.put(checklist_path(first_checklist), {"summary": "no title here"})

    assert reply.status == 422
    assert reply.body["error"] is True
    assert list(reply.body["errors"]) == ["title"]
    assert sandbox.store.checklists[first_checklist["id"]] == before
    assert sandbox.stats.writes_per_record[first_checklist["id"]] == 0


async def test_unknown_keys_are_dropped_silently_with_200(api, sandbox, first_run):
    reply = await api.put(run_path(first_run), {
        "name": "Kept", "users": first_run["users"], "nmae": "typo", "colour": "blue",
    })

    assert reply.status == 200
    assert reply.data["name"] == "Kept"
    stored = sandbox.store.runs[first_run["id"]]
    assert "nmae" not in stored and "colour" not in stored


async def test_unknown_template_keys_are_dropped_silently_with_200(api, sandbox,
                                                                   first_checklist):
    reply = await api.put(checklist_path(first_checklist),
                          {"title": "T", "steps": [], "titel": "typo"})

    assert reply.status == 200
    assert "steps" not in reply.data and "titel" not in reply.data


# ---------------------------------------------------------------- prerun


async def test_prerun_known_keys_replace_unknown_dropped_others_kept(api, sandbox, first_run):
    fields = list(first_run["prerun"])
    assert len(fields) >= 2
    untouched = {k: first_run["prerun"][k] for k in fields[1:]}
    unknown = "f" * 32

    reply = await api.put(run_path(first_run), {
        "users": first_run["users"], "prerun": {fields[0]: "Changed value", unknown: "lost"},
    })

    assert reply.status == 200
    prerun = sandbox.store.runs[first_run["id"]]["prerun"]
    assert prerun[fields[0]] == "Changed value"
    assert unknown not in prerun
    assert {k: prerun[k] for k in fields[1:]} == untouched


@pytest.mark.parametrize("prerun", [["a", "b"], [], "text", 3, None])
async def test_prerun_that_is_not_an_object_is_422(api, sandbox, first_run, prerun):
    before = copy.deepcopy(first_run)

    reply = await api.put(run_path(first_run), {"name": "x", "prerun": prerun})

    assert reply.status == 422
    assert list(reply.body["errors"]) == ["prerun"]
    assert sandbox.store.runs[first_run["id"]] == before


# ---------------------------------------------------------------- validation

NOT_MEMBER = 1  # generated member ids are five digits
NO_GROUP = "0" * 32


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x" * 551}, "name"),
    ({"name": ""}, "name"),
    ({"name": 42}, "name"),
    ({"owner_id": NOT_MEMBER}, "owner_id"),
    ({"owner_id": "not-a-number"}, "owner_id"),
    ({"owner_id": True}, "owner_id"),
    ({"users": [NOT_MEMBER]}, "users"),
    ({"users": "12345"}, "users"),
    ({"groups": [NO_GROUP]}, "groups"),
    ({"starred": "yes"}, "starred"),
    ({"starred": "true"}, "starred"),
    ({"is_public": 2}, "is_public"),
    ({"prevent_guest_comment": None}, "prevent_guest_comment"),
    ({"tags": "urgent"}, "tags"),
    ({"publicly_hidden_fields": [1]}, "publicly_hidden_fields"),
    ({"summary": ["not", "text"]}, "summary"),
])
async def test_invalid_run_put_is_422_with_the_field_and_changes_nothing(
        api, sandbox, first_run, body, field):
    before = copy.deepcopy(first_run)

    reply = await api.put(run_path(first_run), {"users": first_run["users"], **body})

    assert reply.status == 422
    assert reply.body["error"] is True
    assert list(reply.body["errors"]) == [field]
    assert all(isinstance(m, str) and m for m in reply.body["errors"][field])
    assert sandbox.store.runs[first_run["id"]] == before
    assert sandbox.stats.writes_per_record[first_run["id"]] == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "x" * 251}, "title"),
    ({"title": "   "}, "title"),
    ({"webhook": "not a url"}, "webhook"),
    ({"webhook": "ftp://example.com/hook"}, "webhook"),
    ({"webhook": "https://"}, "webhook"),
    ({"explanation_video": "youtube"}, "explanation_video"),
    ({"default_process_name_format": "y" * 551}, "default_process_name_format"),
    ({"owner_id": NOT_MEMBER}, "owner_id"),
    ({"users": [NOT_MEMBER]}, "users"),
    ({"groups": [NO_GROUP]}, "groups"),
    ({"auto_naming": "no"}, "auto_naming"),
    ({"is_public_kickoff": "on"}, "is_public_kickoff"),
    ({"type": "spreadsheet"}, "type"),
])
async def test_invalid_template_put_is_422_with_the_field_and_changes_nothing(
        api, sandbox, first_checklist, body, field):
    before = copy.deepcopy(first_checklist)

    reply = await api.put(checklist_path(first_checklist), {"title": "Valid", **body})

    assert reply.status == 422
    assert list(reply.body["errors"]) == [field]
    assert sandbox.store.checklists[first_checklist["id"]] == before


async def test_every_problem_is_listed_at_once(api, first_run):
    reply = await api.put(run_path(first_run),
                          {"name": "", "starred": "maybe", "users": [NOT_MEMBER], "prerun": []})

    assert reply.status == 422
    assert set(reply.body["errors"]) == {"name", "starred", "users", "prerun"}


async def test_limits_are_inclusive(api, first_run, first_checklist):
    assert (await api.put(run_path(first_run), {"name": "x" * 550})).status == 200
    assert (await api.put(checklist_path(first_checklist), {"title": "t" * 250})).status == 200


async def test_user_ids_as_digit_strings_are_accepted_and_stored_as_integers(api, sandbox,
                                                                              first_run):
    member = list(sandbox.store.members)[4]

    reply = await api.put(run_path(first_run), {"owner_id": str(member), "users": [str(member)]})

    assert reply.status == 200
    assert reply.data["owner_id"] == member
    assert reply.data["users"] == [member]


async def test_laravel_booleans_are_accepted(api, first_run):
    for value, expected in ((1, True), ("0", False), (True, True), (False, False)):
        reply = await api.put(run_path(first_run), {"starred": value})
        assert reply.status == 200
        assert reply.data["starred"] is expected


async def test_valid_template_put_replaces_known_fields(api, sandbox, first_checklist):
    member = list(sandbox.store.members)[2]
    body = {"title": "Vendor onboarding v2", "summary": "s", "guidance": "g",
            "owner_id": member, "webhook": "https://hooks.example.com/x", "starred": True,
            "type": "form", "icon": "fa-truck", "is_public": True, "is_public_kickoff": True,
            "explanation_video": "https://www.youtube.com/watch?v=abc",
            "default_process_name_format": "{{Customer name}}", "auto_naming": True,
            "users": [member], "groups": [list(sandbox.store.groups)[1]]}

    reply = await api.put(checklist_path(first_checklist), body)

    assert reply.status == 200
    assert {k: reply.data[k] for k in body} == body


async def test_malformed_json_is_refused_and_changes_nothing(api, sandbox, first_run):
    before = copy.deepcopy(first_run)

    reply = await api.request("PUT", api.url(run_path(first_run)), data=b"{not json",
                              headers={"Content-Type": "application/json"})

    assert reply.status == 400
    assert reply.body["error"] is True
    assert sandbox.store.runs[first_run["id"]] == before


async def test_a_json_list_body_is_422(api, first_run):
    assert (await api.put(run_path(first_run), [{"name": "x"}])).status == 422


# ---------------------------------------------------------------- last_updated, answers, counts


async def test_last_updated_changes_on_every_write_even_back_to_back(api, sandbox, first_run):
    seen = {first_run["last_updated"]}
    for _ in range(5):
        reply = await api.put(run_path(first_run), {"name": "same", "users": first_run["users"]})
        assert reply.data["last_updated"] not in seen
        seen.add(reply.data["last_updated"])
    assert sorted(seen)[-1] == sandbox.store.runs[first_run["id"]]["last_updated"]


async def test_template_last_updated_changes_on_write(api, first_checklist):
    before = first_checklist["last_updated"]
    reply = await api.put(checklist_path(first_checklist), {"title": first_checklist["title"]})
    assert reply.data["last_updated"] > before


async def test_put_answer_is_the_record_after_the_write(api, first_run):
    put = await api.put(run_path(first_run), {"summary": "after", "users": first_run["users"]})
    got = await api.get(run_path(first_run))
    assert put.body == got.body == {"data": got.data}
    assert got.data["summary"] == "after"


async def test_writes_are_counted_per_record(api, sandbox, first_run, first_checklist):
    await api.put(run_path(first_run), {"name": "a"})
    await api.put(run_path(first_run), {"name": "b"})
    await api.put(checklist_path(first_checklist), {"title": "c"})
    await api.put(checklist_path(first_checklist), {})  # refused: not a write
    await api.get(run_path(first_run))  # a read is not a write

    assert sandbox.stats.writes_per_record == {first_run["id"]: 2, first_checklist["id"]: 1}
