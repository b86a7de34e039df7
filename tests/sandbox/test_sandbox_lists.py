"""List endpoints: the pagination envelope, the per_page cap, and each filter."""

from __future__ import annotations

import pytest
from yarl import URL


async def walk(api, path: str, **params) -> list[dict]:
    """Every page of a list, following ``links.next`` as a client would."""
    reply = await api.get(path, params={**params, "page": 1})
    pages = [reply]
    while reply.body["meta"]["pagination"]["links"] and \
            "next" in reply.body["meta"]["pagination"]["links"]:
        reply = await api.request("GET", reply.body["meta"]["pagination"]["links"]["next"])
        pages.append(reply)
    return pages


async def test_pages_cover_every_run_once_with_a_correct_envelope(api, sandbox):
    pages = await walk(api, "/runs", per_page=7)

    assert len(pages) == 5  # 30 runs
    for number, page in enumerate(pages, start=1):
        assert page.status == 200
        meta = page.body["meta"]["pagination"]
        assert meta["total"] == 30
        assert meta["per_page"] == 7
        assert meta["current_page"] == number
        assert meta["total_pages"] == 5
        assert meta["count"] == len(page.data) == (7 if number < 5 else 2)
        links = meta["links"]
        if number == 5:  # the last page: an empty array, as production sends it
            assert links == []
            continue
        assert "next" in links
        assert ("previous" in links) == (number > 1)
        if number > 1:
            assert URL(links["previous"]).query["page"] == str(number - 1)
            assert URL(links["previous"]).query["per_page"] == "7"
    ids = [run["id"] for page in pages for run in page.data]
    assert ids == list(sandbox.store.runs)


async def test_a_single_page_has_links_as_an_empty_array(api):
    reply = await api.get("/runs", params={"per_page": 100})

    assert reply.body["meta"]["pagination"]["links"] == []
    assert reply.body["meta"]["pagination"]["total_pages"] == 1


async def test_per_page_is_capped_at_100(start_sandbox, api_for):
    big = await start_sandbox(runs=150)
    reply = await api_for(big).get("/runs", params={"per_page": 500})

    meta = reply.body["meta"]["pagination"]
    assert meta["per_page"] == 100 and meta["count"] == 100 and len(reply.data) == 100
    assert meta["total"] == 150 and meta["total_pages"] == 2


async def test_default_page_size_and_a_page_past_the_end(api):
    first = await api.get("/runs")
    past = await api.get("/runs", params={"page": 9})

    assert first.body["meta"]["pagination"]["per_page"] == 10
    assert len(first.data) == 10
    assert past.status == 200 and past.data == []
    assert past.body["meta"]["pagination"]["count"] == 0


async def test_non_numeric_paging_is_422(api):
    reply = await api.get("/runs", params={"per_page": "lots"})
    assert reply.status == 422
    assert "per_page" in reply.body["errors"]


async def test_owners_matches_the_owner_or_any_member(api, sandbox):
    member = list(sandbox.store.members)[5]
    assignees = sandbox.store.task_assignees
    expected = [r["id"] for r in sandbox.store.runs.values()
                if r["owner_id"] == member or member in r["users"]
                or member in assignees.get(r["id"], ())]
    owned_only = [r["id"] for r in sandbox.store.runs.values() if r["owner_id"] == member]
    assert len(expected) > len(owned_only)  # the data exercises the OR

    reply = await api.get("/runs", params={"owners": str(member), "per_page": 100})

    assert [r["id"] for r in reply.data] == expected
    assert reply.body["meta"]["pagination"]["total"] == len(expected)


async def test_owners_also_matches_task_assignees_as_production_does(api, sandbox):
    store = sandbox.store
    run_id, run = next(iter(store.runs.items()))
    outsider = next(m for m in store.members if m != run["owner_id"] and m not in run["users"])
    store.task_assignees[run_id] = [outsider]
    expected = [r["id"] for r in store.runs.values()
                if outsider in {r["owner_id"], *r["users"], *store.task_assignees.get(r["id"], ())}]

    reply = await api.get("/runs", params={"owners": str(outsider), "per_page": 100})

    assert run_id in [r["id"] for r in reply.data]
    assert [r["id"] for r in reply.data] == expected
    assert "tasks" not in reply.data[0] and "task_assignees" not in reply.data[0]


async def test_owners_takes_a_comma_separated_list(api, sandbox):
    a, b = next(iter(sandbox.store.members)), list(sandbox.store.members)[1]
    assignees = sandbox.store.task_assignees
    expected = [r["id"] for r in sandbox.store.runs.values()
                if {r["owner_id"], *r["users"], *assignees.get(r["id"], ())} & {a, b}]

    reply = await api.get("/runs", params={"owners": f"{a},{b}", "per_page": 100})

    assert [r["id"] for r in reply.data] == expected


async def test_status_filter(api, sandbox):
    expected = [r["id"] for r in sandbox.store.runs.values() if r["status"] != "active"]
    assert expected

    reply = await api.get("/runs", params={"status": "problem,delayed,complete",
                                           "per_page": 100})

    assert [r["id"] for r in reply.data] == expected


async def test_q_is_a_case_insensitive_substring_of_the_name(api, sandbox):
    expected = [r["id"] for r in sandbox.store.runs.values() if "acme" in r["name"].lower()]
    assert expected

    reply = await api.get("/runs", params={"q": "aCmE", "per_page": 100})

    assert [r["id"] for r in reply.data] == expected


async def test_checklist_id_filter(api, sandbox, first_run):
    expected = [r["id"] for r in sandbox.store.runs.values()
                if r["checklist_id"] == first_run["checklist_id"]]

    reply = await api.get("/runs", params={"checklist_id": first_run["checklist_id"],
                                           "per_page": 100})

    assert [r["id"] for r in reply.data] == expected
    assert len(expected) < len(sandbox.store.runs)


async def test_filters_combine_and_paginate(api, sandbox):
    member = next(iter(sandbox.store.members))
    expected = [r["id"] for r in sandbox.store.runs.values()
                if (r["owner_id"] == member or member in r["users"]) and r["status"] == "active"]

    pages = await walk(api, "/runs", owners=member, status="active", per_page=2)

    assert [r["id"] for p in pages for r in p.data] == expected
    assert pages[0].body["meta"]["pagination"]["total"] == len(expected)
    # the next link keeps the filters
    if len(pages) > 1:
        assert URL(pages[0].body["meta"]["pagination"]["links"]["next"]).query["owners"] == \
            str(member)


async def test_checklists_list_and_filters(api, sandbox):
    checklists = list(sandbox.store.checklists.values())
    owner = checklists[0]["owner_id"]

    everything = await api.get("/checklists", params={"per_page": 100})
    by_owner = await api.get("/checklists", params={"owner_id": owner})
    by_title = await api.get("/checklists", params={"q": "ONBOARD"})

    assert [c["id"] for c in everything.data] == [c["id"] for c in checklists]
    assert [c["id"] for c in by_owner.data] == [c["id"] for c in checklists
                                                 if c["owner_id"] == owner]
    assert [c["id"] for c in by_title.data] == [c["id"] for c in checklists
                                                 if "onboard" in c["title"].lower()]
    assert by_title.data


@pytest.mark.parametrize("path", ["/runs", "/checklists"])
async def test_lists_show_writes(api, sandbox, first_run, first_checklist, path):
    await api.put(f"/runs/{first_run['id']}", {"name": "Zebra rename"})
    await api.put(f"/checklists/{first_checklist['id']}", {"title": "Zebra template"})

    reply = await api.get(path, params={"q": "zebra"})

    assert len(reply.data) == 1
