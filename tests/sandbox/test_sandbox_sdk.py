"""The official Tallyfy SDK (written by Tallyfy, not by us) works against the sandbox, and
meets the same wipe hazard it meets on production."""

from __future__ import annotations

import asyncio

import pytest
from tallyfy import TallyfySDK


@pytest.mark.parametrize("with_api", [False, True], ids=["sdk-default-root", "docs-/api"])
async def test_sdk_reads_renames_with_the_wipe_and_lists_page_by_page(sandbox, with_api):
    org = sandbox.org_id
    run_id, run = next((i, r) for i, r in sandbox.store.runs.items() if r["users"])
    run["groups"] = [next(iter(sandbox.store.groups))]
    name, members, groups = run["name"], list(run["users"]), list(run["groups"])
    base_url = sandbox.base_url if with_api else sandbox.url

    def use_the_sdk():  # the SDK is synchronous (requests): it runs in a thread
        with TallyfySDK(api_key=sandbox.token, base_url=base_url, max_retries=0) as sdk:
            read = sdk.get_process(org, run_id)
            renamed = sdk.update_process(org, run_id, name="Renamed by the SDK")
            pages, page = [], 1
            while True:
                listing = sdk.get_organization_runs(org, per_page=7, page=page)
                pages.append(listing)
                if listing.meta.current_page >= listing.meta.total_pages:
                    return read, renamed, pages
                page += 1

    read, renamed, pages = await asyncio.to_thread(use_the_sdk)

    assert read.id == run_id and read.name == name
    assert read.extra["users"] == members and read.extra["groups"] == groups
    assert renamed.name == "Renamed by the SDK"
    # update_process sends only the name: the members and groups are gone, as on production
    assert renamed.extra["users"] == [] and renamed.extra["groups"] == []
    assert sandbox.store.runs[run_id]["users"] == [] and sandbox.store.runs[run_id]["groups"] == []
    assert len(pages) == 5
    assert [p.meta.current_page for p in pages] == [1, 2, 3, 4, 5]
    assert all(p.meta.total == 30 and p.meta.total_pages == 5 for p in pages)
    assert [r.id for p in pages for r in p.data] == list(sandbox.store.runs)
    assert sandbox.stats.statuses == {200: 2 + 5}
    assert all(e.path.startswith("/api/" if with_api else "/organizations/")
               for e in sandbox.stats.journal)


async def test_sdk_update_task_owners_replaces_every_assignee_list(sandbox):
    """The official SDK's update_task(owners=...) sends what it is given: a caller adding
    one user (owners={"users": [new]}) detaches every other user, guest and group."""
    org, store = sandbox.org_id, sandbox.store
    task = next(t for t in store.tasks.values() if t["run_id"] and t["owners"]["users"])
    group = next(iter(store.groups))
    task["owners"] = {"users": list(task["owners"]["users"]), "guests": ["pat@x.example.org"],
                      "groups": [group]}
    old_users = list(task["owners"]["users"])
    newcomer = next(m for m in store.members if m not in old_users)
    one_off = next(t for t in store.tasks.values() if t["run_id"] is None)
    one_off_title = one_off["title"]

    def use_the_sdk():
        with TallyfySDK(api_key=sandbox.token, base_url=sandbox.url, max_retries=0) as sdk:
            read = sdk.get_task(org, task["run_id"], task["id"])
            updated = sdk.update_task(org, task["run_id"], task["id"],
                                      owners={"users": [newcomer]})
            try:
                sdk.update_standalone_task(org, one_off["id"], title="Renamed by the SDK")
            except Exception as exc:  # the SDK raises its own error types
                refused: Exception | None = exc
            else:
                refused = None
            return read, updated, refused

    read, updated, refused = await asyncio.to_thread(use_the_sdk)

    assert read.id == task["id"]
    assert updated.id == task["id"]
    # what the caller meant as "add one assignee" replaced all three lists
    assert task["owners"] == {"users": [newcomer], "guests": [], "groups": []}
    assert not set(old_users) & set(task["owners"]["users"])
    # a one-off task refuses an update without title, deadline and owners (422)
    assert refused is not None and one_off["title"] == one_off_title
    assert 422 in sandbox.stats.statuses
