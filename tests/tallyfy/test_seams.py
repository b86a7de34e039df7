"""Where the pieces meet: several rows on one record with the gate, a quota, a dry run,
answers that land badly, people's edits, emails, --fresh and Ctrl-C."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bulk.sandbox import Sandbox
from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
from tests.support.helpers import (
    config,
    connection_to,
    interleaved,
    run_ids,
    run_job,
    write_jsonl,
)


async def test_a_dry_run_checks_expect_against_what_earlier_rows_would_leave(
        tmp_path: Path) -> None:
    # Row 1 renames the run; row 2 expects the old name. A real run ends row 2 `conflict`
    # (row 1 changed the name); the dry run must say the same, not `ok`.
    async with Sandbox(config(runs=2), host="127.0.0.1", port=0) as sandbox:
        rid = run_ids(sandbox, 1)[0]
        old = sandbox.store.runs[rid]["name"]
        rows = [{"id": rid, "name": "B", "expect": {"name": old}},
                {"id": rid, "name": "C", "expect": {"name": old}}]
        path = write_jsonl(tmp_path / "r.jsonl", rows)
        _s, rehearsal = await run_job(sandbox, path, dry_run=True)
        _s, real = await run_job(sandbox, path)
        assert [e.status for e in real] == ["ok", "conflict"]
        assert [e.status for e in rehearsal] == [e.status for e in real]


@pytest.mark.looptime
async def test_three_rows_per_record_under_a_tight_quota_at_concurrency_32(tmp_path) -> None:
    loop = asyncio.get_running_loop()
    settings = config(runs=20, rate_limit=5, clock=loop.time, latency_ms=5,
                      journal_size=2000)
    async with Sandbox(settings, port=0) as sandbox:
        ids = run_ids(sandbox)
        members = sorted(sandbox.store.member_ids())
        original = {rid: list(sandbox.store.runs[rid]["users"]) for rid in ids}
        joiner = {rid: next(m for m in members if m not in original[rid]) for rid in ids}
        lanes = [[{"id": rid, "add_users": [joiner[rid]]}, {"id": rid, "name": f"n {n}"},
                  {"id": rid, "remove_users": [joiner[rid]]}] for n, rid in enumerate(ids)]
        rows = interleaved(lanes, seed=3)
        path = write_jsonl(tmp_path / "q.jsonl", rows)
        prepared = prepare(ApplyOptions(input=path, rate="auto", concurrency=32),
                           connection_to(sandbox))
        try:
            summary = await execute(prepared)
            entries = list(prepared.ledger.entries())
        finally:
            prepared.ledger.close()
        assert summary.exit_code == 0, summary.line()
        assert [e.status for e in entries] == ["ok"] * len(rows)
        for n, rid in enumerate(ids):
            assert sandbox.store.runs[rid]["name"] == f"n {n}"
            assert sorted(sandbox.store.runs[rid]["users"]) == sorted(original[rid])
        reads = sum(1 for e in sandbox.stats.journal
                    if e.method == "GET" and "/runs/" in e.path and e.status == 200)
        assert reads <= 1.05 * len(rows), reads


def _task_rows(task, store):
    from tests.tallyfy.test_production_shapes import DROPDOWN, MULTI, TEXT
    owners = task["owners"]["users"]
    a, b = [m for m in store.members if m not in owners][:2]
    email = store.members[a]["email"]
    ids = {"run_id": task["run_id"] or "", "task_id": task["id"]}
    return a, b, [
        {**ids, "taskdata": {TEXT: "first", DROPDOWN: "High"}},
        {**ids, "add_users": [email.upper()]},
        {**ids, "taskdata": {DROPDOWN: "Low", MULTI: "Email; portal"},
         "expect": {"taskdata": {DROPDOWN: "High"}}},
        {**ids, "add_users": [email, b], "title": "renamed"},
        {**ids, "remove_users": [email], "taskdata": {MULTI: "Phone"},
         "expect": {"taskdata": {MULTI: "Email; portal"}}},
        {**ids, "taskdata": {TEXT: "third"}, "expect": {"taskdata": {TEXT: "nope"}}},
    ]


async def test_repeated_tasks_with_form_fields_and_emails_dry_run_as_the_real_run(
        tmp_path: Path) -> None:
    from tests.tallyfy.test_production_shapes import _give_form, _open_tasks

    async with Sandbox(config(runs=6), host="127.0.0.1", port=0) as sandbox:
        store = sandbox.store
        tasks = _open_tasks(store, 3)
        _give_form(tasks)
        lanes = [_task_rows(task, store) for task in tasks]
        rows = [row for step in range(6) for _a, _b, lane in lanes for row in lane[step:step + 1]]
        path = write_jsonl(tmp_path / "t.jsonl", rows)
        _s, rehearsal = await run_job(sandbox, path, target="tasks", dry_run=True,
                                      concurrency=16)
        assert sandbox.stats.writes_per_record == {}
        _summary, real = await run_job(sandbox, path, target="tasks", concurrency=16)
        statuses = ["ok"] * 15 + ["conflict"] * 3
        assert [e.status for e in real] == statuses, [e.error for e in real]
        assert [e.status for e in rehearsal] == statuses, [e.error for e in rehearsal]
        for dry, done in zip(rehearsal, real, strict=True):
            assert (dry.before, dry.after) == (done.before, done.after), dry.row
        for task, (a, b, _lane) in zip(tasks, lanes, strict=True):
            assert b in task["owners"]["users"] and a not in task["owners"]["users"]
            assert task["title"] == "renamed"


async def test_a_task_put_that_lands_answered_503_then_a_person_s_edit(tmp_path: Path) -> None:
    from aiohttp import web

    from bulk.tallyfy.undo import write_undo
    from tests.support.front import Front
    from tests.tallyfy.test_production_shapes import _open_tasks

    async with Sandbox(config(runs=6), host="127.0.0.1", port=0) as sandbox, \
            Front(sandbox) as front:
        store = sandbox.store
        task = _open_tasks(store, 1)[0]
        owners = list(task["owners"]["users"])
        title = task["title"]
        heir, person = [m for m in store.members if m not in owners][:2]

        async def landed_503(f: Front, request: web.Request, body: bytes) -> web.Response:
            await f.forward(request, body)  # it lands (the answer would list owners as objects)
            f.hooks.clear()
            task["owners"]["users"].append(person)  # a person adds someone meanwhile
            task["title"] = "person's title"
            return web.Response(status=503, text="<html>503</html>", content_type="text/html")

        front.hooks["PUT"] = landed_503
        ids = {"run_id": task["run_id"] or "", "task_id": task["id"]}
        rows = [{**ids, "add_users": [heir], "title": "ours", "expect": {"title": title}},
                {**ids, "remove_users": [owners[0]]}]
        path = write_jsonl(tmp_path / "t.jsonl", rows)
        ledger = tmp_path / "t.ledger.db"
        _summary, entries = await run_job(sandbox, path, via=front, target="tasks",
                                          ledger=ledger)
        first, second = entries
        assert first.status == "conflict", first.error  # the person's title is kept
        assert task["title"] == "person's title"
        assert first.before is not None and first.after is not None  # our write landed
        assert second.status == "ok"
        assert person in task["owners"]["users"] and heir in task["owners"]["users"]
        undo = tmp_path / "undo.jsonl"
        write_undo(ledger, undo)
        _s, undone = await run_job(sandbox, undo, target="tasks")
        assert [e.status for e in undone] == ["ok", "conflict"], [e.error for e in undone]
        # Row 1's undo finds the title a person changed since: that record's undo row is
        # left alone whole (conflict); row 2's is undone; the person's edits all stay.
        assert sorted(task["owners"]["users"]) == sorted([*owners, person, heir])
        assert task["title"] == "person's title"


async def test_three_rows_per_record_through_faults_resume_then_undo_exactly(
        tmp_path: Path) -> None:
    # Writes land and are answered 503, fail unapplied, connections drop, at concurrency 32
    # on rows that name each run three times; the job is run again until nothing is left,
    # then undone: every run ends as the file says, then exactly as it was.
    from bulk.sandbox import Faults
    from bulk.tallyfy.undo import write_undo

    faults = Faults(applied_503_rate=0.25, error_rate=0.1, drop_rate=0.05)
    async with Sandbox(config(runs=30, faults=faults, seed=7), host="127.0.0.1",
                       port=0) as sandbox:
        ids = run_ids(sandbox)
        members = sorted(sandbox.store.member_ids())
        original = {rid: (sandbox.store.runs[rid]["name"], sorted(sandbox.store.runs[rid]["users"]))
                    for rid in ids}
        joiner = {rid: next(m for m in members if m not in original[rid][1]) for rid in ids}
        lanes = [[{"id": rid, "add_users": [joiner[rid]], "name": f"a {n}"},
                  {"id": rid, "name": f"b {n}"},
                  {"id": rid, "remove_users": [original[rid][1][0]]}]
                 for n, rid in enumerate(ids)]
        rows = interleaved(lanes, seed=11)
        path = write_jsonl(tmp_path / "f.jsonl", rows)
        ledger = tmp_path / "f.ledger.db"
        first = None
        for _ in range(8):
            summary, entries = await run_job(sandbox, path, ledger=ledger, concurrency=32,
                                             max_attempts=2, second_chance_pause=0.0)
            first = first or {e.status for e in entries}
            if summary.exit_code == 0:
                break
        assert first != {"ok"}  # the faults did bite: rows left for the next run
        assert [e.status for e in entries] == ["ok"] * len(rows), summary.line()
        for n, rid in enumerate(ids):
            run = sandbox.store.runs[rid]
            assert run["name"] == f"b {n}"
            want = sorted(set(original[rid][1]) - {original[rid][1][0]} | {joiner[rid]})
            assert sorted(run["users"]) == want
        sandbox.faults = Faults()
        undo = tmp_path / "undo.jsonl"
        write_undo(ledger, undo)
        result, undone = await run_job(sandbox, undo, ledger=tmp_path / "u.db")
        assert result.exit_code == 0, [e.error for e in undone if e.status != "ok"]
        assert {rid: (sandbox.store.runs[rid]["name"], sorted(sandbox.store.runs[rid]["users"]))
                for rid in ids} == original


async def test_ctrl_c_while_rows_of_one_record_wait_behind_each_other(tmp_path: Path) -> None:
    from aiohttp import web

    from tests.support.front import Front

    async with Sandbox(config(runs=4), host="127.0.0.1", port=0) as sandbox, \
            Front(sandbox) as front:
        rid, other = run_ids(sandbox, 2)
        jobs = []
        held = asyncio.Event()

        async def hold_first(f: Front, request: web.Request, body: bytes) -> web.Response:
            f.hooks.clear()
            jobs[0].interrupt("Ctrl-C")  # Ctrl-C while row 1's PUT is on its way
            held.set()
            status, data, headers = await f.forward(request, body)
            return web.Response(status=status, body=data, headers=headers)

        front.hooks["PUT"] = hold_first
        rows = [{"id": rid, "name": "one"}, {"id": rid, "name": "two"},
                {"id": other, "name": "other"}, {"id": rid, "name": "three"}]
        path = write_jsonl(tmp_path / "c.jsonl", rows)
        ledger = tmp_path / "c.ledger.db"
        summary, entries = await run_job(sandbox, path, via=front, ledger=ledger,
                                         concurrency=4, on_job=jobs.append)
        assert held.is_set() and summary.interrupted
        statuses = {e.row: e.status for e in entries}
        assert statuses[1] == "ok"  # the row under way finished
        assert sandbox.store.runs[rid]["name"] == "one"
        assert all(statuses.get(n) in (None, "pending", "ok") for n in (2, 3, 4))

        summary, entries = await run_job(sandbox, path, via=front, ledger=ledger,
                                         concurrency=4)
        assert summary.exit_code == 0 and [e.status for e in entries] == ["ok"] * 4
        assert sandbox.store.runs[rid]["name"] == "three"
        by_row = {e.row: e for e in entries}
        assert by_row[2].before == {"name": "one"} and by_row[4].before == {"name": "two"}


async def _slow_reads(tmp_path: Path, slow: int) -> tuple[list, list[str]]:
    """One rename against a server whose first `slow` reads answer 2.5 s late."""
    from bulk.engine.clock import SkipClock
    from tests.support.helpers import on_records

    clock = SkipClock()
    held: list[float] = []

    async def hold(seconds: float) -> None:
        held.append(seconds)
        if len(held) <= slow:
            clock.skipped += seconds  # the client's clock sees the answer come late

    async with Sandbox(config(hold_read_ms=2500, sleep=hold), port=0) as sandbox:
        rid = run_ids(sandbox, 1)[0]
        path = write_jsonl(tmp_path / f"slow{slow}.jsonl", [{"id": rid, "name": "Ours"}])
        _s, entries = await run_job(sandbox, path, clock=clock, second_chance_pause=0.0,
                                    max_attempts=5)
        return entries, [e.method for e in on_records(sandbox)]


async def test_a_server_whose_reads_all_come_late_costs_one_read_per_attempt(
        tmp_path: Path) -> None:
    # Every read is answered 2.5 s after it left: none can guard a write. Each attempt
    # gives up on its read at once (no five re-reads as old as it), and says why.
    entries, methods = await _slow_reads(tmp_path, slow=1000)
    assert entries[0].status == "failed"
    assert "answered 2.5 s after it was sent" in (entries[0].error or "")
    assert methods == ["GET"] * 10  # 5 attempts, then 5 more at the end; nothing sent


async def test_one_late_read_is_read_again_and_the_row_lands(tmp_path: Path) -> None:
    # (Given up by the attempt that read it, now: the next attempt, after the backoff.)
    entries, methods = await _slow_reads(tmp_path, slow=1)
    assert entries[0].status == "ok"
    assert methods == ["GET", "GET", "PUT"]


async def test_a_dry_run_of_repeated_task_deadlines_and_titles_as_the_real_run(
        tmp_path: Path) -> None:
    from tests.tallyfy.test_production_shapes import _open_tasks

    async with Sandbox(config(runs=6), host="127.0.0.1", port=0) as sandbox:
        task = _open_tasks(sandbox.store, 1)[0]
        ids = {"run_id": task["run_id"] or "", "task_id": task["id"]}
        rows = [{**ids, "deadline": "2031-03-01T10:00:00Z"},
                {**ids, "title": "T2", "expect": {"deadline": "2031-03-01T11:00:00+01:00"}},
                {**ids, "deadline": "2031-03-02T09:00:00Z", "expect": {"title": "T2"}},
                {**ids, "title": "T3", "expect": {"deadline": "2031-03-01T10:00:00Z"}}]
        path = write_jsonl(tmp_path / "d.jsonl", rows)
        _s, rehearsal = await run_job(sandbox, path, target="tasks", dry_run=True)
        _s, real = await run_job(sandbox, path, target="tasks")
        assert [e.status for e in real] == ["ok", "ok", "ok", "conflict"], \
            [e.error for e in real]
        assert [e.status for e in rehearsal] == [e.status for e in real], \
            [e.error for e in rehearsal]
        # (Before-values agree as instants: the rehearsal shows the deadline as the row
        # before it wrote it, the real run as the server gives it back, with milliseconds.)
        assert rehearsal[2].before == {"deadline": "2031-03-01T10:00:00Z"}
        assert real[2].before == {"deadline": "2031-03-01T10:00:00.000Z"}
