"""Contradictory --set pairs; a task nobody is assigned to (issue 13, point 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk.sandbox import Sandbox
from bulk.tallyfy.select_query import SelectError, build_selection
from bulk.tallyfy.targets import RUNS, TARGETS
from tests.commands.test_cli import invoke
from tests.support.helpers import run_job, write_csv


@pytest.mark.parametrize(("sets", "named"), [
    (("add_users=5", "remove_users=5"), "--set add_users and --set remove_users: 5"),
    (("users=5", "add_users=6"), "--set users and --set add_users cannot go together"),
    (("remove_groups=" + "a" * 32, "groups=" + "b" * 32), "--set groups and --set remove_groups"),
])
def test_contradictory_set_pairs_are_refused_naming_both(sets: tuple[str, ...],
                                                         named: str) -> None:
    with pytest.raises(SelectError, match=named.replace("(", r"\(")):
        build_selection(RUNS, sets=sets)


def test_contradictory_set_pairs_exit_2_before_any_request(tmp_path: Path) -> None:
    env = {"TALLYFY_BASE_URL": "http://127.0.0.1:9", "TALLYFY_ORG_ID": "o",
           "TALLYFY_ACCESS_TOKEN": "t"}
    result = invoke(["select", "runs", "-o", str(tmp_path / "x.csv"),
                     "--set", "add_users=5", "--set", "remove_users=5"], env)
    assert result.exit_code == 2
    assert "--set add_users and --set remove_users" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_a_task_delta_that_does_not_clash_is_kept() -> None:
    selection = build_selection(TARGETS["tasks"], assignee="5",
                                sets=("add_users=5", "remove_users=6"))
    assert [column.column for column in selection.sets] == ["add_users", "remove_users"]


async def test_a_task_nobody_is_assigned_to_can_get_a_new_title(sandbox: Sandbox,
                                                                 tmp_path: Path) -> None:
    task = next(t for t in sandbox.store.tasks.values() if t["run_id"]
                and t["status"] != "completed")
    task["owners"] = {"users": [], "guests": [], "groups": []}
    path = write_csv(tmp_path / "t.csv", ["run_id", "task_id", "title"],
                     [[task["run_id"], task["id"], "Renamed, still unassigned"]])
    summary, entries = await run_job(sandbox, path, target="tasks")
    assert [e.status for e in entries] == ["ok"], entries[0].error
    assert task["title"] == "Renamed, still unassigned"
    assert summary.exit_code == 0
