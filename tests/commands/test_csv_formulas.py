"""Select's CSV never runs a formula in a spreadsheet, and apply reads back exactly what
select wrote (issue 13, point 9)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bulk.engine.clock import SkipClock
from bulk.engine.csv_cells import protect, unprotect
from bulk.engine.reader import InputFile
from bulk.sandbox import Sandbox
from bulk.tallyfy.select_query import build_selection
from bulk.tallyfy.select_scan import SelectOptions, select
from bulk.tallyfy.targets import RUNS
from tests.support.helpers import connection_to, run_ids, run_job

NAMES = ["=HYPERLINK(\"http://x\",\"y\")", "+1 plus", "-minus", "@at", "\tTabbed",
         "'quoted", "''=twice", "plain"]


@pytest.mark.parametrize("text", [*NAMES, "", "'", "=", "a=b", "'a"])
def test_protect_then_unprotect_gives_the_text_back(text: str) -> None:
    written = protect(text)
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert unprotect(written) == text


def _raw_cells(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


async def test_select_writes_no_formula_and_apply_reads_back_what_it_wrote(
        sandbox: Sandbox, tmp_path: Path) -> None:
    ids = run_ids(sandbox, len(NAMES))
    for rid, name in zip(ids, NAMES, strict=True):
        sandbox.edit_as_person(rid, name=name)
    out = tmp_path / "odd.csv"
    selection = build_selection(RUNS, sets=("name={name} (checked)",), columns=None)
    await select(selection, SelectOptions(output=out, rate=10_000.0, burst=100),
                 connection_to(sandbox), clock=SkipClock())
    cells = _raw_cells(out)
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    read = {row.values["run_id"]: row.values for row in InputFile(out).rows()}
    for rid, name in zip(ids, NAMES, strict=True):
        assert read[rid]["expect.name"] == name
        assert read[rid]["name"] == f"{name} (checked)"
    summary, entries = await run_job(sandbox, out)
    by_id = {entry.record_id: entry for entry in entries}
    for rid, name in zip(ids, NAMES, strict=True):
        assert by_id[rid].status == "ok", by_id[rid].error  # expect.name matched exactly
        assert sandbox.store.runs[rid]["name"] == f"{name} (checked)"
    assert summary.exit_code == 0
