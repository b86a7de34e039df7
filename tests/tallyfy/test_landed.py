"""Reads that age, writes that land, and what undo gets (issue 13, points 2-6)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bulk.engine.clock import SkipClock
from bulk.engine.errors import TransportError
from bulk.sandbox import Sandbox
from bulk.tallyfy.client import TallyfyClient
from bulk.tallyfy.undo import write_undo
from tests.support.front import Front
from tests.support.helpers import config, run_ids, run_job, write_jsonl


@pytest.fixture
async def front(sandbox: Sandbox) -> AsyncIterator[Front]:
    async with Front(sandbox) as running:
        yield running


def _outsider(sandbox: Sandbox, rid: str) -> int:
    users = sandbox.store.runs[rid]["users"]
    return next(m for m in sorted(sandbox.store.member_ids()) if m not in users)


async def _undo(sandbox: Sandbox, tmp_path: Path, ledger: Path) -> None:
    undo = tmp_path / "undo.jsonl"
    summary = write_undo(ledger, undo)
    assert summary.rows >= 1, summary.line()
    result, entries = await run_job(sandbox, undo, ledger=tmp_path / "undo.ledger.db")
    assert result.exit_code == 0, [(e.status, e.error) for e in entries]


async def test_a_read_answered_late_ages_from_its_request_and_a_person_s_edit_is_kept(
        tmp_path: Path) -> None:
    # The server reads the record, then holds its answer 3 s; meanwhile a person renames
    # the run. The row guarded by expect.name must not overwrite the person's name.
    clock = SkipClock()
    edited: list[str] = []

    async def hold(seconds: float) -> None:
        if not edited:
            edited.append(sandbox.edit_as_person(rid, name="Dana's name")["name"])
        clock.skipped += seconds  # the client's clock sees the 3 s pass

    async with Sandbox(config(hold_read_ms=3000, sleep=hold), port=0) as sandbox:
        rid = run_ids(sandbox, 1)[0]
        old = sandbox.store.runs[rid]["name"]
        path = write_jsonl(tmp_path / "r.jsonl",
                           [{"id": rid, "name": "Ours", "expect": {"name": old}}])
        _summary, entries = await run_job(sandbox, path, clock=clock)
        assert entries[0].status == "conflict", (entries[0].status, entries[0].error)
        assert sandbox.store.runs[rid]["name"] == "Dana's name"
        assert entries[0].before is None and entries[0].after is None  # nothing sent


async def test_before_values_are_those_of_the_read_before_the_put_that_landed(
        front: Front, tmp_path: Path) -> None:
    # The first PUT fails without landing (500); a person adds a member; the second
    # attempt's PUT lands. Undo must not remove the person's member.
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    ours = _outsider(sandbox, rid)
    original = list(sandbox.store.runs[rid]["users"])
    theirs = next(m for m in sorted(sandbox.store.member_ids())
                  if m not in original and m != ours)
    puts = 0

    async def fail_first(f: Front, request: web.Request, body: bytes) -> web.Response | None:
        nonlocal puts
        puts += 1
        if puts == 1:
            sandbox.edit_as_person(rid, users=[*original, theirs])
            return web.Response(status=500, text="<html>500</html>", content_type="text/html")
        return None

    front.hooks["PUT"] = fail_first
    path = write_jsonl(tmp_path / "join.jsonl", [{"id": rid, "add_users": [ours]}])
    _summary, entries = await run_job(front.sandbox, path, via=front,
                                      ledger=tmp_path / "j.ledger.db")
    assert entries[0].status == "ok"
    assert sorted(entries[0].before["users"]) == sorted([*original, theirs])
    front.hooks.clear()
    await _undo(sandbox, tmp_path, tmp_path / "j.ledger.db")
    assert sorted(sandbox.store.runs[rid]["users"]) == sorted([*original, theirs])


async def test_a_write_that_landed_then_a_conflict_keeps_before_after_and_undo_restores(
        front: Front, tmp_path: Path) -> None:
    # The PUT lands but is answered 503; a person takes our member out again; the next
    # attempt finds expect.name changed (by our own write): conflict, not "nothing sent".
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    record = sandbox.store.runs[rid]
    old_name, original = record["name"], list(record["users"])
    ours = _outsider(sandbox, rid)

    async def landed_503(f: Front, request: web.Request, body: bytes) -> web.Response | None:
        status, _data, _headers = await f.forward(request, body)
        assert status == 200
        sandbox.edit_as_person(rid, users=original)
        front.hooks.clear()
        return web.Response(status=503, text="<html>503</html>", content_type="text/html")

    front.hooks["PUT"] = landed_503
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "Landed",
                                               "add_users": [ours],
                                               "expect": {"name": old_name}}])
    _summary, entries = await run_job(front.sandbox, path, via=front,
                                      ledger=tmp_path / "c.ledger.db")
    entry = entries[0]
    assert entry.status == "conflict"
    assert entry.before == {"name": old_name, "users": original}
    assert entry.after["name"] == "Landed"
    assert sandbox.store.runs[rid]["name"] == "Landed"
    await _undo(sandbox, tmp_path, tmp_path / "c.ledger.db")
    assert sandbox.store.runs[rid]["name"] == old_name
    assert sorted(sandbox.store.runs[rid]["users"]) == sorted(original)


async def test_a_put_that_never_left_is_not_sent(front: Front, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The PUT cannot connect (no byte leaves); a person meanwhile makes the change asked.
    # The row is `unchanged` (nothing of ours landed), with no before/after for undo.
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    real_write = TallyfyClient.write
    calls = 0

    async def refused_once(self: TallyfyClient, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            sandbox.edit_as_person(rid, name="As asked")
            raise TransportError("cannot connect (Connection refused)", sent=False)
        return await real_write(self, *args, **kwargs)

    monkeypatch.setattr(TallyfyClient, "write", refused_once)
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "As asked"}])
    _summary, entries = await run_job(front.sandbox, path, via=front)
    assert (entries[0].status, entries[0].before, entries[0].after) == ("unchanged", None, None)


async def test_a_transient_failure_with_nothing_sent_is_not_in_doubt(
        front: Front, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(self: TallyfyClient, *args: object, **kwargs: object) -> object:
        raise TransportError("cannot connect (Connection refused)", sent=False)

    monkeypatch.setattr(TallyfyClient, "write", never)
    rid = run_ids(front.sandbox, 1)[0]
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "Never"}])
    _summary, entries = await run_job(front.sandbox, path, via=front, max_attempts=1,
                                         second_chance_pause=0.0)
    assert entries[0].status == "failed"
    assert entries[0].before is None


async def test_an_answer_that_does_not_show_the_change_is_read_back(
        front: Front, tmp_path: Path) -> None:
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    old = sandbox.store.runs[rid]["name"]

    async def stale_answer(f: Front, request: web.Request, body: bytes) -> web.Response:
        before = dict(sandbox.store.runs[rid])
        _status, _data, _headers = await f.forward(request, body)  # it lands
        return web.json_response({"data": before})  # ... but the answer shows the old name

    front.hooks["PUT"] = stale_answer
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "Shown by reading"}])
    summary, entries = await run_job(front.sandbox, path, via=front)
    assert entries[0].status == "ok", entries[0].error
    assert entries[0].before == {"name": old}
    assert summary.read_back == 1
    assert "1 confirmed by reading back" in summary.line()
    assert front.methods == ["GET", "PUT", "GET"]


async def test_an_answer_that_does_not_show_the_change_and_did_not_land_is_failed(
        front: Front, tmp_path: Path) -> None:
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]

    async def dropped(f: Front, request: web.Request, body: bytes) -> web.Response:
        return web.json_response({"data": sandbox.store.runs[rid]})  # not applied

    front.hooks["PUT"] = dropped
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "Dropped"}])
    summary, entries = await run_job(front.sandbox, path, via=front)
    assert entries[0].status == "failed"
    assert entries[0].before is None and entries[0].after is None
    assert "did not apply name" in (entries[0].error or "")
    assert json.dumps(summary.read_back) == "0"


async def test_a_write_left_in_doubt_keeps_its_before_after_and_undo_restores_exactly(
        front: Front, tmp_path: Path) -> None:
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]
    old = sandbox.store.runs[rid]["name"]

    async def landed_503(f: Front, request: web.Request, body: bytes) -> web.Response:
        await f.forward(request, body)  # it lands
        return web.Response(status=503, text="<html>503</html>", content_type="text/html")

    front.hooks["PUT"] = landed_503
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "In doubt"}])
    ledger = tmp_path / "d.ledger.db"
    _summary, entries = await run_job(front.sandbox, path, via=front, ledger=ledger, max_attempts=1)
    assert (entries[0].status, entries[0].before, entries[0].after) == (
        "in_doubt", {"name": old}, {"name": "In doubt"})
    front.hooks.clear()
    await _undo(sandbox, tmp_path, ledger)
    assert sandbox.store.runs[rid]["name"] == old


async def test_a_later_row_waits_for_an_earlier_row_in_doubt_across_runs(
        front: Front, tmp_path: Path) -> None:
    # Row 1's PUT lands but is answered 503 (in doubt); row 2 renames the same run again.
    # Row 2 must not run before row 1 is settled: this run leaves it pending, the next
    # settles row 1 (read back, no second write) and then runs row 2: row 2's name wins.
    sandbox = front.sandbox
    rid, other = run_ids(sandbox, 2)

    async def landed_503(f: Front, request: web.Request, body: bytes) -> web.Response:
        await f.forward(request, body)
        front.hooks.clear()
        return web.Response(status=503, text="<html>503</html>", content_type="text/html")

    front.hooks["PUT"] = landed_503
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "First"},
                                              {"id": other, "name": "Other"},
                                              {"id": rid, "name": "Second"}])
    ledger = tmp_path / "o.ledger.db"
    summary, entries = await run_job(front.sandbox, path, via=front, ledger=ledger, max_attempts=1)
    assert [e.status for e in entries] == ["in_doubt", "ok", "pending"]
    assert sandbox.store.runs[rid]["name"] == "First"
    assert summary.exit_code == 1

    summary, entries = await run_job(front.sandbox, path, via=front, ledger=ledger)
    assert [e.status for e in entries] == ["ok", "ok", "ok"]
    assert sandbox.store.runs[rid]["name"] == "Second"
    assert entries[0].before is not None and entries[2].before == {"name": "First"}
    assert sandbox.stats.writes_per_record[rid] == 2  # row 1 was not written twice


async def test_an_answer_in_another_shape_is_read_back_at_once(front: Front,
                                                                 tmp_path: Path) -> None:
    # One attempt only: the read-back is part of it, not a retry that attempts may lack.
    sandbox = front.sandbox
    rid = run_ids(sandbox, 1)[0]

    async def landed_odd(f: Front, request: web.Request, body: bytes) -> web.Response:
        await f.forward(request, body)
        return web.json_response({"data": {}})

    front.hooks["PUT"] = landed_odd
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "Odd shape"}])
    summary, entries = await run_job(front.sandbox, path, via=front, max_attempts=1)
    assert entries[0].status == "ok", entries[0].error
    assert summary.read_back == 1
    assert front.methods == ["GET", "PUT", "GET"]
