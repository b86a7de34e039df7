"""Who gets in, what unknown things answer, and the two path prefixes."""

from __future__ import annotations

import copy

import pytest

ENDPOINT_NOT_FOUND = {"error": True, "message": "API endpoint not found",
                      "code": "ENDPOINT_NOT_FOUND"}
RESOURCE_NOT_FOUND = {"error": True, "message": "Resource not found",
                      "code": "RESOURCE_NOT_FOUND"}


@pytest.mark.parametrize("prefix", ["/api", ""])
async def test_both_prefixes_serve_the_same_api(api, first_run, first_checklist, prefix):
    run = await api.get(f"/runs/{first_run['id']}", prefix=prefix)
    checklist = await api.get(f"/checklists/{first_checklist['id']}", prefix=prefix)
    runs = await api.get("/runs", prefix=prefix)
    checklists = await api.get("/checklists", prefix=prefix)
    put = await api.put(f"/runs/{first_run['id']}", {"name": f"via {prefix or 'root'}"},
                        prefix=prefix)

    assert run.status == checklist.status == runs.status == checklists.status == 200
    assert run.data["id"] == first_run["id"]
    assert checklist.data["id"] == first_checklist["id"]
    assert runs.data and checklists.data
    assert put.status == 200 and put.data["name"] == f"via {prefix or 'root'}"


async def test_run_and_template_records_carry_the_documented_fields(api, first_run,
                                                                    first_checklist):
    run = (await api.get(f"/runs/{first_run['id']}")).data
    checklist = (await api.get(f"/checklists/{first_checklist['id']}")).data

    assert {"id", "name", "summary", "owner_id", "starred", "is_public",
            "publicly_hidden_fields", "users", "groups", "prerun", "tags", "folders",
            "prevent_guest_comment", "status", "checklist_id", "created_at",
            "last_updated"} <= set(run)
    assert isinstance(run["prerun"], dict) and run["prerun"]
    assert all(len(k) == 32 for k in run["prerun"])
    assert {"id", "title", "summary", "guidance", "owner_id", "webhook", "starred", "type",
            "icon", "folder_id", "is_public", "is_public_kickoff", "explanation_video",
            "default_process_name_format", "auto_naming", "users", "groups", "created_at",
            "last_updated"} <= set(checklist)


async def test_kickoff_fields_of_a_template_are_the_prerun_keys_of_its_runs(api, sandbox,
                                                                           first_run):
    reply = await api.get(f"/checklists/{first_run['checklist_id']}/form-fields")

    assert reply.status == 200
    fields = reply.data["ko_form_fields"]
    assert {f["timeline_id"] for f in fields} == set(first_run["prerun"])
    assert all(f["id"] == f["timeline_id"] and f["label"] for f in fields)


@pytest.mark.parametrize("path", ["/api/organizations/x/nothing", "/api/v2/runs", "/",
                                  "/api/organizations/{org}/runs/{run}/audit", "/runs"])
async def test_unknown_paths_are_endpoint_not_found(api, sandbox, first_run, path):
    url = sandbox.url + path.format(org=sandbox.org_id, run=first_run["id"])

    reply = await api.request("GET", url)

    assert reply.status == 404
    assert reply.body == ENDPOINT_NOT_FOUND


async def test_a_method_the_endpoint_does_not_have_is_endpoint_not_found(api, first_run):
    reply = await api.request("DELETE", api.url(f"/runs/{first_run['id']}"))

    assert reply.status == 404
    assert reply.body["code"] == "ENDPOINT_NOT_FOUND"


@pytest.mark.parametrize("kind", ["runs", "checklists"])
@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_unknown_records_are_resource_not_found(api, kind, method):
    reply = await api.request(method, api.url(f"/{kind}/{'a' * 32}"), json={"title": "x"})

    assert reply.status == 404
    assert reply.body == RESOURCE_NOT_FOUND


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_request_without_client_header_is_refused_as_endpoint_not_found(
        api, sandbox, first_run, method):
    before = copy.deepcopy(first_run)

    reply = await api.request(method, api.url(f"/runs/{first_run['id']}"),
                              headers={"X-Tallyfy-Client": None}, json={"name": "sneaky"})

    assert reply.status == 404
    assert reply.body == ENDPOINT_NOT_FOUND
    assert sandbox.store.runs[first_run["id"]] == before


async def test_any_client_header_value_is_accepted(api, first_run):
    reply = await api.get(f"/runs/{first_run['id']}", headers={"X-Tallyfy-Client": "TallyfySDK"})
    assert reply.status == 200


@pytest.mark.parametrize("authorization", ["Bearer wrong-token", None, "", "Basic abc",
                                           "Bearer"])
async def test_wrong_or_missing_token_is_401(api, sandbox, first_run, authorization):
    before = copy.deepcopy(first_run)

    get = await api.get(f"/runs/{first_run['id']}", headers={"Authorization": authorization})
    put = await api.put(f"/runs/{first_run['id']}", {"name": "x"},
                        headers={"Authorization": authorization})

    for reply in (get, put):
        assert reply.status == 401
        assert reply.body["error"] is True and reply.body["message"]
    assert sandbox.store.runs[first_run["id"]] == before


async def test_another_org_is_403(api, sandbox, first_run):
    reply = await api.request("GET", api.url(f"/runs/{first_run['id']}", org="b" * 32))

    assert reply.status == 403
    assert reply.body["error"] is True


async def test_a_forbidden_record_answers_403_and_cannot_be_changed(api, sandbox, first_run):
    sandbox.mark_forbidden(first_run["id"])
    before = copy.deepcopy(first_run)

    get = await api.get(f"/runs/{first_run['id']}")
    put = await api.put(f"/runs/{first_run['id']}", {"name": "not allowed"})

    assert get.status == put.status == 403
    assert put.body["error"] is True and put.body["message"]
    assert sandbox.store.runs[first_run["id"]] == before

    sandbox.mark_forbidden(first_run["id"], False)
    assert (await api.get(f"/runs/{first_run['id']}")).status == 200


async def test_a_forbidden_template_answers_403(api, sandbox, first_checklist):
    sandbox.mark_forbidden(first_checklist["id"])
    assert (await api.put(f"/checklists/{first_checklist['id']}", {"title": "x"})).status == 403


async def test_every_answer_carries_a_distinct_request_id(api, sandbox, first_run):
    sandbox.set_rate_limit(1, burst=4)
    replies = [
        await api.get(f"/runs/{first_run['id']}"),                      # 200
        await api.put(f"/runs/{first_run['id']}", {"name": ""}),        # 422
        await api.get("/runs/" + "c" * 32),                             # 404
        await api.get("/runs", headers={"Authorization": "Bearer no"}),  # 401
        await api.request("GET", sandbox.url + "/nowhere"),             # 404 endpoint
        await api.get("/runs"),                                         # 200 list
        await api.get("/runs"),                                         # 429
    ]
    assert [r.status for r in replies] == [200, 422, 404, 401, 404, 200, 429]
    ids = [r.headers.get("X-Request-Id") for r in replies]
    assert all(ids) and len(set(ids)) == len(ids)
    assert [e.request_id for e in sandbox.stats.journal] == ids
