"""`bulk select` writes every record once, or says it could not (issue 13, point 7;
production's list shapes)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bulk.engine.clock import SkipClock
from bulk.sandbox import Sandbox
from bulk.tallyfy.select_query import build_selection
from bulk.tallyfy.select_scan import SelectFailed, SelectOptions, select
from bulk.tallyfy.targets import RUNS
from tests.support.helpers import config, connection_to


def _ids(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["run_id"] for row in csv.DictReader(handle)]


async def _select(sandbox: Sandbox, path: Path):
    options = SelectOptions(output=path, rate=10_000.0, burst=100)
    return await select(build_selection(RUNS), options, connection_to(sandbox),
                        clock=SkipClock())


@pytest.mark.parametrize(("cap", "pages_per"), [(100, 10), (50, 100), (100, None)])
async def test_2500_runs_come_once_each_whatever_the_page_shapes(
        tmp_path: Path, cap: int, pages_per: int | None) -> None:
    # per_page capped (at 100, or below what is asked), links [] on the last page, and
    # total_pages counted by another page size than the one served.
    sandbox_config = config(runs=2500, max_per_page=cap, total_pages_per=pages_per)
    async with Sandbox(sandbox_config, port=0) as sandbox:
        summary = await _select(sandbox, tmp_path / "all.csv")
        ids = _ids(tmp_path / "all.csv")
        assert len(ids) == len(set(ids)) == 2500
        assert set(ids) == set(sandbox.store.runs)
        assert summary.selected == 2500 and summary.scans == 1


@pytest.mark.parametrize("how", ["first_to_end", "last_to_front"])
async def test_a_list_that_moves_while_paged_is_scanned_again_and_comes_out_exact(
        tmp_path: Path, how: str) -> None:
    async with Sandbox(config(runs=250), port=0) as sandbox:
        sandbox.lists.move_after_page(1, how)  # once, during the first scan
        summary = await _select(sandbox, tmp_path / "moved.csv")
        ids = _ids(tmp_path / "moved.csv")
        assert sorted(ids) == sorted(sandbox.store.runs)  # each once, none missed
        assert summary.scans == 2
        assert "2 scans (the list moved while paged)" in summary.line()


async def test_a_list_that_never_holds_still_exits_1_and_writes_nothing(
        tmp_path: Path) -> None:
    async with Sandbox(config(runs=250), port=0) as sandbox:
        sandbox.lists.move_after_page(1, "first_to_end", times=10)
        with pytest.raises(SelectFailed, match=r"changed while it was paged.*run it again"):
            await _select(sandbox, tmp_path / "never.csv")
        assert not (tmp_path / "never.csv").exists()
