"""`bulk undo`: every record a job changed goes back, except those someone changed since."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.cli import main
from bulk.engine.errors import ConfigError
from bulk.tallyfy.undo import write_undo
from tests.support.helpers import env_for, run_ids, run_job, template_ids, write_jsonl


def snapshot(records: dict) -> dict:
    """Records with members and groups as sets (the API keeps no meaningful order)."""
    return {rid: {**{k: v for k, v in r.items() if k != "last_updated"},
                  "users": set(r["users"]), "groups": set(r["groups"])}
            for rid, r in records.items()}


def a_big_run_job(sandbox, tmp_path: Path) -> Path:
    """Names, owners, members, groups, kick-off values and a summary, on 12 runs."""
    store = sandbox.store
    members = list(store.members)
    groups = list(store.groups)
    rows = []
    for n, rid in enumerate(run_ids(sandbox, 12)):
        run = store.runs[rid]
        newcomer = next(m for m in members if m not in run["users"])
        key = next(iter(run["prerun"]))
        row = {"id": rid, "name": f"Renamed {n}", "owner_id": newcomer,
               "add_users": [newcomer], "remove_users": run["users"][:1],
               f"prerun.{key}": f"changed {n}", "starred": not run["starred"]}
        if n % 3 == 0:
            row["groups"] = [g for g in groups if g not in run["groups"]][:2]
        if n % 4 == 0:
            row["summary"] = ""
        rows.append(row)
    return write_jsonl(tmp_path / "job.jsonl", rows)


async def test_undo_after_apply_restores_every_record_but_those_edited_since(
        sandbox, tmp_path) -> None:
    store = sandbox.store
    original = snapshot(store.runs)
    job = a_big_run_job(sandbox, tmp_path)
    _, entries = await run_job(sandbox, job)
    assert {e.status for e in entries} == {"ok"}, [e.error for e in entries]
    assert snapshot(store.runs) != original

    # Between the job and its undo, a person renames one run and adds a member to another.
    ids = run_ids(sandbox, 12)
    sandbox.edit_as_person(ids[2], name="Dana's own name")
    extra = next(m for m in store.members if m not in store.runs[ids[5]]["users"])
    sandbox.edit_as_person(ids[5], users=[*store.runs[ids[5]]["users"], extra])
    edited = snapshot({ids[2]: store.runs[ids[2]]})

    undo = tmp_path / "job.undo.jsonl"
    summary = write_undo(tmp_path / "job.jsonl.ledger.db", undo)
    assert summary.rows == 12 and not summary.skipped
    sandbox.reset_stats()
    _, undone = await run_job(sandbox, undo)

    statuses = {e.record_id: e.status for e in undone}
    assert statuses.pop(ids[2]) == "conflict"
    assert set(statuses.values()) == {"ok"}
    assert sandbox.stats.writes_per_record.get(ids[2], 0) == 0
    now = snapshot(store.runs)
    assert now[ids[2]] == edited[ids[2]]  # the person's edit is kept, the job's too
    # Members are undone as deltas: the person's addition stays, the job's changes go.
    assert now[ids[5]]["users"] == original[ids[5]]["users"] | {extra}
    now[ids[5]]["users"].discard(extra)
    for rid in original:
        if rid != ids[2]:
            assert now[rid] == original[rid], rid


async def test_undo_of_a_members_job_and_undo_of_the_undo(sandbox, tmp_path) -> None:
    store = sandbox.store
    ids = run_ids(sandbox, 8)
    leaver = store.runs[ids[0]]["users"][0]
    joiner = next(m for m in store.members if m != leaver)
    groups = list(store.groups)
    rows = [{"id": rid, "add_users": [joiner], "remove_users": [leaver],
             "add_groups": [groups[0]], "remove_groups": [groups[1]]} for rid in ids]
    original = snapshot(store.runs)
    _, entries = await run_job(sandbox, write_jsonl(tmp_path / "m.jsonl", rows))
    assert {e.status for e in entries} <= {"ok", "unchanged"}
    changed = snapshot(store.runs)

    first = tmp_path / "m.undo.jsonl"
    write_undo(tmp_path / "m.jsonl.ledger.db", first)
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert all("users" not in line and "groups" not in line for line in lines)
    assert all(set(line) <= {"run_id", "add_users", "remove_users", "add_groups",
                             "remove_groups"} for line in lines)
    await run_job(sandbox, first)
    assert snapshot(store.runs) == original

    second = tmp_path / "m.redo.jsonl"
    write_undo(first.with_name(first.name + ".ledger.db"), second)
    await run_job(sandbox, second)
    assert snapshot(store.runs) == changed


async def test_templates_undo_clears_what_was_empty_and_redo_sets_it_again(
        sandbox, tmp_path) -> None:
    store = sandbox.store
    ids = template_ids(sandbox, 4)
    for tid in ids:
        sandbox.edit_as_person(tid, webhook=None, default_process_name_format=None)
    original = snapshot(store.checklists)
    rows = [{"checklist_id": tid, "webhook": f"https://hooks.example.com/{n}",
             "default_process_name_format": "{{date}} - new", "summary": ""}
            for n, tid in enumerate(ids)]
    await run_job(sandbox, write_jsonl(tmp_path / "t.jsonl", rows), target="templates")
    changed = snapshot(store.checklists)

    undo = tmp_path / "t.undo.jsonl"
    write_undo(tmp_path / "t.jsonl.ledger.db", undo)
    assert json.loads(undo.read_text().splitlines()[0])["clear"] == [
        "default_process_name_format", "webhook"]
    _, entries = await run_job(sandbox, undo, target="templates")
    assert {e.status for e in entries} == {"ok"}, [e.error for e in entries]
    assert snapshot(store.checklists) == original

    redo = tmp_path / "t.redo.jsonl"
    write_undo(undo.with_name(undo.name + ".ledger.db"), redo)
    _, entries = await run_job(sandbox, redo, target="templates")
    assert {e.status for e in entries} == {"ok"}, [e.error for e in entries]
    assert snapshot(store.checklists) == changed


async def test_a_dry_run_ledger_is_refused(sandbox, tmp_path) -> None:
    job = write_jsonl(tmp_path / "d.jsonl", [{"id": run_ids(sandbox, 1)[0], "name": "X"}])
    await run_job(sandbox, job, dry_run=True)

    with pytest.raises(ConfigError, match="dry run wrote nothing"):
        write_undo(tmp_path / "d.jsonl.dry-run.ledger.db", tmp_path / "u.jsonl")
    assert not (tmp_path / "u.jsonl").exists()


async def test_a_csv_undo_when_every_value_fits_a_cell(sandbox, tmp_path) -> None:
    rid = run_ids(sandbox, 1)[0]
    name = sandbox.store.runs[rid]["name"]
    await run_job(sandbox, write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "Tmp"}]))

    write_undo(tmp_path / "r.jsonl.ledger.db", tmp_path / "u.csv")
    _, entries = await run_job(sandbox, tmp_path / "u.csv")
    assert entries[0].status == "ok" and sandbox.store.runs[rid]["name"] == name

    # A before-value of "" cannot be a CSV cell (empty means "unchanged"): refused, not lost.
    await run_job(sandbox, write_jsonl(tmp_path / "s.jsonl", [{"id": rid, "summary": ""}]))
    await run_job(sandbox, write_jsonl(tmp_path / "t.jsonl", [{"id": rid, "summary": "x"}]))
    with pytest.raises(ConfigError, match=r"write the undo as \.jsonl"):
        write_undo(tmp_path / "t.jsonl.ledger.db", tmp_path / "v.csv")
    assert not (tmp_path / "v.csv").exists()


def test_cli_undo_writes_then_applies(threaded_sandbox, tmp_path) -> None:
    env = env_for(threaded_sandbox)
    runner = CliRunner()
    ids = run_ids(threaded_sandbox, 3)
    names = {rid: threaded_sandbox.store.runs[rid]["name"] for rid in ids}
    job = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": f"N{n}"}
                                             for n, rid in enumerate(ids)])
    assert runner.invoke(main, ["apply", "--input", str(job), "--rate", "1000", "-q"],
                         env=env).exit_code == 0
    ledger = str(job) + ".ledger.db"

    written = runner.invoke(main, ["undo", ledger, "-o", str(tmp_path / "u.jsonl")], env={})
    assert written.exit_code == 0, written.output
    assert written.output.startswith("undo: 3 rows to put back (runs)")
    assert {rid: r["name"] for rid, r in threaded_sandbox.store.runs.items() if rid in ids} \
        != names  # writing the undo input changes nothing

    applied = runner.invoke(main, ["undo", ledger, "--apply", "--rate", "1000", "-q"], env=env)
    assert applied.exit_code == 0, applied.output
    assert (tmp_path / "r.jsonl.undo.jsonl").exists()
    assert {rid: threaded_sandbox.store.runs[rid]["name"] for rid in ids} == names

    missing = runner.invoke(main, ["undo", ledger], env=env)
    assert missing.exit_code == 2 and "give -o FILE" in missing.output


def test_cli_undo_apply_goes_only_to_the_jobs_org(threaded_sandbox, tmp_path) -> None:
    env = env_for(threaded_sandbox)
    runner = CliRunner()
    rid = run_ids(threaded_sandbox, 1)[0]
    job = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "Moved"}])
    assert runner.invoke(main, ["apply", "--input", str(job), "--rate", "1000", "-q"],
                         env=env).exit_code == 0
    requests = threaded_sandbox.stats.requests

    other = runner.invoke(main, ["undo", str(job) + ".ledger.db", "--apply"],
                          env={**env, "TALLYFY_ORG_ID": "f" * 32})

    assert other.exit_code == 2 and "the job ran on org" in other.output
    assert threaded_sandbox.stats.requests == requests
    assert not (tmp_path / "r.jsonl.undo.jsonl").exists()
