"""Several rows naming one record: one after another, in file order (issue 13, point 1)."""

from __future__ import annotations

from pathlib import Path

from bulk.sandbox import Sandbox
from bulk.tallyfy.apply_job import ApplyOptions, prepare
from tests.support.helpers import (
    config,
    connection_to,
    interleaved,
    run_ids,
    run_job,
    write_jsonl,
)


def _mixed_rows(ids: list[str], joiner: dict[str, int], seed: int = 5) -> list[dict[str, object]]:
    """Three rows per run (add a member, rename, remove it again), mixed through the file
    with each run's own rows still in that order."""
    lanes = [[{"id": rid, "add_users": [joiner[rid]]}, {"id": rid, "name": f"renamed {n}"},
              {"id": rid, "remove_users": [joiner[rid]]}] for n, rid in enumerate(ids)]
    return interleaved(lanes, seed)


async def test_three_rows_per_record_at_concurrency_32_all_land_in_file_order(
        tmp_path: Path) -> None:
    async with Sandbox(config(runs=120, latency_ms=1, jitter_ms=3), host="127.0.0.1",
                       port=0) as sandbox:
        ids = run_ids(sandbox)
        members = sorted(sandbox.store.member_ids())
        original = {rid: list(sandbox.store.runs[rid]["users"]) for rid in ids}
        joiner = {rid: next(m for m in members if m not in original[rid]) for rid in ids}
        rows = _mixed_rows(ids, joiner)
        path = write_jsonl(tmp_path / "batch.jsonl", rows)
        summary, entries = await run_job(sandbox, path, concurrency=32)
        assert summary.exit_code == 0, summary.line()
        assert [e.status for e in entries] == ["ok"] * len(rows)
        for n, rid in enumerate(ids):
            run = sandbox.store.runs[rid]
            assert run["name"] == f"renamed {n}"
            assert sorted(run["users"]) == sorted(original[rid])  # added, then removed
        # File order: each record's remove saw its add (before), and its add came first.
        by_row = {e.row: e for e in entries}
        for rid in ids:
            own = [number for number, row in enumerate(rows, start=1) if row["id"] == rid]
            add, rename, remove = (by_row[number] for number in own)
            assert joiner[rid] in add.after["users"]
            assert joiner[rid] in remove.before["users"]
            assert rename.after == {"name": rename.after["name"]}


async def test_dry_run_keeps_the_order_too(tmp_path: Path) -> None:
    async with Sandbox(config(runs=10), host="127.0.0.1", port=0) as sandbox:
        ids = run_ids(sandbox)
        rows = [{"id": rid, "name": f"{label} {rid[:4]}"} for label in ("a", "b")
                for rid in ids]
        path = write_jsonl(tmp_path / "twice.jsonl", rows)
        _summary, entries = await run_job(sandbox, path, concurrency=16, dry_run=True)
        assert [e.row for e in entries] == list(range(1, len(rows) + 1))
        assert {e.status for e in entries} == {"ok"}


async def test_a_dry_run_plans_each_row_on_what_the_rows_before_it_would_write(
        tmp_path: Path) -> None:
    async with Sandbox(config(runs=4), host="127.0.0.1", port=0) as sandbox:
        ids = run_ids(sandbox)
        members = sorted(sandbox.store.member_ids())
        joiner = {rid: next(m for m in members if m not in sandbox.store.runs[rid]["users"])
                  for rid in ids}
        rows = _mixed_rows(ids, joiner)
        path = write_jsonl(tmp_path / "batch.jsonl", rows)
        _summary, entries = await run_job(sandbox, path, concurrency=8, dry_run=True)
        # As the real run: the add, the rename and the remove each change something.
        assert [e.status for e in entries] == ["ok"] * len(rows)
        for entry, row in zip(entries, rows, strict=True):
            if "remove_users" in row:
                assert joiner[str(row["id"])] in entry.before["users"]
        assert sandbox.stats.writes_per_record == {}


def test_the_key_is_the_record_id_as_the_parser_reads_it(tmp_path: Path) -> None:
    from bulk.engine.reader import RawRow
    from bulk.tallyfy.apply_job import record_key

    key = record_key("id")
    assert key(RawRow(1, {"id": " ABCdef "}, None)) == "abcdef"
    assert key(RawRow(2, {"id": 7}, None)) is None
    assert key(RawRow(3, None, "broken")) is None
    assert ApplyOptions and prepare and connection_to  # the helpers this module shares


async def test_undo_of_several_rows_on_one_record_puts_back_the_first_before_value(
        tmp_path: Path) -> None:
    from bulk.tallyfy.undo import write_undo

    async with Sandbox(config(runs=3), host="127.0.0.1", port=0) as sandbox:
        ids = run_ids(sandbox)
        first = {rid: sandbox.store.runs[rid]["name"] for rid in ids}
        rows = [{"id": rid, "name": f"{step} {rid[:4]}"} for step in ("B", "C", "D")
                for rid in ids]
        path = write_jsonl(tmp_path / "thrice.jsonl", rows)
        ledger = tmp_path / "thrice.ledger.db"
        summary, _ = await run_job(sandbox, path, ledger=ledger, concurrency=8)
        assert summary.exit_code == 0
        undo = tmp_path / "undo.jsonl"
        write_undo(ledger, undo)
        result, entries = await run_job(sandbox, undo, concurrency=8)
        assert result.exit_code == 0, [(e.status, e.error) for e in entries]
        assert {rid: sandbox.store.runs[rid]["name"] for rid in ids} == first
