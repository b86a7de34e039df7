"""Rows failing alike stop the job; a stale id's 404 does not; --max-failures does."""

from __future__ import annotations

from pathlib import Path

from tests.commands.test_cli import invoke
from tests.support.helpers import run_ids, run_job, write_csv


def owner_csv(path: Path, ids: list[str], owner: int) -> Path:
    return write_csv(path, ["id", "owner_id"], [[rid, owner] for rid in ids])


async def test_rows_all_refused_the_same_way_stop_the_job(sandbox, tmp_path):
    path = owner_csv(tmp_path / "o.csv", run_ids(sandbox, 40), 999_999)  # not a member

    summary, entries = await run_job(sandbox, path)

    assert summary.exit_code == 3
    assert summary.aborted.startswith(
        "the first 20 rows that reached the server all failed the same way: HTTP 422: "
        "owner_id: The selected owner id is invalid")
    assert summary.line().count("HTTP 422") == 1  # said once, with its count
    failed = [e for e in entries if e.status == "failed"]
    assert 20 <= len(failed) < 20 + 8  # rows in flight at the stop finish
    assert {e.error_kind for e in failed} == {"definitive"}
    assert summary.ledger_counts["ok"] == 0
    not_done = 40 - len(entries) + sum(e.status == "pending" for e in entries)
    assert not_done >= 40 - 28
    assert sum(sandbox.stats.writes_per_record.values()) == 0


async def test_stale_ids_among_good_rows_do_not_stop_the_job(sandbox, tmp_path):
    good = run_ids(sandbox, 30)
    ids = [f"{n:032x}" if n % 2 else rid for n, rid in enumerate(good)]  # every other stale
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[rid, "Stale"] for rid in ids])

    summary, entries = await run_job(sandbox, path, concurrency=1)

    assert summary.aborted is None and summary.exit_code == 1
    assert [e.status for e in entries] == ["ok", "failed"] * 15
    assert {e.http_status for e in entries if e.status == "failed"} == {404}


async def test_a_job_of_only_stale_ids_is_not_stopped_as_systematic(sandbox, tmp_path):
    ids = [f"{n:032x}" for n in range(25)]
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[rid, "Stale"] for rid in ids])

    summary, entries = await run_job(sandbox, path)

    assert summary.aborted is None
    assert [e.status for e in entries] == ["failed"] * 25


async def test_max_failures_stops_the_job(sandbox, tmp_path):
    ids = [f"{n:032x}" for n in range(25)]
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[rid, "Stale"] for rid in ids])

    summary, entries = await run_job(sandbox, path, max_failures=5, concurrency=1)

    assert summary.exit_code == 3
    assert summary.aborted.startswith("5 rows failed (--max-failures 5); last: HTTP 404")
    assert len(entries) == 5


def test_the_command_exits_3_and_says_why_once(threaded_sandbox, tmp_path):
    from tests.support.helpers import env_for

    path = owner_csv(tmp_path / "o.csv", run_ids(threaded_sandbox, 30), 999_999)
    result = invoke(["apply", "--input", str(path), "--rate", "1000", "-q"],
                    env_for(threaded_sandbox))
    assert result.exit_code == 3
    assert result.stdout.startswith("aborted (the first 20 rows that reached the server")
    assert result.stdout.count("owner id is invalid") == 1
