"""A member's email wherever a user id is taken, resolved once per job from the
organization's member list (`GET /organizations/{org}/users`, paged)."""

from __future__ import annotations

import csv

import aiohttp
from click.testing import CliRunner

from bulk.cli import main
from tests.support.helpers import env_for, run_ids, run_job, write_csv, write_jsonl


def _email(store, user_id: int) -> str:
    return store.members[user_id]["email"]


def _member_list_reads(sandbox) -> int:
    return sum(1 for e in sandbox.stats.journal if e.path.split("?")[0].endswith("/users"))


async def test_the_sandbox_lists_the_members_paged_with_their_emails(sandbox) -> None:
    url = f"{sandbox.base_url}/organizations/{sandbox.org_id}/users"
    headers = {"Authorization": f"Bearer {sandbox.token}", "X-Tallyfy-Client": "APIClient"}
    seen = []
    async with aiohttp.ClientSession() as session:
        for page in (1, 2, 3, 4):
            async with session.get(url, params={"per_page": "6", "page": str(page)},
                                   headers=headers) as answer:
                assert answer.status == 200
                body = await answer.json()
            seen += body["data"]
            assert body["meta"]["pagination"]["total_pages"] == 4  # 20 members, 6 a page

    assert [m["id"] for m in seen] == list(sandbox.store.members)
    assert set(seen[0]) == {"id", "email", "first_name", "last_name", "full_name", "active"}
    assert all("@" in m["email"] and m["active"] is True for m in seen)


async def test_emails_work_wherever_a_user_id_is_taken(sandbox, tmp_path) -> None:
    store = sandbox.store
    a, b, c = run_ids(sandbox, 3)
    ra, rb = store.runs[a], store.runs[b]
    new_owner = next(m for m in store.members if m not in ra["users"])
    gone = ra["users"][0]
    keep = next(m for m in store.members if m not in rb["users"])
    path = write_csv(tmp_path / "r.csv",
                     ["id", "owner_id", "add_users", "remove_users", "users", "expect.owner_id"], [
        # owner and membership deltas by email (one of them upper-cased), the guard by email
        [a, _email(store, new_owner).upper(), _email(store, new_owner),
         _email(store, gone), "", _email(store, ra["owner_id"])],
        # a whole list, ids and emails mixed
        [b, "", "", "", f"{rb['users'][0]};{_email(store, keep)}", ""],
    ])

    _, entries = await run_job(sandbox, path)

    assert [e.status for e in entries] == ["ok", "ok"], [e.error for e in entries]
    assert store.runs[a]["owner_id"] == new_owner
    assert new_owner in store.runs[a]["users"] and gone not in store.runs[a]["users"]
    assert store.runs[b]["users"] == [rb["users"][0], keep]
    assert entries[0].after and entries[0].after["owner_id"] == new_owner  # ids in the ledger
    assert _member_list_reads(sandbox) == 1  # once per job, for every row
    assert store.runs[c]  # untouched


async def test_an_unknown_email_is_invalid_before_any_put(sandbox, tmp_path) -> None:
    store = sandbox.store
    a, b = run_ids(sandbox, 2)
    path = write_csv(tmp_path / "r.csv", ["id", "owner_id"], [
        [a, "nobody@nowhere.example"], [b, _email(store, next(iter(store.members)))]])

    _, entries = await run_job(sandbox, path)

    assert [e.status for e in entries] == ["invalid", "ok"]
    assert entries[0].error == ('r.csv: row 1, column "owner_id": no member of the '
                                "organization has the email nobody@nowhere.example")
    assert sandbox.stats.writes_per_record.get(a, 0) == 0
    assert sandbox.stats.writes_per_record[b] == 1


async def test_a_job_of_ids_never_reads_the_member_list(sandbox, tmp_path) -> None:
    (a,) = run_ids(sandbox, 1)
    member = next(iter(sandbox.store.members))
    path = write_csv(tmp_path / "r.csv", ["id", "owner_id"], [[a, member]])

    _, entries = await run_job(sandbox, path)

    assert [e.status for e in entries] == ["ok"]
    assert _member_list_reads(sandbox) == 0


async def test_a_tasks_assignees_by_email(sandbox, tmp_path) -> None:
    store = sandbox.store
    task = next(t for t in store.tasks.values()
                if t["run_id"] and t["status"] != "completed" and t["owners"]["users"])
    leaver = task["owners"]["users"][0]
    heir = next(m for m in store.members if m not in task["owners"]["users"])
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"run_id": task["run_id"], "task_id": task["id"], "add_users": [_email(store, heir)],
         "remove_users": [_email(store, leaver)]}])

    _, entries = await run_job(sandbox, path, target="tasks", format="jsonl")

    assert [e.status for e in entries] == ["ok"], entries[0].error
    users = store.tasks[task["id"]]["owners"]["users"]
    assert heir in users and leaver not in users


