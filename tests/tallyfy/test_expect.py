"""expect.FIELD columns and the `conflict` status: a record someone changed is left alone."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.cli import main
from bulk.engine.errors import InputError
from bulk.engine.ledger import Ledger
from bulk.ledger_views.status_export import export_jsonl, status_lines
from bulk.tallyfy.targets import RUNS, TEMPLATES, check_columns
from tests.support.helpers import (
    env_for,
    on_records,
    run_ids,
    run_job,
    template_ids,
    write_csv,
    write_jsonl,
)


def _writes(sandbox) -> int:
    return sum(sandbox.stats.writes_per_record.values())


async def test_a_row_is_written_only_when_the_record_still_shows_the_expected_value(
    sandbox, tmp_path: Path
) -> None:
    first, second = run_ids(sandbox, 2)
    runs = sandbox.store.runs
    path = write_csv(tmp_path / "r.csv", ["run_id", "name", "expect.name"], [
        [first, "New one", runs[first]["name"]],
        [second, "New two", runs[second]["name"]],
    ])
    # Between the making of the input and its apply, a person renames the second run.
    sandbox.edit_as_person(second, name="Edited by Dana")

    summary, entries = await run_job(sandbox, path)

    assert [e.status for e in entries] == ["ok", "conflict"]
    assert runs[first]["name"] == "New one"
    assert runs[second]["name"] == "Edited by Dana"  # the person's edit is kept
    assert sandbox.stats.writes_per_record.get(second, 0) == 0  # no PUT at all
    error = entries[1].error
    assert '"name"' in error and "Edited by Dana" in error and "New two" not in error
    assert json.dumps(sandbox.store.runs[second]["name"]) in error
    assert summary.exit_code == 1
    assert "conflict 1" in summary.line()
    # Kept like a failed row: its input, for a re-run after a look.
    assert entries[1].input["expect.name"]


async def test_members_are_expected_as_sets_and_user_ids_by_number(sandbox, tmp_path) -> None:
    rid = run_ids(sandbox, 1)[0]
    run = sandbox.store.runs[rid]
    run["users"] = [run["users"][0], 10_001] if len(run["users"]) == 1 else run["users"][:2]
    sandbox.store.members.setdefault(10_001, {"id": 10_001})
    shuffled = ";".join(str(u) for u in reversed(run["users"]))
    path = write_csv(tmp_path / "r.csv", ["id", "summary", "expect.users", "expect.owner_id"],
                     [[rid, "Checked", shuffled, f" {run['owner_id']} "]])

    _, entries = await run_job(sandbox, path)

    assert entries[0].status == "ok", entries[0].error
    assert run["summary"] == "Checked"


async def test_an_expected_empty_list_and_a_missing_member(sandbox, tmp_path) -> None:
    rid = run_ids(sandbox, 1)[0]
    sandbox.edit_as_person(rid, groups=[])
    path = write_csv(tmp_path / "r.csv", ["id", "summary", "expect.groups"],
                     [[rid, "A", "[]"]])
    _, entries = await run_job(sandbox, path)
    assert entries[0].status == "ok", entries[0].error

    group = next(iter(sandbox.store.groups))
    sandbox.edit_as_person(rid, groups=[group])
    path = write_csv(tmp_path / "s.csv", ["id", "summary", "expect.groups"], [[rid, "B", "[]"]])
    _, entries = await run_job(sandbox, path)
    assert entries[0].status == "conflict" and group in entries[0].error


async def test_jsonl_expect_object_with_null_and_prerun(sandbox, tmp_path) -> None:
    template = template_ids(sandbox, 1)[0]
    sandbox.edit_as_person(template, webhook=None)
    ok_path = write_jsonl(tmp_path / "t.jsonl", [
        {"checklist_id": template, "webhook": "https://hooks.example.com/a",
         "expect": {"webhook": None}},
    ])
    _, entries = await run_job(sandbox, ok_path, target="templates")
    assert entries[0].status == "ok", entries[0].error

    # The same expectation now fails: the webhook is no longer empty.
    again = write_jsonl(tmp_path / "u.jsonl", [
        {"checklist_id": template, "webhook": "https://hooks.example.com/b",
         "expect": {"webhook": None}},
    ])
    _, entries = await run_job(sandbox, again, target="templates")
    assert entries[0].status == "conflict"
    assert sandbox.store.checklists[template]["webhook"] == "https://hooks.example.com/a"

    rid = run_ids(sandbox, 1)[0]
    key, value = next(iter(sandbox.store.runs[rid]["prerun"].items()))
    rows = [
        {"id": rid, "summary": "P1", "expect": {f"prerun.{key}": value}},
        {"id": rid, "summary": "P2", f"expect.prerun.{key}": "not what it is"},
    ]
    _, entries = await run_job(sandbox, write_jsonl(tmp_path / "p.jsonl", rows))
    assert [e.status for e in entries] == ["ok", "conflict"]
    assert f"prerun.{key}" in entries[1].error


async def test_clear_empties_a_text_or_url_field(sandbox, tmp_path) -> None:
    template = template_ids(sandbox, 1)[0]
    sandbox.edit_as_person(template, webhook="https://hooks.example.com/x")
    path = write_csv(tmp_path / "c.csv", ["checklist_id", "clear", "expect.webhook"],
                     [[template, "webhook", "https://hooks.example.com/x"]])

    _, entries = await run_job(sandbox, path, target="templates")

    assert entries[0].status == "ok", entries[0].error
    assert sandbox.store.checklists[template]["webhook"] is None
    assert entries[0].before == {"webhook": "https://hooks.example.com/x"}
    assert entries[0].after == {"webhook": None}

    bad = write_csv(tmp_path / "d.csv", ["checklist_id", "clear"], [[template, "title"]])
    _, entries = await run_job(sandbox, bad, target="templates")
    assert entries[0].status == "invalid" and "title cannot be cleared" in entries[0].error


async def test_a_row_with_only_expectations_changes_nothing_and_sends_nothing(
    sandbox, tmp_path
) -> None:
    rid = run_ids(sandbox, 1)[0]
    path = write_csv(tmp_path / "r.csv", ["id", "name", "expect.name"],
                     [[rid, "", "whatever it was"]])

    summary, entries = await run_job(sandbox, path)

    assert entries[0].status == "unchanged"
    assert on_records(sandbox) == []  # (the job's preflight list aside)
    assert summary.exit_code == 0


async def test_conflicts_are_retried_only_with_retry_failed(sandbox, tmp_path) -> None:
    rid = run_ids(sandbox, 1)[0]
    original = sandbox.store.runs[rid]["name"]
    path = write_csv(tmp_path / "r.csv", ["id", "name", "expect.name"],
                     [[rid, "Renamed", original]])
    sandbox.edit_as_person(rid, name="Someone else's")
    _, entries = await run_job(sandbox, path)
    assert entries[0].status == "conflict"

    # The person puts it back; a plain resume skips the row, --retry-failed takes it up.
    sandbox.edit_as_person(rid, name=original)
    sandbox.reset_stats()
    summary, entries = await run_job(sandbox, path)
    assert summary.skipped == 1 and sandbox.stats.requests == 0
    summary, entries = await run_job(sandbox, path, retry_failed=True)
    assert entries[0].status == "ok" and sandbox.store.runs[rid]["name"] == "Renamed"


async def test_a_dry_run_reports_conflicts(sandbox, tmp_path) -> None:
    first, second = run_ids(sandbox, 2)
    runs = sandbox.store.runs
    path = write_csv(tmp_path / "r.csv", ["id", "name", "expect.name"], [
        [first, "X", runs[first]["name"]], [second, "Y", "stale"]])

    summary, entries = await run_job(sandbox, path, dry_run=True)

    assert [e.status for e in entries] == ["ok", "conflict"]
    assert _writes(sandbox) == 0
    assert summary.exit_code == 1


async def test_status_and_export_show_conflicts(sandbox, tmp_path) -> None:
    rid = run_ids(sandbox, 1)[0]
    path = write_csv(tmp_path / "r.csv", ["id", "name", "expect.name"], [[rid, "X", "stale"]])
    await run_job(sandbox, path)

    with Ledger(tmp_path / "r.csv.ledger.db") as book:
        lines = list(status_lines(book))
        out = io.StringIO()
        export_jsonl(book, out, "conflict")
    assert any(line.split() == ["conflict", "1"] for line in lines)
    assert json.loads(out.getvalue())["status"] == "conflict"


def test_cli_exit_code_and_export_filter(threaded_sandbox, tmp_path) -> None:
    rid = run_ids(threaded_sandbox, 1)[0]
    path = write_csv(tmp_path / "r.csv", ["id", "name", "expect.name"], [[rid, "X", "stale"]])
    runner = CliRunner()
    result = runner.invoke(main, ["apply", "--input", str(path), "--rate", "1000", "-q"],
                           env=env_for(threaded_sandbox), catch_exceptions=False)
    assert result.exit_code == 1
    assert "conflict 1" in result.output
    exported = runner.invoke(main, ["export", str(path) + ".ledger.db", "--status", "conflict"])
    assert exported.exit_code == 0 and '"status": "conflict"' in exported.output


def test_expect_columns_are_checked_like_the_others() -> None:
    assert check_columns(RUNS, ["id", "name", "expect.name", "expect.users"], "f.csv") == "id"
    assert check_columns(RUNS, ["id", "expect", "clear", "expect.prerun." + "a" * 32], "f.csv")
    with pytest.raises(InputError, match=r'"expect.nmae" \(did you mean "expect.name"\?\)'):
        check_columns(RUNS, ["id", "name", "expect.nmae"], "f.csv")
    with pytest.raises(InputError, match=r"expect\.title"):
        check_columns(RUNS, ["id", "expect.title"], "f.csv")
    with pytest.raises(InputError, match=r"expect\.prerun"):
        check_columns(TEMPLATES, ["id", "expect.prerun." + "a" * 32], "f.csv")


@pytest.mark.parametrize("cleared", [None, ""], ids=["null", "empty-string"])
async def test_a_field_expected_set_and_cleared_since_is_a_conflict(sandbox, tmp_path, cleared):
    # Expected to hold a value, emptied by a person since the input was made: writing now
    # would overwrite their clearing, exactly like overwriting any other edit.
    rid = run_ids(sandbox, 1)[0]
    sandbox.edit_as_person(rid, summary="Seen when selected")
    path = write_csv(tmp_path / "r.csv", ["id", "summary", "expect.summary"],
                     [[rid, "New summary", "Seen when selected"]])
    sandbox.edit_as_person(rid, summary=cleared)

    _, entries = await run_job(sandbox, path)

    assert entries[0].status == "conflict", entries[0].error
    assert '"summary"' in entries[0].error
    assert sandbox.store.runs[rid]["summary"] == cleared
    assert sandbox.stats.writes_per_record.get(rid, 0) == 0


async def test_members_expected_and_all_removed_since_is_a_conflict(sandbox, tmp_path) -> None:
    rid = run_ids(sandbox, 1)[0]
    run = sandbox.store.runs[rid]
    assert run["users"], "the run must start with members"
    path = write_jsonl(tmp_path / "r.jsonl", [
        {"id": rid, "name": "Renamed", "expect": {"users": list(run["users"])}}])
    sandbox.edit_as_person(rid, users=[])

    _, entries = await run_job(sandbox, path)

    assert entries[0].status == "conflict", entries[0].error
    assert '"users"' in entries[0].error
    assert run["users"] == [] and run["name"] != "Renamed"
