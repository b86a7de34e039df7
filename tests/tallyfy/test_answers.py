"""A 2xx that does not show the record is not a success, and a redirect is never followed.

A small server in front of the real sandbox answers oddly; the sandbox's store says what
was really written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulk.sandbox import Faults
from tests.support.front import Front
from tests.support.helpers import on_records, rename_csv, run_ids, run_job, write_jsonl


@pytest.fixture
async def front(sandbox) -> AsyncIterator[Front]:
    async with Front(sandbox) as running:
        yield running


def _answer(make):
    """A hook answering every request of its method with `make(front, request)`."""

    async def hook(front, request, body):
        return make(front, request)

    return hook


def _record_of(front: Front, request: web.Request) -> dict:
    return front.sandbox.store.runs[request.path.rsplit("/", 1)[1]]


def _other_record(front: Front, request: web.Request) -> dict:
    asked = request.path.rsplit("/", 1)[1]
    other = next(rid for rid in sorted(front.sandbox.store.runs) if rid != asked)
    return front.sandbox.store.runs[other]


def _without_name(front: Front, request: web.Request) -> dict:
    record = dict(_record_of(front, request))
    del record["name"]
    return record


ODD_ANSWERS = {
    "empty-body": lambda f, r: web.Response(status=200),
    "empty-204": lambda f, r: web.Response(status=204),
    "html-200": lambda f, r: web.Response(status=200, content_type="text/html",
                                          text="<html><body>Welcome!</body></html>"),
    "data-empty": lambda f, r: web.json_response({"data": {}}),
    "a-list": lambda f, r: web.json_response({"data": []}),
    "another-record": lambda f, r: web.json_response({"data": _other_record(f, r)}),
    "without-the-changed-field": lambda f, r: web.json_response({"data": _without_name(f, r)}),
}


@pytest.mark.parametrize("odd", list(ODD_ANSWERS))
async def test_a_put_answered_without_the_record_is_read_back_and_fails_if_not_there(
        front, tmp_path, odd):
    # Issue 13: an answer that does not show the change is read back at once; the read
    # shows the write did not land, so the row is `failed` (not in doubt: nothing of ours
    # is there, no before/after for undo), a transient failure worth another try.
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    old_name = sandbox.store.runs[rid]["name"]
    front.hooks["PUT"] = _answer(ODD_ANSWERS[odd])  # answered here, never applied

    summary, entries = await run_job(front.sandbox, rename_csv(tmp_path / "r.csv", [rid], "New"),
                                         max_attempts=3, via=front)

    [entry] = entries
    assert entry.status == "failed", entry.error
    assert (entry.before, entry.after) == (None, None)
    assert "without the record" in entry.error and f"PUT runs/{rid}" in entry.error
    assert summary.exit_code == 1
    assert sandbox.store.runs[rid]["name"] == old_name
    # Each write read back at once; three attempts, and three more in the end-of-job pass.
    assert front.methods == ["GET", "PUT", "GET"] * 6


@pytest.mark.parametrize("odd", ["empty-body", "html-200", "data-empty", "another-record"])
async def test_a_read_answered_without_the_record_fails_and_sends_nothing(front, tmp_path, odd):
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    front.hooks["GET"] = _answer(ODD_ANSWERS[odd])

    summary, entries = await run_job(front.sandbox, rename_csv(tmp_path / "r.csv", [rid], "New"),
                                         max_attempts=2, via=front)

    [entry] = entries
    assert entry.status == "failed"
    assert "without the record" in entry.error
    assert summary.exit_code == 1
    # Two attempts, then the end-of-job pass (issue 7) tries the transient failure twice more.
    assert front.methods == ["GET", "GET"] * 2
    assert sandbox.stats.writes_per_record[rid] == 0


async def test_a_read_without_the_membership_lists_is_retried_then_fails(front, tmp_path):
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]

    def without_users(f, r):
        record = dict(_record_of(f, r))
        del record["users"]
        return web.json_response({"data": record})

    front.hooks["GET"] = _answer(without_users)

    _summary, entries = await run_job(front.sandbox, rename_csv(tmp_path / "r.csv", [rid], "New"),
                                          max_attempts=2, via=front)

    assert entries[0].status == "failed"
    assert "the record lacks users" in entries[0].error
    assert "PUT" not in front.methods


async def test_a_write_that_landed_but_was_answered_without_the_record_is_read_back(
    front, tmp_path
):
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    old_name = sandbox.store.runs[rid]["name"]

    async def applied_then_empty(f, request, body):
        status, _data, _headers = await f.forward(request, body)  # the sandbox applies it
        assert status == 200
        return web.json_response({"data": {}})

    front.hooks["PUT"] = applied_then_empty

    summary, entries = await run_job(front.sandbox, rename_csv(tmp_path / "r.csv", [rid], "New"),
                                     via=front)

    assert entries[0].status == "ok", entries[0].error
    assert entries[0].before == {"name": old_name}
    assert entries[0].after == {"name": "New 0"}
    assert summary.exit_code == 0
    assert front.methods == ["GET", "PUT", "GET"]  # the read-back proved it; no 2nd write
    assert sandbox.stats.writes_per_record[rid] == 1


class Elsewhere:
    """Another origin that answers `{"data": {}}` to anything: the issue's reproduction."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, await request.read()))
        return web.json_response({"data": {}})


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[Elsewhere, TestServer]]:
    state = Elsewhere()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield state, server
    finally:
        await server.close()


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_puts_redirected_to_another_origin_fail_and_the_body_goes_nowhere(
    front, elsewhere, tmp_path, status
):
    sandbox = front.sandbox
    state, other = elsewhere
    ids = run_ids(sandbox, 3)
    names = {rid: sandbox.store.runs[rid]["name"] for rid in ids}

    async def redirect(f, request, body):
        target = other.make_url(request.path).with_query(sig="s3cret")
        return web.Response(status=status, headers={"Location": str(target)})

    front.hooks["PUT"] = redirect

    summary, entries = await run_job(front.sandbox, rename_csv(tmp_path / "r.csv", ids, "Moved"),
                                     via=front)

    # Before: "ok 3", exit 0, while nothing was written anywhere.
    assert [e.status for e in entries] == ["failed"] * 3
    assert summary.exit_code == 1
    assert state.seen == []
    assert {rid: sandbox.store.runs[rid]["name"] for rid in ids} == names
    assert sum(sandbox.stats.writes_per_record.values()) == 0
    for entry, rid in zip(entries, ids, strict=True):
        assert entry.error == (f"HTTP {status}: redirect to 127.0.0.1:{other.port}, "
                               f"not followed (PUT runs/{rid})")
        assert entry.http_status == status
        assert entry.attempts == 1  # final: asking again would be redirected again
    assert front.methods == ["GET", "PUT"] * 3
    assert "s3cret" not in json.dumps([e.error for e in entries])