async def test_the_same_member_added_and_removed_by_id_and_email_is_invalid(sandbox, tmp_path):
    store = sandbox.store
    (a,) = run_ids(sandbox, 1)
    member = next(iter(store.members))
    path = write_csv(tmp_path / "r.csv", ["id", "add_users", "remove_users"],
                     [[a, str(member), _email(store, member)]])

    _, entries = await run_job(sandbox, path)

    assert entries[0].status == "invalid"
    assert "both added and removed" in (entries[0].error or "")
    assert sandbox.stats.writes == 0


def _ids(path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["run_id"] for row in csv.DictReader(handle)]


def test_select_takes_an_email_for_owner(threaded_sandbox, tmp_path) -> None:
    store = threaded_sandbox.store
    owner = next(iter(store.runs.values()))["owner_id"]
    env = env_for(threaded_sandbox)
    runner = CliRunner()

    by_id = runner.invoke(main, ["select", "runs", "--owner", str(owner), "-q",
                                 "-o", str(tmp_path / "id.csv")], env=env)
    by_email = runner.invoke(main, ["select", "runs", "--owner", _email(store, owner).upper(),
                                    "-q", "-o", str(tmp_path / "email.csv")], env=env)

    assert by_id.exit_code == 0 and by_email.exit_code == 0, by_email.output
    assert _ids(tmp_path / "email.csv") == _ids(tmp_path / "id.csv") != []


def test_select_refuses_an_unknown_email_with_exit_2(threaded_sandbox, tmp_path) -> None:
    out = tmp_path / "x.csv"

    result = CliRunner().invoke(main, ["select", "runs", "--member", "ghost@example.com",
                                       "-o", str(out)], env=env_for(threaded_sandbox))

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"bulk: --member ghost@example.com: no member of organization "
        f"{threaded_sandbox.org_id} has this email; nothing selected, nothing written"]
    assert not out.exists()
    lists = [e for e in threaded_sandbox.stats.journal if "/runs" in e.path]
    assert lists == []  # refused before the list was read


def test_select_refuses_what_is_neither_id_nor_email(threaded_sandbox, tmp_path) -> None:
    result = CliRunner().invoke(main, ["select", "runs", "--owner", "bob", "-o",
                                       str(tmp_path / "x.csv")], env=env_for(threaded_sandbox))

    assert result.exit_code == 2
    assert "neither a user id" in result.output
    assert threaded_sandbox.stats.requests == 0


async def test_a_member_list_that_cannot_be_read_fails_only_the_rows_with_emails(
        tmp_path, monkeypatch) -> None:
    from aiohttp import web

    from bulk.sandbox import Sandbox, _app
    from tests.support.helpers import config

    async def down(self, request):  # the real server, its member list answering 503
        return web.json_response({"error": True, "message": "down"}, status=503)

    monkeypatch.setattr(_app.Service, "list_users", down)
    async with Sandbox(config(), host="127.0.0.1", port=0) as sandbox:
        store = sandbox.store
        a, b, c = run_ids(sandbox, 3)
        member = next(iter(store.members))
        path = write_csv(tmp_path / "r.csv", ["id", "owner_id"], [
            [a, _email(store, member)], [b, str(member)], [c, _email(store, member)]])

        _, entries = await run_job(sandbox, path, max_attempts=2)

    assert [e.status for e in entries] == ["failed", "ok", "failed"]
    assert entries[0].error_kind == "transient"  # a plain re-run tries them again
    assert "member list" in (entries[0].error or "") and "503" in (entries[0].error or "")
    assert _member_list_reads(sandbox) == 2  # its two attempts, for the whole job
    assert sandbox.stats.writes_per_record.get(a, 0) == 0


def test_select_where_refuses_an_email_that_would_match_nothing(threaded_sandbox, tmp_path):
    result = CliRunner().invoke(main, ["select", "runs", "--where", "owner_id=a@b.example",
                                       "-o", str(tmp_path / "x.csv")],
                                env=env_for(threaded_sandbox))

    assert result.exit_code == 2
    assert "--where owner_id=a@b.example: give user ids here" in result.stderr
    assert threaded_sandbox.stats.requests == 0
