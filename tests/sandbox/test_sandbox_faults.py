"""Seeded faults: each kind, what it does to writes, and determinism under the seed."""

from __future__ import annotations

import asyncio
import copy

import aiohttp
import pytest

from bulk.sandbox import Faults


def html_error(reply) -> bool:
    return (reply.status in (500, 502, 503, 504)
            and reply.headers["Content-Type"].startswith("text/html")
            and "<html>" in reply.body and "nginx" in reply.body)


async def test_error_fault_is_a_5xx_html_page_and_the_write_is_not_applied(start_sandbox,
                                                                           api_for):
    sandbox = await start_sandbox(faults=Faults(error_rate=1.0))
    api = api_for(sandbox)
    run = next(iter(sandbox.store.runs.values()))
    before = copy.deepcopy(run)

    get = await api.get(f"/runs/{run['id']}")
    put = await api.put(f"/runs/{run['id']}", {"name": "lost"})
    listing = await api.get("/runs")

    assert html_error(get) and html_error(put) and html_error(listing)
    assert get.headers["X-Request-Id"]
    assert sandbox.store.runs[run["id"]] == before
    assert sandbox.stats.writes_per_record[run["id"]] == 0
    assert [e.fault for e in sandbox.stats.journal] == ["error"] * 3


async def test_error_faults_use_all_four_gateway_statuses(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(error_rate=1.0))
    api = api_for(sandbox)

    seen = {(await api.get(f"/runs/{run_id}")).status for run_id in sandbox.store.runs}

    assert seen == {500, 502, 503, 504}


async def test_drop_fault_closes_the_connection_without_an_answer(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(drop_rate=1.0))
    api = api_for(sandbox)
    run = next(iter(sandbox.store.runs.values()))
    before = copy.deepcopy(run)

    with pytest.raises(aiohttp.ClientConnectionError):
        await api.get(f"/runs/{run['id']}")
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.put(f"/runs/{run['id']}", {"name": "lost"})

    assert sandbox.store.runs[run["id"]] == before
    # aiohttp's client silently sends an idempotent request (PUT included) a second time
    # after a disconnect, so each call may have reached the sandbox twice.
    journal = [(e.status, e.fault) for e in sandbox.stats.journal]
    assert set(journal) == {(None, "drop")} and len(journal) in (2, 3, 4)
    assert sandbox.stats.statuses[None] == len(journal)

    sandbox.faults = Faults()  # the server is fine afterwards
    assert (await api.get(f"/runs/{run['id']}")).status == 200


async def test_applied_503_applies_the_write_then_answers_503(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(applied_503_rate=1.0))
    api = api_for(sandbox)
    run = next(iter(sandbox.store.runs.values()))

    put = await api.put(f"/runs/{run['id']}", {"name": "applied anyway", "users": run["users"]})
    get = await api.get(f"/runs/{run['id']}")  # PUT only: reads are untouched

    assert put.status == 503 and html_error(put)
    assert get.status == 200 and get.data["name"] == "applied anyway"
    assert sandbox.stats.writes_per_record[run["id"]] == 1
    assert [e.fault for e in sandbox.stats.journal] == ["applied_503", None]


async def test_applied_503_does_not_turn_a_refused_write_into_a_503(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(applied_503_rate=1.0))
    api = api_for(sandbox)
    checklist = next(iter(sandbox.store.checklists.values()))

    reply = await api.put(f"/checklists/{checklist['id']}", {"summary": "no title"})

    assert reply.status == 422


async def test_unapplied_200_answers_the_old_record_and_applies_nothing(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(unapplied_200_rate=1.0))
    api = api_for(sandbox)
    run = next(iter(sandbox.store.runs.values()))
    before = copy.deepcopy(run)

    put = await api.put(f"/runs/{run['id']}", {"name": "never applied", "users": run["users"]})
    get = await api.get(f"/runs/{run['id']}")  # PUT only: reads are untouched
    missing = await api.put(f"/runs/{'0' * 32}", {"name": "x"})

    assert put.status == 200 and put.data == before  # the old value, shown as an answer
    assert get.status == 200 and get.data == before
    assert sandbox.store.runs[run["id"]] == before
    assert sandbox.stats.writes_per_record[run["id"]] == 0
    assert missing.status == 404  # an unknown record is still answered as one
    assert [e.fault for e in sandbox.stats.journal] == ["unapplied_200", None, None]


async def test_unapplied_200_on_a_task_answers_the_task_unchanged(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(unapplied_200_rate=1.0))
    api = api_for(sandbox)
    task = next(t for t in sandbox.store.tasks.values() if t.get("run_id"))
    before = copy.deepcopy(task)

    put = await api.put(f"/runs/{task['run_id']}/tasks/{task['id']}", {"title": "never"})

    assert put.status == 200 and put.data["title"] == before["title"]
    assert sandbox.store.tasks[task["id"]] == before


async def test_slow_fault_delays_the_answer_by_slow_ms(start_sandbox, api_for, recording_sleep):
    sandbox = await start_sandbox(faults=Faults(slow_rate=1.0, slow_ms=5_000),
                                  sleep=recording_sleep)
    api = api_for(sandbox)
    run = next(iter(sandbox.store.runs.values()))

    get = await api.get(f"/runs/{run['id']}")

    assert get.status == 200
    assert recording_sleep.delays == [5.0]
    assert sandbox.stats.journal[-1].fault == "slow"


