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
    assert lines[1] == "plan: 8 rows would change, 0 already match"
    assert lines[2] == "rows that would change each field:"
    assert lines[3:5] == ["  name     8", "  starred  3"]
    assert lines[5] == "first changes:"
    first = ids[0]
    named = f'{first} "{runs[first]["name"]}"'  # the name its read saw, beside the id
    assert lines[6] == f'  {named}  name: "{runs[first]["name"]}" → "New 0"'
    assert lines[7] == f"  {named}  starred: false → true"
    assert len([line for line in lines if re.match(r'  [0-9a-f]{32} "', line)]) == 5
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
    assert re.match(r"\s+rows 26, 27$", groups[1])
    assert "what to do: the row itself is wrong" in groups[2]
    assert re.match(r"\s+bulk export \S+ --status invalid --cause (\w{8}) --format csv "
                    r"-o invalid-\1.csv$", groups[3])
    assert re.match(r"\s+bulk apply --input invalid-\w{8}.csv --target runs   "
                    r"\(once the rows in it are fixed\)$", groups[4])
    assert re.match(r"\s+2  failed  HTTP 404: Resource not found \(GET runs/ID\)$", groups[5])
    assert "rows 28, 29" in groups[6]
    assert "what to do: the record is gone" in groups[7]
    # A cause of one row shows its message whole, values included.
    assert re.match(r"\s+1  in_doubt  server closed the connection without an answer "
                    r"\(PUT runs/x\)$", groups[9])
    assert "row 30" in groups[10] and "run the same command again" in groups[11]
    assert "conflict" in groups[13] and "select again" in groups[15]
