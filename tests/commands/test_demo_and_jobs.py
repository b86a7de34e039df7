"""The demo and the ready job files, on the sample org they ship with."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from bulk.commands.apply import options_from_settings
from bulk.demo import run_demo
from bulk.jobfile import load_job_file
from bulk.sandbox import Sandbox, SandboxConfig
from tests.support.helpers import run_job

ROOT = Path(__file__).resolve().parents[2]
JOBS = sorted((ROOT / "jobs").glob("*.toml"))


def test_the_demo_runs_a_bad_day_to_a_clean_end(tmp_path: Path) -> None:
    out = io.StringIO()

    code = run_demo("mass-rename", quiet=True, out=out, ledger_dir=tmp_path)

    text = out.getvalue()
    assert code == 0, text
    assert "done: 40 rows: ok 40, unchanged 0, invalid 0, failed 0" in text
    assert "0 records written more than once" in text
    assert "52 of 52 records kept every member" in text
    assert (tmp_path / "mass-rename.ledger.db").exists()
    # The loop closes: the demo undoes its own job, and the sandbox is as it started.
    assert "undo: 40 rows from the ledger put back" in text
    assert "sandbox back to its first state: 52 of 52 records" in text
    report = tmp_path / "mass-rename.report.html"
    assert f"report (open it in a browser): {report}" in text
    assert 'data-status="ok" data-count="40"' in report.read_text(encoding="utf-8")


@pytest.mark.parametrize("job", ["owner-reassignment", "migration-batch"])
def test_the_demo_of_each_other_job_ends_where_it_started(job: str, tmp_path: Path) -> None:
    out = io.StringIO()

    code = run_demo(job, quiet=True, out=out, ledger_dir=tmp_path)

    assert code == 0, out.getvalue()
    assert "sandbox back to its first state: 52 of 52 records" in out.getvalue()
    assert "new name" not in out.getvalue()  # neither job renames anything


def test_the_demo_of_the_leaver_handover_counts_the_tasks_too(tmp_path: Path) -> None:
    out = io.StringIO()

    code = run_demo("leaver-handover", quiet=True, out=out, ledger_dir=tmp_path)

    text = out.getvalue()
    assert code == 0, text
    assert "done: 3 rows: ok 3, unchanged 0, invalid 0, failed 0" in text
    assert "121 of 121 records kept every member" in text  # 40 runs, 12 templates, 69 tasks
    assert "sandbox back to its first state: 121 of 121 records" in text


async def test_the_owner_reassignment_sample_is_what_select_writes(tmp_path: Path) -> None:
    # The README's command: give every process Umar Novak (55663) owns to Kemi Silva (44825).
    from bulk.tallyfy.select_query import build_selection
    from bulk.tallyfy.select_scan import SelectOptions, select
    from bulk.tallyfy.targets import RUNS
    from tests.support.helpers import connection_to

    selection = build_selection(RUNS, owner=55663, sets=(
        "owner_id=44825", "add_users=44825", "remove_users=55663"))
    output = tmp_path / "owner-reassignment.csv"
    async with Sandbox(SandboxConfig(data=ROOT / "sample_data" / "org.json"), port=0) as sandbox:
        summary = await select(selection, SelectOptions(output=output, rate=1000.0),
                               connection_to(sandbox))

    assert summary.selected == 3 and summary.scanned == 11  # owners= also found 8 others
    shipped = ROOT / "sample_data" / "owner-reassignment.csv"
    assert output.read_text() == shipped.read_text()


async def test_the_leaver_handover_sample_is_what_select_writes(tmp_path: Path) -> None:
    # The README's command: Umar Novak's (55663) open tasks to Kemi Silva (44825).
    from bulk.tallyfy.select_query import build_selection
    from bulk.tallyfy.select_scan import SelectOptions, select
    from bulk.tallyfy.targets import TARGETS
    from tests.support.helpers import connection_to

    selection = build_selection(TARGETS["tasks"], assignee=55663, sets=(
        "add_users=44825", "remove_users=55663"))
    output = tmp_path / "leaver-handover.csv"
    async with Sandbox(SandboxConfig(data=ROOT / "sample_data" / "org.json"), port=0) as sandbox:
        summary = await select(selection, SelectOptions(output=output, rate=1000.0),
                               connection_to(sandbox))
        done = [t for t in sandbox.store.tasks.values()
                if 55663 in t["owners"]["users"] and t["status"] == "completed"]

    assert summary.selected == 3 and done  # his completed task is not selected
    shipped = ROOT / "sample_data" / "leaver-handover.csv"
    assert output.read_text() == shipped.read_text()


def test_there_is_a_job_for_each_common_use() -> None:
    assert {job.stem for job in JOBS} == {"mass-rename", "owner-reassignment", "migration-batch",
        "leaver-handover"}


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.stem)
async def test_each_job_file_applies_cleanly_to_the_sample_org(job: Path, tmp_path: Path) -> None:
    settings = load_job_file(job)
    options = options_from_settings(settings)
    # A copy, so the ledger lands in tmp_path and not beside the shipped sample.
    input_path = Path(shutil.copy(options.input, tmp_path))
    async with Sandbox(SandboxConfig(data=ROOT / "sample_data" / "org.json"), port=0) as sandbox:
        summary, entries = await run_job(sandbox, input_path, target=options.target)

    assert summary.exit_code == 0, [e.error for e in entries if e.status != "ok"]
    assert entries and all(e.status == "ok" for e in entries)
