"""What tests and benchmarks can see: stats and journal, from Python and over HTTP."""

from __future__ import annotations

import asyncio

from bulk.sandbox import Faults, JournalEntry


async def test_stats_count_requests_writes_statuses_and_faults(api, sandbox, first_run, clock):
    sandbox.set_rate_limit(100, burst=4)
    await api.get(f"/runs/{first_run['id']}")
    await api.put(f"/runs/{first_run['id']}", {"name": "one"})
    await api.put(f"/runs/{first_run['id']}", {"name": ""})
    await api.get("/runs")
    await api.get("/runs")  # 429
    await api.observe("GET", "/stats")  # not counted

    stats = sandbox.stats
    assert stats.requests == 5
    assert stats.writes == 1 and stats.writes_per_record == {first_run["id"]: 1}
    assert stats.rate_limited == 1
    assert stats.statuses == {200: 3, 422: 1, 429: 1}
    assert stats.faults == {"rate_limited": 1}
    assert stats.in_flight == 0 and stats.peak_concurrency == 1

    over_http = (await api.observe("GET", "/stats")).body
    assert over_http["requests"] == 5
    assert over_http["writes_per_record"] == {first_run["id"]: 1}
    assert over_http["rate_limited"] == 1
    assert over_http["statuses"] == {"200": 3, "422": 1, "429": 1}
    assert over_http["peak_concurrency"] == 1


async def test_journal_records_method_path_status_and_time(api, sandbox, first_run, clock):
    await api.get(f"/runs/{first_run['id']}")
    clock.advance(2.5)
    await api.put(f"/runs/{first_run['id']}", {"name": ""}, prefix="")

    first, second = sandbox.stats.journal
    assert isinstance(first, JournalEntry)
    assert (first.method, first.path, first.status) == (
        "GET", f"/api/organizations/{sandbox.org_id}/runs/{first_run['id']}", 200)
    assert (second.method, second.path, second.status) == (
        "PUT", f"/organizations/{sandbox.org_id}/runs/{first_run['id']}", 422)
    assert second.time - first.time == 2.5

    over_http = (await api.observe("GET", "/journal", params={"limit": 1})).body["data"]
    assert over_http == [second.to_dict()]
    assert set(over_http[0]) == {"time", "method", "path", "status", "request_id", "fault",
                                 "body"}
    # A write's body as the sandbox received it (what a test checks a client sent); none
    # for a read.
    assert (first.body, second.body) == (None, {"name": ""})


async def test_journal_is_bounded(start_sandbox, api_for):
    sandbox = await start_sandbox(journal_size=5)
    api = api_for(sandbox)
    run_ids = list(sandbox.store.runs)[:8]

    for run_id in run_ids:
        await api.get(f"/runs/{run_id}")

    assert sandbox.stats.requests == 8
    assert [e.path.rsplit("/", 1)[1] for e in sandbox.stats.journal] == run_ids[3:]


async def test_peak_concurrency_counts_requests_in_progress_together(start_sandbox, api_for):
    arrived = 0
    all_in = asyncio.Event()

    async def gate(seconds: float) -> None:  # the latency wait holds each request until 8 are in
        nonlocal arrived
        arrived += 1
        if arrived == 8:
            all_in.set()
        await all_in.wait()

    sandbox = await start_sandbox(latency_ms=1, sleep=gate)
    api = api_for(sandbox)

    replies = await asyncio.gather(*(api.get(f"/runs/{r}") for r in list(sandbox.store.runs)[:8]))

    assert [r.status for r in replies] == [200] * 8
    assert sandbox.stats.peak_concurrency == 8
    assert sandbox.stats.in_flight == 0


async def test_reset_stats_zeroes_everything(api, sandbox, first_run):
    await api.put(f"/runs/{first_run['id']}", {"name": "x"})
    counters = sandbox.stats.writes_per_record

    sandbox.reset_stats()

    stats = sandbox.stats
    assert (stats.requests, stats.writes, stats.rate_limited, stats.peak_concurrency) == (0,) * 4
    assert not stats.journal and not stats.statuses
    assert counters is stats.writes_per_record  # references stay live
    assert sandbox.store.runs[first_run["id"]]["name"] == "x"  # the data is untouched


