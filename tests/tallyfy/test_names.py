"""Names beside ids: select's `ref.` column (ignored by apply), and the name each row read,
kept in the ledger and shown by the preview, `bulk status` and `bulk report`."""

from __future__ import annotations

import csv
import json
import sqlite3

from click.testing import CliRunner

from bulk.cli import main
from bulk.engine.ledger import Ledger
from bulk.ledger_views.html_report.preview import preview_lines
from bulk.ledger_views.names import shown_name
from bulk.ledger_views.status_export import status_lines
from tests.support.helpers import env_for, run_ids, run_job, template_ids, write_csv, write_jsonl


def invoke(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


async def test_apply_ignores_reference_columns_whatever_they_hold(sandbox, tmp_path) -> None:
    a, b = run_ids(sandbox, 2)
    before = sandbox.store.runs[b]["name"]
    path = write_csv(tmp_path / "r.csv", ["id", "ref.name", "ref.note", "name"], [
        [a, "edited by hand: not a field", "anything", "Renamed A"],
        [b, "", "", ""],  # only references: nothing to change
    ])

    _, entries = await run_job(sandbox, path)

    assert [e.status for e in entries] == ["ok", "invalid"]
    assert "nothing to change" in (entries[1].error or "")
    assert sandbox.store.runs[a]["name"] == "Renamed A"
    assert sandbox.store.runs[b]["name"] == before
    assert sandbox.stats.writes == 1


async def test_a_jsonl_ref_object_is_ignored_too(sandbox, tmp_path) -> None:
    (a,) = run_ids(sandbox, 1)
    path = write_jsonl(tmp_path / "r.jsonl", [
        {"run_id": a, "ref": {"name": "whatever", "n": [1, 2]}, "summary": "Noted"}])

    _, entries = await run_job(sandbox, path, format="jsonl")

    assert [e.status for e in entries] == ["ok"]
    assert sandbox.store.runs[a]["summary"] == "Noted"


def test_a_template_select_with_columns_names_each_template(threaded_sandbox, tmp_path) -> None:
    path = tmp_path / "t.csv"

    result = invoke(["select", "templates", "--columns", "owner_id", "-o", str(path), "-q",
                     "--rate", "1000"], env_for(threaded_sandbox))

    assert result.exit_code == 0, result.output
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["checklist_id", "ref.title", "expect.owner_id"]
    titles = {tid: t["title"] for tid, t in threaded_sandbox.store.checklists.items()}
    assert all(row["ref.title"] == titles[row["checklist_id"]] for row in rows)
    # ... and the file, as written, is an input apply takes (the reference ignored)
    edited = tmp_path / "edited.csv"
    with edited.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, [*rows[0], "starred"])
        writer.writeheader()
        writer.writerow({**rows[0], "starred": "true"})
    applied = invoke(["apply", "--input", str(edited), "--target", "templates", "-q",
                      "--rate", "1000"], env_for(threaded_sandbox))
    assert applied.exit_code == 0, applied.output


async def test_the_ledger_keeps_each_records_name_and_every_view_shows_it(sandbox, tmp_path):
    ids = run_ids(sandbox, 3)
    names = [sandbox.store.runs[rid]["name"] for rid in ids]
    sandbox.edit_as_person(ids[2], summary="edited meanwhile")
    path = write_csv(tmp_path / "r.csv", ["id", "summary", "expect.summary"], [
        [ids[0], "One", ""], [ids[1], "Two", ""],
        [ids[2], "Three", "what it was"],  # a conflict: an error with a name
    ])

    _, plan = await run_job(sandbox, path, dry_run=True)
    preview = "\n".join(preview_lines(tmp_path / "r.csv.dry-run.ledger.db"))
    _, entries = await run_job(sandbox, path)

    assert [e.record_name for e in plan] == names
    assert f"{ids[0]} {shown_name(names[0])}  summary:" in preview
    assert [e.record_name for e in entries] == names
    assert [e.status for e in entries] == ["ok", "ok", "conflict"]
    ledger = tmp_path / "r.csv.ledger.db"
    with Ledger(ledger, read_only=True) as book:
        status = "\n".join(status_lines(book))
    assert f"row 3 {shown_name(names[2])}" in status  # a cause of one row: "row"
    report = tmp_path / "r.html"
    assert invoke(["report", str(ledger), "-o", str(report)], {}).exit_code == 0
    html = report.read_text(encoding="utf-8")
    for name in names:
        assert f'<span class="record-name">{name}</span>' in html


async def test_a_name_cannot_drive_the_terminal(sandbox, tmp_path) -> None:
    (rid,) = run_ids(sandbox, 1)
    sandbox.edit_as_person(rid, name="Evil\x1b[2J\x1b[31mred\nline")
    path = write_csv(tmp_path / "r.csv", ["id", "summary"], [[rid, "x"]])

    await run_job(sandbox, path, dry_run=True)
    preview = "\n".join(preview_lines(tmp_path / "r.csv.dry-run.ledger.db"))

    assert "\x1b" not in preview and "Evil\\u001b[2J" in preview


async def test_a_ledger_from_before_names_still_shows_everything(sandbox, tmp_path) -> None:
    ids = template_ids(sandbox, 2)
    path = write_csv(tmp_path / "t.csv", ["checklist_id", "summary"],
                     [[ids[0], "A"], ["not-an-id", "B"]])
    await run_job(sandbox, path, target="templates")
    ledger = tmp_path / "t.csv.ledger.db"
    with sqlite3.connect(ledger) as db:
        db.execute("ALTER TABLE rows DROP COLUMN record_name")  # as an older bulk wrote it
    db.close()

    with Ledger(ledger, read_only=True) as book:
        assert [e.record_name for e in book.entries()] == [None, None]
        assert any("invalid" in line for line in status_lines(book))
    assert invoke(["report", str(ledger), "-o", str(tmp_path / "t.html")], {}).exit_code == 0
    exported = invoke(["export", str(ledger)], {})
    assert [json.loads(line)["status"] for line in exported.stdout.splitlines()] == [
        "ok", "invalid"]
    # A run on it adds the column and goes on (resumed: nothing left to do).
    _, entries = await run_job(sandbox, path, target="templates")
    assert [e.status for e in entries] == ["ok", "invalid"]


def test_names_are_shown_whole_or_cut_and_quoted() -> None:
    assert shown_name(None) == ""
    assert shown_name("QBR - Acme") == '"QBR - Acme"'
    assert shown_name("x" * 100, limit=10) == '"' + "x" * 9 + '…"'
