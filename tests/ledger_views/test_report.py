"""`bulk report`: one self-contained page whose figures are those of `bulk status`."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from bulk.cli import main
from tests.ledger_views.helpers import MISSING
from tests.ledger_views.htmlparse import Page
from tests.support.helpers import env_for, rename_csv, run_ids, write_csv

SECTIONS = {"job", "counts", "throughput", "errors", "changes"}


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)


def status_counts(ledger: Path) -> dict[str, int]:
    result = invoke(["status", str(ledger)])
    assert result.exit_code == 0, result.output
    found = re.findall(r"^  (\w+)\s+(\d+)$", result.stdout, re.M)
    return {status: int(count) for status, count in found}


def report_of(ledger: Path, tmp_path: Path) -> tuple[str, Page]:
    out = tmp_path / "report.html"
    result = invoke(["report", str(ledger), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report: {out}" in result.stdout
    text = out.read_text(encoding="utf-8")
    return text, Page(text)


async def test_every_section_is_there_with_the_figures_of_bulk_status(rich, tmp_path) -> None:
    _text, page = report_of(rich, tmp_path)

    assert set(page.sections) == SECTIONS
    shown = {attrs["data-status"]: int(attrs["data-count"] or -1)
             for attrs in page.with_attr("data-status")}
    expected = status_counts(rich)
    assert {status: shown[status] for status in expected} == expected
    assert expected["ok"] == 24 and expected["failed"] == 2 and expected["invalid"] == 2
    assert expected["unchanged"] == 1 and expected["in_doubt"] == 1
    assert shown["conflict"] == expected["conflict"] == 1
    # The tile's figure is the one a person reads, not only the attribute.
    assert "24 ok 1 unchanged 2 invalid 2 failed 1 conflict 1 in_doubt 0 pending" in \
        page.text("counts")
    job = page.text("job")
    for needle in ("renames.csv", "runs", "input sha256", "concurrency 8", "done"):
        assert needle in job
    assert "name 24" in page.text("counts").replace(",", "")


async def test_errors_are_grouped_by_cause_as_bulk_status_groups_them(rich, tmp_path) -> None:
    _text, page = report_of(rich, tmp_path)

    causes = {attrs["data-key"]: int(attrs["data-count"] or 0)
              for attrs in page.with_attr("data-key")}
    status = invoke(["status", str(rich)]).stdout
    assert set(causes) == set(re.findall(r"--cause (\w+)", status))
    # The two 404s on different rows are one cause; so are the two malformed ids.
    assert sorted(causes.values()) == [1, 1, 2, 2]
    errors = page.text("errors")
    assert "HTTP 404: Resource not found (GET runs/ID)" in errors
    assert f"bulk export {rich} --status failed --cause" in errors


async def test_the_chart_has_the_rows_and_the_429s_and_pauses(rich, tmp_path) -> None:
    _text, page = report_of(rich, tmp_path)

    data = json.loads(next(s for s in page.scripts if s.lstrip().startswith("{")))
    finished = sum(status_counts(rich).values()) - status_counts(rich)["pending"]
    assert round(sum(data["done"]) * data["width"]) == finished
    with sqlite3.connect(rich) as db:
        hits = db.execute("SELECT COUNT(*) FROM events WHERE kind = '429'").fetchone()[0]
        pauses = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'pause'").fetchone()[0]
    assert hits > 0 and pauses > 0
    assert sum(data["hits_429"]) == hits
    # Pauses that overlap (a 429 during a pause extends it) are drawn as one band.
    bands = data["bands"]
    assert 1 <= len(bands) <= pauses and {b[0] for b in bands} == {"pause"}
    assert all(a[1] + a[2] < b[1] for a, b in itertools.pairwise(bands))
    assert f"{hits} 429 answers" in page.text("throughput")


async def test_the_page_asks_no_other_host_for_anything(rich, tmp_path) -> None:
    text, page = report_of(rich, tmp_path)

    assert page.links == []  # no src, href... at all: everything is inline
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", "".join(page.styles))
    assert not re.search(r"@import", "".join(page.styles))
    code = "".join(page.scripts)
    assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|importScripts)\b", code)
    assert "uPlot" in code and "new uPlot" in code
    assert len(text) < 150_000


async def test_a_sample_of_the_changes_field_by_field(rich, tmp_path) -> None:
    _text, page = report_of(rich, tmp_path)

    changes = page.text("changes")
    assert "name (24 rows; the first 5)" in changes
    assert '"Renamed 0"' in changes and "→" in changes


def test_a_dry_run_report_shows_the_plan(threaded_sandbox, tmp_path: Path) -> None:
    ids = run_ids(threaded_sandbox, 6)
    rows = [[rid, f"Plan {n}"] for n, rid in enumerate(ids)] + [[ids[0], "Twice"]]
    path = write_csv(tmp_path / "plan.csv", ["id", "name"], rows)
    result = invoke(["apply", "--input", str(path), "--rate", "1000", "--dry-run"],
                    env_for(threaded_sandbox))
    assert result.exit_code == 0, result.output

    _text, page = report_of(tmp_path / "plan.csv.dry-run.ledger.db", tmp_path)

    assert set(page.sections) == SECTIONS - {"changes"} | {"plan"}
    plan = page.text("plan")
    assert "nothing was written" in plan and "7 rows would change" in plan
    assert "1 record is named by more than one row" in plan and ids[0] in plan
    assert '"Plan 0"' in plan


def test_a_ledger_from_before_events_still_reports(threaded_sandbox, tmp_path: Path) -> None:
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 3), "Old")
    invoke(["apply", "--input", str(path), "--rate", "1000"], env_for(threaded_sandbox))
    ledger = tmp_path / "r.csv.ledger.db"
    with sqlite3.connect(ledger) as db:
        db.execute("DROP TABLE events")

    _text, page = report_of(ledger, tmp_path)

    assert "ok" in page.text("counts") and set(page.sections) == SECTIONS


def test_not_a_ledger_is_one_line_and_exit_2(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    for target in (other, tmp_path / "missing.db"):
        result = invoke(["report", str(target)])
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and str(target) in result.stderr


async def test_export_cause_lists_every_row_of_one_cause(rich) -> None:
    status = invoke(["status", str(rich)]).stdout
    key = re.search(r"--status failed --cause (\w+)", status).group(1)

    result = invoke(["export", str(rich), "--status", "failed", "--cause", key])

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["row"], r["id"]) for r in rows] == [(28, MISSING), (29, MISSING)]