async def test_the_in_doubt_mark_committed_before_the_put_holds_the_before_values(
    front, tmp_path
):
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    old_name = sandbox.store.runs[rid]["name"]
    ledger = tmp_path / "mark.db"
    marks = []

    async def look_at_the_ledger(f, request, body):
        # What a crash at this moment would leave: the committed mark, read from the file.
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            marks.append(db.execute("SELECT status, before, after FROM rows").fetchall())
        return None  # then forwarded: the write lands

    front.hooks["PUT"] = look_at_the_ledger

    _summary, entries = await run_job(front.sandbox, rename_csv(tmp_path / "r.csv", [rid], "New"),
                                          ledger=ledger, via=front)

    assert entries[0].status == "ok"
    [[(status, before, after)]] = marks
    assert status == "in_doubt"
    assert json.loads(before) == {"name": old_name}
    assert json.loads(after) == {"name": "New 0"}


async def test_a_200_showing_the_old_value_is_not_ok(sandbox, tmp_path):
    # The API drops what it ignores and still answers 200: an answer that shows the record
    # but not the value written proves the write did not land. Never `ok`.
    rid = run_ids(sandbox, 1)[0]
    old_name = sandbox.store.runs[rid]["name"]
    sandbox.faults = Faults(unapplied_200_rate=1.0)

    summary, entries = await run_job(sandbox, rename_csv(tmp_path / "r.csv", [rid], "New"))

    [entry] = entries
    assert entry.status == "failed", (entry.status, entry.error)
    assert "did not apply name" in entry.error and "200" in entry.error
    assert sandbox.store.runs[rid]["name"] == old_name
    assert [e.fault for e in on_records(sandbox) if e.method == "PUT"] == ["unapplied_200"]
    assert summary.exit_code == 1


async def test_a_task_answered_200_with_its_old_title_is_not_ok(sandbox, tmp_path):
    task = next(t for t in sandbox.store.tasks.values()
                if t["run_id"] and t["status"] != "completed")
    old_title = task["title"]
    sandbox.faults = Faults(unapplied_200_rate=1.0)
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"run_id": task["run_id"], "task_id": task["id"], "title": "Never applied"}])

    _, entries = await run_job(sandbox, path, target="tasks")

    assert entries[0].status == "failed" and "did not apply title" in entries[0].error
    assert task["title"] == old_title
