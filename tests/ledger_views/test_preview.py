"""The dry run's preview on the terminal, and the errors by cause of `bulk status`."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from bulk.cli import main
from tests.support.helpers import env_for, run_ids, write_csv


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)


def test_a_dry_run_ends_with_what_would_change_per_field(threaded_sandbox, tmp_path) -> None:
    ids = run_ids(threaded_sandbox, 8)
    runs = threaded_sandbox.store.runs
    rows = [[rid, f"New {n}", "true" if n < 3 else ""] for n, rid in enumerate(ids)]
    path = write_csv(tmp_path / "p.csv", ["id", "name", "starred"], rows)
    for rid in ids[:3]:
        runs[rid]["starred"] = False

    result = invoke(["apply", "--input", str(path), "--rate", "1000", "--dry-run"],
                    env_for(threaded_sandbox))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dry run done, nothing written")
    assert lines[1] == "plan: rows that would change each field"
    assert lines[2:4] == ["  name     8", "  starred  3"]
    assert lines[4] == "first changes:"
    first = ids[0]
    assert lines[5] == f'  {first}  name: "{runs[first]["name"]}" → "New 0"'
    assert lines[6] == f"  {first}  starred: false → true"
    assert len([line for line in lines if re.match(r"  [0-9a-f]{32}  ", line)]) == 5
    assert lines[-1].startswith(f"every change: bulk export {path}.dry-run.ledger.db --status ok")
    assert threaded_sandbox.stats.writes == 0


def test_a_real_run_prints_no_preview(threaded_sandbox, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[run_ids(threaded_sandbox, 1)[0], "R"]])

    result = invoke(["apply", "--input", str(path), "--rate", "1000"], env_for(threaded_sandbox))

    assert len(result.stdout.strip().splitlines()) == 1


def test_a_dry_run_that_changes_nothing_says_so(threaded_sandbox, tmp_path: Path) -> None:
    rid = run_ids(threaded_sandbox, 1)[0]
    name = threaded_sandbox.store.runs[rid]["name"]
    path = write_csv(tmp_path / "same.csv", ["id", "name"], [[rid, name]])

    result = invoke(["apply", "--input", str(path), "--rate", "1000", "--dry-run"],
                    env_for(threaded_sandbox))

    assert "plan: no row would change anything" in result.stdout.splitlines()


async def test_status_groups_errors_by_cause_with_counts(rich) -> None:
    lines = invoke(["status", str(rich)]).stdout.splitlines()

    at = lines.index("errors by cause: 6 rows, 4 causes")
    groups = lines[at + 1:]
    assert re.match(r"\s+2  invalid  renames.csv: row N, column \"id\": ", groups[0])
    assert re.match(r"\s+rows 26, 27  ·  bulk export \S+ --status invalid --cause \w{8}$",
                    groups[1])
    assert re.match(r"\s+2  failed  HTTP 404: Resource not found \(GET runs/ID\)$", groups[2])
    assert "rows 28, 29" in groups[3]
    assert "in_doubt" in groups[4] and "conflict" in groups[6]