async def test_slow_put_is_applied_although_the_client_gave_up(start_sandbox, api_for):
    # The real (interruptible) wait: the answer is a minute late, the client waits 0.2 s.
    sandbox = await start_sandbox(faults=Faults(slow_rate=1.0, slow_ms=60_000))
    api = api_for(sandbox)
    run = next(iter(sandbox.store.runs.values()))

    with pytest.raises(asyncio.TimeoutError):
        await api.put(f"/runs/{run['id']}", {"name": "done, unseen"},
                      timeout=aiohttp.ClientTimeout(total=0.2))

    assert sandbox.store.runs[run["id"]]["name"] == "done, unseen"
    assert sandbox.stats.writes_per_record[run["id"]] == 1
    # stopping the sandbox (fixture teardown) ends the pending wait at once


async def test_latency_is_fixed_plus_seeded_jitter(start_sandbox, api_for, recording_sleep):
    sandbox = await start_sandbox(latency_ms=100, jitter_ms=50, sleep=recording_sleep)
    api = api_for(sandbox)

    for run_id in list(sandbox.store.runs)[:10]:
        await api.get(f"/runs/{run_id}")
    await api.put(f"/runs/{run_id}", {"name": "x"})

    delays = recording_sleep.delays
    assert len(delays) == 11
    assert all(0.1 <= d < 0.15 for d in delays)
    assert len(set(delays)) == 11  # the jitter is drawn per request


async def test_no_latency_means_no_wait_at_all(start_sandbox, api_for, recording_sleep):
    api = api_for(await start_sandbox(sleep=recording_sleep))
    await api.get("/runs")
    assert recording_sleep.delays == []


async def fates(api, run_ids: list[str], rounds: int, *, concurrently: bool) -> dict:
    """(run id, attempt) -> status, or "drop"; each round GETs every run once."""
    async def one(run_id: str, attempt: int) -> tuple[tuple[str, int], object]:
        try:
            return (run_id, attempt), (await api.get(f"/runs/{run_id}")).status
        except aiohttp.ClientConnectionError:
            return (run_id, attempt), "drop"

    seen = {}
    for attempt in range(rounds):
        if concurrently:
            results = await asyncio.gather(*(one(r, attempt) for r in reversed(run_ids)))
        else:
            results = [await one(r, attempt) for r in run_ids]
        seen.update(results)
    return seen


MIXED = Faults(error_rate=0.3, drop_rate=0.1)


async def test_faults_are_the_same_per_record_whatever_the_arrival_order(start_sandbox,
                                                                         api_for):
    first = await start_sandbox(seed=11, faults=MIXED)
    again = await start_sandbox(seed=11, faults=MIXED)
    run_ids = list(first.store.runs)

    in_order = await fates(api_for(first), run_ids, 3, concurrently=False)
    shuffled = await fates(api_for(again), run_ids, 3, concurrently=True)

    assert in_order == shuffled
    outcomes = list(in_order.values())
    assert outcomes.count(200) > 30 and outcomes.count("drop") > 0
    assert any(o in (500, 502, 503, 504) for o in outcomes)


async def test_another_seed_gives_another_day(start_sandbox, api_for):
    one = await start_sandbox(seed=11, faults=MIXED)
    other = await start_sandbox(seed=12, faults=MIXED)

    assert await fates(api_for(one), list(one.store.runs), 2, concurrently=False) != \
        await fates(api_for(other), list(other.store.runs), 2, concurrently=False)


async def test_reset_stats_starts_the_fault_sequence_over(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(error_rate=0.5))
    api = api_for(sandbox)
    run_ids = list(sandbox.store.runs)[:5]

    before = await fates(api, run_ids, 4, concurrently=False)
    sandbox.reset_stats()
    after = await fates(api, run_ids, 4, concurrently=False)

    assert before == after
    assert set(before.values()) > {200}


async def test_faults_switch_on_and_off_at_runtime(api, sandbox, first_run):
    assert (await api.get(f"/runs/{first_run['id']}")).status == 200
    sandbox.faults = Faults(error_rate=1.0)
    assert html_error(await api.get(f"/runs/{first_run['id']}"))
    sandbox.faults = Faults()
    assert (await api.get(f"/runs/{first_run['id']}")).status == 200


async def test_faults_switch_over_http(api, first_run):
    reply = await api.observe("PUT", "/settings", json={"faults": {"error_rate": 1}})
    assert reply.status == 200 and reply.body["faults"]["error_rate"] == 1
    assert html_error(await api.get(f"/runs/{first_run['id']}"))

    refused = await api.observe("PUT", "/settings", json={"faults": {"error_rate": 2}})
    assert refused.status == 422
    assert (await api.observe("GET", "/settings")).body["faults"]["error_rate"] == 1


async def test_observation_endpoints_are_never_faulted(start_sandbox, api_for):
    sandbox = await start_sandbox(faults=Faults(error_rate=1.0, drop_rate=1.0), rate_limit=1,
                                  burst=1)
    api = api_for(sandbox)
    for _ in range(3):
        assert (await api.observe("GET", "/stats")).status == 200


@pytest.mark.parametrize("kwargs", [{"error_rate": 1.5}, {"drop_rate": -0.1},
                                    {"slow_rate": "high"}, {"slow_ms": -1}])
def test_nonsense_faults_are_refused(kwargs):
    with pytest.raises(ValueError):
        Faults(**kwargs)
