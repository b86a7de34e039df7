"""The dry run leads with its news; the chart's details; the small points of issue 16."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.cli import main
from tests.ledger_views.htmlparse import Page
from tests.support.helpers import ROOT, env_for, run_ids, write_csv


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)


def bad_day_plan(sandbox, tmp_path: Path) -> tuple[Path, list[str]]:
    """A dry run with 2 failed (404), 2 invalid, 1 conflict and a record named twice."""
    ids = run_ids(sandbox, 6)
    rows = [[rid, f"Plan {n}", ""] for n, rid in enumerate(ids[:4])]
    rows += [[ids[0], "Plan 0 again", ""]]  # repeated
    rows += [[ids[5], "Plan 5", "Not its name"]]  # conflict: expected another name
    rows += [["0" * 31 + "1", "Gone", ""], ["0" * 31 + "2", "Gone", ""]]  # failed
    rows += [["not-an-id", "x", ""], ["", "y", ""]]  # invalid
    path = write_csv(tmp_path / "plan.csv", ["id", "name", "expect.name"], rows)
    return path, ids


def test_the_dry_run_preview_leads_with_its_bad_news(threaded_sandbox, tmp_path) -> None:
    path, ids = bad_day_plan(threaded_sandbox, tmp_path)

    result = invoke(["apply", "--input", str(path), "--rate", "1000", "--dry-run"],
                    env_for(threaded_sandbox))

    lines = result.stdout.splitlines()
    ledger = f"{path}.dry-run.ledger.db"
    assert lines[1] == ("plan: 5 rows would change, 0 already match · 2 failed; 2 invalid; "
                        "1 conflict · 1 record named by several rows (applied one after another, "
                        "in file order)")
    assert lines[2] == f"  {ids[0]} is named by 2 rows: 1, 5"
    assert lines[3] == f"  why, and what to do: bulk status {ledger} (or bulk report {ledger})"
    assert lines[4] == "rows that would change each field:"
    assert threaded_sandbox.stats.writes == 0


def test_the_dry_run_report_opens_with_the_plan_and_says_would_change(
        threaded_sandbox, tmp_path) -> None:
    path, _ids = bad_day_plan(threaded_sandbox, tmp_path)
    invoke(["apply", "--input", str(path), "--rate", "1000", "--dry-run"],
           env_for(threaded_sandbox))
    out = tmp_path / "plan.html"

    invoke(["report", f"{path}.dry-run.ledger.db", "-o", str(out)])

    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert next(iter(page.sections)) == "plan"
    assert ("5 rows would change, 0 already match · 2 failed; 2 invalid; 1 conflict · "
            "1 record named by several rows") in page.text("plan")
    assert 'href="#errors"' in text
    tile = re.search(r'data-status="ok"[^>]*><b>5</b><span>([^<]*)</span>', text)
    assert tile is not None and tile.group(1) == "would change"
    assert "<span>ok</span>" not in text


def test_a_page_without_javascript_says_the_chart_needs_it(rich, tmp_path) -> None:
    out = tmp_path / "r.html"
    invoke(["report", str(rich), "-o", str(out)])
    text = out.read_text(encoding="utf-8")

    noscript = re.search(r"<noscript>(.*?)</noscript>", text, re.S)
    assert noscript is not None and "The chart needs JavaScript" in noscript.group(1)
    throughput = Page(text).text("throughput")
    average = re.search(r"average ([\d.]+) rows/s", throughput)
    peak = re.search(r"peak ([\d.]+) rows/s", throughput)
    assert average and peak and float(average.group(1)) <= float(peak.group(1))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs headless chromium")
def test_the_chart_in_a_browser_legend_totals_and_utc_times(rich, tmp_path) -> None:
    out = tmp_path / "r.html"
    invoke(["report", str(rich), "-o", str(out)])
    profile = tmp_path / "profile"
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=700,1200",
         "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=60, check=True).stdout
    values = re.findall(r'<td class="u-value">([^<]*)</td>', dom)
    # Before any hover the legend gives the totals, never "--".
    # 31 rows recorded, none pending; 6 of them not ok or unchanged.
    assert values[:4] == ["whole job", "31 rows", "6 rows", f"{values[3].split()[0]} in all"]
    assert "--" not in values
    assert int(values[3].split()[0]) > 0  # the 429s of the rich ledger's tight quota
    canvas = re.search(r'<canvas width="(\d+)"', dom)
    assert canvas is not None and int(canvas.group(1)) <= 700  # fits a 700 px window


def test_the_chart_counts_429s_in_whole_numbers_on_utc_time() -> None:
    script = (ROOT / "bulk/ledger_views/html_report/chart.js").read_text(encoding="utf-8")
    incrs = re.search(r"incrs: \[([^\]]*)\]", script)
    assert incrs is not None
    assert all(float(step).is_integer() for step in incrs.group(1).split(","))
    assert '"Etc/UTC"' in script and "getUTCHours" in script


def test_export_help_names_every_key_it_writes(rich, tmp_path) -> None:
    helped = " ".join(invoke(["export", "--help"]).stdout.split())
    record = json.loads(invoke(["export", str(rich)]).stdout.splitlines()[0])
    header = invoke(["export", str(rich), "--format", "csv"]).stdout.splitlines()[0]

    for key in record:
        assert key in helped, key
    assert "own input columns" in helped and "name" in header.split(",")


def test_lock_files_are_ignored_by_git() -> None:
    patterns = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    for name in ("renames.csv.ledger.db.lock", "r.csv.dry-run.ledger.db.lock"):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
