"""The per-token quota: a token bucket on the sandbox's (injected) clock."""

from __future__ import annotations

import copy

import pytest

from bulk.sandbox import SandboxConfig


async def statuses(api, path: str, count: int) -> list[int]:
    return [(await api.get(path)).status for _ in range(count)]


async def test_burst_then_429_with_retry_after_then_refill(start_sandbox, api_for, clock):
    sandbox = await start_sandbox(rate_limit=2, burst=3)
    api = api_for(sandbox)

    assert await statuses(api, "/runs", 3) == [200, 200, 200]
    refused = await api.get("/runs")
    assert refused.status == 429
    assert refused.body["code"] == "RATE_LIMIT_EXCEEDED" and refused.body["message"]
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-Request-Id"]

    clock.advance(0.5)  # one request's worth at 2/s
    assert await statuses(api, "/runs", 2) == [200, 429]

    clock.advance(60)  # refills to the burst, not beyond
    assert await statuses(api, "/runs", 4) == [200, 200, 200, 429]
    assert sandbox.stats.rate_limited == 3
    assert [e.fault for e in sandbox.stats.journal].count("rate_limited") == 3


async def test_retry_after_is_whole_seconds_until_a_request_fits(start_sandbox, api_for, clock):
    api = api_for(await start_sandbox(rate_limit=0.25, burst=1))

    assert (await api.get("/runs")).status == 200
    assert (await api.get("/runs")).headers["Retry-After"] == "4"
    clock.advance(2.5)
    assert (await api.get("/runs")).headers["Retry-After"] == "2"
    clock.advance(1.5)
    assert (await api.get("/runs")).status == 200


async def test_default_burst_is_one_seconds_worth(start_sandbox, api_for):
    api = api_for(await start_sandbox(rate_limit=5))
    assert await statuses(api, "/runs", 6) == [200] * 5 + [429]


async def test_a_refused_write_is_not_applied(start_sandbox, api_for):
    sandbox = await start_sandbox(rate_limit=1, burst=1)
    api = api_for(sandbox)
    run = next(iter(sandbox.store.runs.values()))
    await api.get("/runs")
    before = copy.deepcopy(run)

    reply = await api.put(f"/runs/{run['id']}", {"name": "too fast"})

    assert reply.status == 429
    assert sandbox.store.runs[run["id"]] == before
    assert sandbox.stats.writes_per_record[run["id"]] == 0


async def test_requests_refused_for_their_token_do_not_use_the_quota(start_sandbox, api_for):
    api = api_for(await start_sandbox(rate_limit=1, burst=1))

    for _ in range(3):
        assert (await api.get("/runs", headers={"Authorization": "Bearer nope"})).status == 401
    assert (await api.get("/runs")).status == 200


async def test_the_quota_is_off_by_default_and_switchable_at_runtime(api, sandbox):
    assert await statuses(api, "/runs", 20) == [200] * 20

    sandbox.set_rate_limit(1, burst=2)
    assert await statuses(api, "/runs", 3) == [200, 200, 429]

    sandbox.set_rate_limit(None)
    assert await statuses(api, "/runs", 5) == [200] * 5


async def test_the_quota_is_switchable_over_http(api, sandbox):
    changed = await api.observe("PUT", "/settings", json={"rate_limit": 1, "burst": 1})
    assert changed.status == 200
    assert (changed.body["rate_limit"], changed.body["burst"]) == (1, 1)
    assert await statuses(api, "/runs", 2) == [200, 429]

    await api.observe("PUT", "/settings", json={"rate_limit": None})
    assert await statuses(api, "/runs", 3) == [200] * 3


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (1, 0.5)])
def test_nonsense_quota_is_refused(rate, burst):
    with pytest.raises(ValueError):
        SandboxConfig(rate_limit=rate, burst=burst)


@pytest.mark.parametrize(("mode", "headers"), [("always", [True, True, True, True]),
                                               ("sometimes", [True, False, True, False]),
                                               ("never", [False, False, False, False])])
async def test_retry_after_always_sometimes_or_never(start_sandbox, api_for, mode, headers):
    api = api_for(await start_sandbox(rate_limit=1, burst=1, retry_after=mode))
    assert (await api.get("/runs")).status == 200
    refused = [await api.get("/runs") for _ in range(4)]
    assert [r.status for r in refused] == [429] * 4
    assert ["Retry-After" in r.headers for r in refused] == headers


def test_an_unknown_retry_after_mode_is_refused():
    with pytest.raises(ValueError, match="retry_after"):
        SandboxConfig(retry_after="often")


async def test_with_a_quota_every_answer_tells_its_limit_and_what_remains(start_sandbox,
                                                                            api_for, clock):
    api = api_for(await start_sandbox(rate_limit=2, burst=3))
    answers = [await api.get("/runs") for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Limit"] for a in answers] == ["3"] * 4
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.body["code"] == "RATE_LIMIT_EXCEEDED"
    assert refused.headers["Retry-After"] == "1"
    # Laravel's X-RateLimit-Reset: the Unix time a request fits again (here 0.5 s away).
    import time
    reset = int(refused.headers["X-RateLimit-Reset"])
    assert time.time() <= reset <= time.time() + 2
    assert "X-RateLimit-Reset" not in answers[0].headers
    clock.advance(1.0)  # two requests' worth
    assert (await api.get("/runs")).headers["X-RateLimit-Remaining"] == "1"


async def test_without_rate_headers_a_client_must_find_the_quota(start_sandbox, api_for):
    api = api_for(await start_sandbox(rate_limit=2, burst=1, rate_headers=False))
    ok, refused = await api.get("/runs"), await api.get("/runs")
    assert (ok.status, refused.status) == (200, 429)
    assert refused.headers["Retry-After"] == "1"  # a 429 still says when to come back
    for answer in (ok, refused):
        assert not {"X-RateLimit-Limit", "X-RateLimit-Remaining",
                    "X-RateLimit-Reset"} & set(answer.headers)


async def test_without_a_quota_no_rate_headers(start_sandbox, api_for):
    answer = await api_for(await start_sandbox()).get("/runs")
    assert answer.status == 200 and "X-RateLimit-Limit" not in answer.headers
