"""should_retry, parse_retry_after and RetryPolicy (backoff and the tenacity loop)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bulk.engine.clock import SkipClock
from bulk.engine.errors import AuthError, HttpError, TransportError
from bulk.engine.retry import MAX_RETRY_AFTER, RetryPolicy, parse_retry_after, should_retry

# -- should_retry -------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_transient_statuses_are_retried(status):
    assert should_retry(HttpError(status)) is True


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_client_errors_are_final(status):
    assert should_retry(HttpError(status)) is False


def test_auth_error_is_final():
    assert should_retry(AuthError(401, {"message": "Unauthenticated."})) is False


def test_transport_error_is_retried():
    assert should_retry(TransportError("timed out waiting for the server")) is True


@pytest.mark.parametrize(
    "exc", [asyncio.CancelledError(), ValueError("x"), RuntimeError(), KeyboardInterrupt()]
)
def test_anything_else_is_never_retried(exc):
    assert should_retry(exc) is False


# -- parse_retry_after --------------------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("1e9", MAX_RETRY_AFTER),
        ("121", 120.0),
        ("inf", MAX_RETRY_AFTER),
    ],
)
def test_delta_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_clamp_is_120_seconds():
    assert MAX_RETRY_AFTER == 120.0


def test_http_date_in_the_future():
    header = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, now=NOW) == 30.0


def test_http_date_far_in_the_future_is_clamped():
    header = format_datetime(NOW + timedelta(days=2), usegmt=True)
    assert parse_retry_after(header, now=NOW) == MAX_RETRY_AFTER


def test_http_date_in_the_past_is_zero():
    header = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


def test_http_date_literal():
    assert parse_retry_after("Wed, 01 May 2024 12:01:00 GMT", now=NOW) == 60.0


@pytest.mark.parametrize("value", ["soon", "5 seconds", "", "   ", "nan", "Mon, 99 Foo"])
def test_garbage_is_none(value):
    assert parse_retry_after(value) is None


def test_absent_is_none():
    assert parse_retry_after(None) is None


# -- RetryPolicy: backoff and waits -------------------------------------------------


def test_backoff_bounds_with_injected_rng():
    policy = RetryPolicy(max_attempts=5, base=0.5, cap=30.0)
    assert policy.backoff(1, rng=lambda: 0.0) == 0.0
    assert policy.backoff(1, rng=lambda: 1.0) == 0.5
    assert policy.backoff(2, rng=lambda: 1.0) == 1.0
    assert policy.backoff(4, rng=lambda: 1.0) == 4.0
    assert policy.backoff(4, rng=lambda: 0.5) == 2.0
    assert policy.backoff(7, rng=lambda: 1.0) == 30.0  # 32 capped
    assert policy.backoff(50, rng=lambda: 1.0) == 30.0
    assert policy.backoff(50, rng=lambda: 0.0) == 0.0


def test_backoff_of_a_huge_attempt_number_is_the_cap():
    # 0.5 * 2**2000 does not fit a float: must still be the cap, not OverflowError.
    assert RetryPolicy(cap=30.0).backoff(2001, rng=lambda: 1.0) == 30.0


def test_backoff_default_rng_stays_in_bounds():
    policy = RetryPolicy(base=0.5, cap=30.0)
    for attempt in range(1, 12):
        for _ in range(20):
            assert 0.0 <= policy.backoff(attempt) <= min(30.0, 0.5 * 2 ** (attempt - 1))


def test_wait_after_a_429_is_zero_the_pacer_holds_everyone():
    policy = RetryPolicy()
    assert policy.wait_after(HttpError(429, retry_after=9.0), 3) == 0.0
    assert policy.wait_after(HttpError(429), 1) == 0.0


def test_wait_after_a_5xx_honours_its_retry_after():
    assert RetryPolicy().wait_after(HttpError(503, retry_after=7.0), 1) == 7.0


def test_wait_after_a_transport_error_is_the_backoff():
    policy = RetryPolicy(base=0.5, cap=30.0)
    for attempt in (1, 2, 3):
        wait = policy.wait_after(TransportError("dropped"), attempt)
        assert 0.0 <= wait <= 0.5 * 2 ** (attempt - 1)


# -- RetryPolicy.retrying: the loop itself ------------------------------------------


async def loop_with(policy: RetryPolicy, clock: SkipClock, attempt_fn):
    async for attempt in policy.retrying(clock):
        with attempt:
            return await attempt_fn()
    raise AssertionError("unreachable")


async def run_through(policy: RetryPolicy, clock: SkipClock, attempt_fn):
    return await policy.run(clock, lambda _number: attempt_fn())


@pytest.fixture(params=[loop_with, run_through], ids=["retrying", "run"])
def run_with(request):
    """Every test of the loop holds for tenacity's loop as written out and for
    `RetryPolicy.run` (its first attempt outside tenacity): same calls, waits, errors."""
    return request.param


async def test_retries_a_transport_error_then_succeeds(run_with):
    clock = SkipClock()
    calls = 0

    async def flaky():
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransportError("server closed the connection without an answer")
        return "done"

    assert await run_with(RetryPolicy(max_attempts=5, base=0.5), clock, flaky) == "done"
    assert calls == 3
    waits = [seconds for _, seconds in clock.sleeps]
    assert len(waits) == 2
    assert 0.0 <= waits[0] <= 0.5
    assert 0.0 <= waits[1] <= 1.0


async def test_waits_go_through_the_clock(run_with):
    clock = SkipClock()
    answers = [HttpError(503, retry_after=2.5), HttpError(429, retry_after=40.0)]

    async def attempt():
        if answers:
            raise answers.pop(0)
        return 1

    assert await run_with(RetryPolicy(), clock, attempt) == 1
    # 503 with Retry-After waits for it; a 429 waits 0 here (the pacer's cooldown holds).
    assert [seconds for _, seconds in clock.sleeps] == [2.5, 0.0]
    assert clock.skipped == 2.5


async def test_stops_after_max_attempts_and_reraises_the_last_error(run_with):
    clock = SkipClock()
    calls = 0

    async def always_down():
        nonlocal calls
        calls += 1
        raise HttpError(502, f"bad gateway {calls}")

    with pytest.raises(HttpError) as raised:
        await run_with(RetryPolicy(max_attempts=3), clock, always_down)
    assert calls == 3
    assert raised.value.status == 502
    assert raised.value.body == "bad gateway 3"
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(("kind", "status"), [(HttpError, 404), (HttpError, 422), (AuthError, 401)])
async def test_never_retries_a_final_error(kind, status, run_with):
    # Built here, not in the parametrize list: a raised exception keeps its traceback
    # (and so this test's event loop) alive for as long as the object lives.
    error = kind(status)
    clock = SkipClock()
    calls = 0

    async def final():
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(HttpError) as raised:
        await run_with(RetryPolicy(max_attempts=5), clock, final)
    assert raised.value is error
    assert calls == 1
    assert clock.sleeps == []


async def test_does_not_retry_a_cancelled_error_raised_inside(run_with):
    clock = SkipClock()
    calls = 0

    async def cancelled():
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_with(RetryPolicy(max_attempts=5), clock, cancelled)
    assert calls == 1
    assert clock.sleeps == []


async def test_a_cancelled_task_propagates_out_of_the_loop(run_with):
    clock = SkipClock()
    calls = 0
    started = asyncio.Event()

    async def hangs():
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_with(RetryPolicy(max_attempts=5), clock, hangs))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert calls == 1
    assert clock.sleeps == []


async def test_each_call_gets_a_fresh_controller(run_with):
    policy = RetryPolicy(max_attempts=2)
    clock = SkipClock()
    assert policy.retrying(clock) is not policy.retrying(clock)
    calls = 0

    async def fails_once():
        nonlocal calls
        calls += 1
        if calls % 2:
            raise TransportError("dropped")
        return calls

    # Two calls in a row, each with its own full budget of attempts.
    assert await run_with(policy, clock, fails_once) == 2
    assert await run_with(policy, clock, fails_once) == 4


async def test_429s_do_not_spend_attempts(run_with):
    clock = SkipClock()
    answers = [HttpError(429, retry_after=1.0)] * 10 + [HttpError(503), HttpError(429)]

    async def attempt():
        if answers:
            raise answers.pop(0)
        return "done"

    # Two attempts allowed: only the 503 spends one.
    assert await run_with(RetryPolicy(max_attempts=2, base=0.01), clock, attempt) == "done"
    assert answers == []


async def test_run_numbers_the_attempts_and_starts_tenacity_only_on_a_failure(monkeypatch):
    policy, clock = RetryPolicy(max_attempts=4, base=0.01), SkipClock()
    controllers = 0
    real = RetryPolicy.retrying

    def counted(self, clock):
        nonlocal controllers
        controllers += 1
        return real(self, clock)

    monkeypatch.setattr(RetryPolicy, "retrying", counted)
    seen: list[int] = []

    async def succeeds(number):
        seen.append(number)
        return "done"

    assert await policy.run(clock, succeeds) == "done"
    assert (seen, controllers, clock.sleeps) == ([1], 0, [])

    seen.clear()

    async def fails_twice(number):
        seen.append(number)
        if number < 3:
            raise TransportError("dropped")
        return number

    # The first failure is tenacity's attempt 1: the numbers go on 2, 3, as in its loop.
    assert await policy.run(clock, fails_twice) == 3
    assert (seen, controllers, len(clock.sleeps)) == ([1, 2, 3], 1, 2)