async def test_reset_over_http_and_reset_of_data(api, sandbox, first_run):
    original = first_run["name"]
    await api.put(f"/runs/{first_run['id']}", {"name": "changed"})

    await api.observe("POST", "/reset")
    assert sandbox.stats.requests == 0
    assert sandbox.store.runs[first_run["id"]]["name"] == "changed"

    await api.observe("POST", "/reset", params={"data": "1"})
    assert sandbox.store.runs[first_run["id"]]["name"] == original
    assert (await api.get(f"/runs/{first_run['id']}")).data["name"] == original


async def test_record_endpoint_shows_a_record_and_its_writes(api, sandbox, first_run,
                                                             first_checklist):
    await api.put(f"/runs/{first_run['id']}", {"name": "seen"})
    sandbox.mark_forbidden(first_checklist["id"])

    run = (await api.observe("GET", f"/records/{first_run['id']}")).body
    checklist = (await api.observe("GET", f"/records/{first_checklist['id']}")).body
    missing = await api.observe("GET", "/records/" + "9" * 32)

    assert (run["type"], run["data"]["name"], run["writes"], run["forbidden"]) == (
        "run", "seen", 1, False)
    assert (checklist["type"], checklist["forbidden"]) == ("checklist", True)
    assert missing.status == 404


async def test_org_endpoint_exports_the_current_data(api, sandbox, first_run):
    await api.put(f"/runs/{first_run['id']}", {"name": "exported"})

    org = (await api.observe("GET", "/org")).body

    assert org["org_id"] == sandbox.org_id and "token" not in org
    assert len(org["runs"]) == 30 and len(org["members"]) == len(sandbox.store.members)
    assert next(r for r in org["runs"] if r["id"] == first_run["id"])["name"] == "exported"


async def test_settings_and_index(api, sandbox):
    sandbox.faults = Faults(slow_rate=0.5, slow_ms=100)
    sandbox.latency_ms = 7

    settings = (await api.observe("GET", "/settings")).body
    index = (await api.observe("GET", "")).body

    assert settings["faults"]["slow_rate"] == 0.5 and settings["faults"]["slow_ms"] == 100
    assert settings["latency_ms"] == 7 and settings["rate_limit"] is None
    assert any("/stats" in endpoint for endpoint in index["endpoints"])
    refused = await api.observe("PUT", "/settings", json={"latency": 5})
    assert refused.status == 422 and "latency" in refused.body["message"]


async def test_a_person_edits_a_record_only_the_given_fields_change(api, sandbox):
    run_id, run = next(iter(sandbox.store.runs.items()))
    users, groups, stamp = list(run["users"]), list(run["groups"]), run["last_updated"]
    key = next(iter(run["prerun"]))
    requests = sandbox.stats.requests

    reply = await api.observe("PATCH", f"/records/{run_id}",
                              json={"name": "Edited in the web app", "prerun": {key: "new"}})

    assert reply.status == 200
    assert run["name"] == "Edited in the web app" and run["prerun"][key] == "new"
    assert run["users"] == users and run["groups"] == groups  # no wipe: not an API PUT
    assert run["last_updated"] > stamp
    assert sandbox.stats.requests == requests and not sandbox.stats.writes_per_record
    missing = await api.observe("PATCH", "/records/" + "0" * 32, json={"name": "x"})
    assert missing.status == 404
    wrong = await api.observe("PATCH", f"/records/{run_id}", json=["name"])
    assert wrong.status == 422


async def test_edit_as_person_from_a_test(sandbox):
    template_id = next(iter(sandbox.store.checklists))
    record = sandbox.edit_as_person(template_id, webhook=None, title="T")
    assert record is sandbox.store.checklists[template_id]
    assert record["webhook"] is None and record["title"] == "T"
