"""The hazards: members survive, membership merges, unknown columns are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk.engine.errors import InputError
from tests.support.helpers import rename_csv, run_ids, run_job, template_ids, write_csv, write_jsonl


async def test_rename_keeps_every_member_of_every_run(sandbox, tmp_path: Path) -> None:
    ids = run_ids(sandbox, 20)
    runs = sandbox.store.runs
    before = {rid: (list(runs[rid]["users"]), list(runs[rid]["groups"])) for rid in ids}
    first_name = runs[ids[0]]["name"]
    assert any(users for users, _ in before.values()), "the sample org must have members"
    path = rename_csv(tmp_path / "rename.csv", ids, "Renamed")

    summary, entries = await run_job(sandbox, path)

    assert summary.exit_code == 0
    assert [e.status for e in entries] == ["ok"] * 20
    for n, rid in enumerate(ids):
        record = sandbox.store.runs[rid]
        assert record["name"] == f"Renamed {n}"
        assert (record["users"], record["groups"]) == before[rid]
    assert entries[0].before == {"name": first_name}
    assert entries[0].after == {"name": "Renamed 0"}


async def test_template_rename_keeps_members_and_sends_title(sandbox, tmp_path: Path) -> None:
    ids = template_ids(sandbox, 5)
    templates = sandbox.store.checklists
    before = {tid: (list(templates[tid]["users"]), list(templates[tid]["groups"])) for tid in ids}
    path = write_csv(tmp_path / "t.csv", ["checklist_id", "summary"],
                     [[tid, "New summary"] for tid in ids])

    summary, entries = await run_job(sandbox, path, target="templates")

    assert summary.exit_code == 0, [e.error for e in entries]
    for tid in ids:
        record = sandbox.store.checklists[tid]
        assert record["summary"] == "New summary"
        assert (record["users"], record["groups"]) == before[tid]


async def test_add_and_remove_users_merge_with_current_members(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 1)[0]
    record = sandbox.store.runs[rid]
    members = sorted(sandbox.store.members)
    current = list(record["users"])
    newcomer = next(m for m in members if m not in current)
    leaving = current[0]
    path = write_csv(tmp_path / "m.csv", ["run_id", "add_users", "remove_users"],
                     [[rid, str(newcomer), str(leaving)]])

    summary, entries = await run_job(sandbox, path)

    assert summary.exit_code == 0, entries[0].error
    users = sandbox.store.runs[rid]["users"]
    assert newcomer in users and leaving not in users
    assert sorted(users) == sorted([u for u in current if u != leaving] + [newcomer])
    assert entries[0].before["users"] == current
    assert sorted(entries[0].after["users"]) == sorted(users)


async def test_add_groups_keeps_existing_groups(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 2)[1]
    current = list(sandbox.store.runs[rid]["groups"])
    new_group = next(g for g in sorted(sandbox.store.groups) if g not in current)
    path = write_jsonl(tmp_path / "g.jsonl", [{"id": rid, "add_groups": [new_group]}])

    summary, _ = await run_job(sandbox, path)

    assert summary.exit_code == 0
    assert sandbox.store.runs[rid]["groups"] == [*current, new_group]


async def test_a_row_that_changes_nothing_sends_no_put(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 1)[0]
    name = sandbox.store.runs[rid]["name"]
    path = write_csv(tmp_path / "same.csv", ["id", "name"], [[rid, name]])

    summary, entries = await run_job(sandbox, path)

    assert entries[0].status == "unchanged"
    assert sandbox.stats.writes_per_record.get(rid, 0) == 0
    assert summary.exit_code == 0


async def test_unknown_column_is_refused_before_any_request(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 1)[0]
    path = write_csv(tmp_path / "typo.csv", ["id", "nmae"], [[rid, "x"]])

    with pytest.raises(InputError, match="nmae"):
        await run_job(sandbox, path)
    assert sandbox.stats.requests == 0


async def test_unknown_kickoff_field_fails_the_row_without_a_write(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 1)[0]
    path = write_csv(tmp_path / "ko.csv", ["id", "prerun." + "f" * 32], [[rid, "value"]])

    summary, entries = await run_job(sandbox, path)

    assert entries[0].status == "failed"
    assert "kick-off" in entries[0].error
    assert sandbox.stats.writes_per_record.get(rid, 0) == 0
    assert summary.exit_code == 1


async def test_kickoff_value_is_written_and_others_kept(sandbox, tmp_path: Path) -> None:
    rid = run_ids(sandbox, 1)[0]
    prerun = dict(sandbox.store.runs[rid]["prerun"])
    key = sorted(prerun)[0]
    path = write_csv(tmp_path / "ko.csv", ["id", f"prerun.{key}"], [[rid, "Changed value"]])

    summary, entries = await run_job(sandbox, path)

    assert summary.exit_code == 0, entries[0].error
    after = sandbox.store.runs[rid]["prerun"]
    assert after[key] == "Changed value"
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in prerun.items() if k != key}


async def test_a_validation_error_fails_only_that_row(sandbox, tmp_path: Path) -> None:
    ids = run_ids(sandbox, 3)
    path = write_csv(tmp_path / "owner.csv", ["id", "owner_id"],
                     [[ids[0], "999999"], [ids[1], str(sorted(sandbox.store.members)[0])],
                      [ids[2], "not-a-number"]])

    summary, entries = await run_job(sandbox, path)

    by_row = {e.row: e for e in entries}
    assert by_row[1].status == "failed" and by_row[1].http_status == 422
    assert "owner_id" in by_row[1].error
    assert by_row[2].status in ("ok", "unchanged")
    assert by_row[3].status == "invalid" and "row 3" in by_row[3].error
    assert summary.exit_code == 1
