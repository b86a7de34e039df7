"""`bulk apply` on input that changes under the job, is not a regular file, or is broken in
ways that used to print a traceback (issue 6 items 6-8; issue 10 item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bulk.engine.errors import InputError
from bulk.engine.ledger import Entry
from bulk.sandbox import Sandbox
from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
from tests.support.helpers import (
    ROOT,
    connection_to,
    on_records,
    run_ids,
    run_job,
    write_csv,
    write_jsonl,
)


class EditOnFirstRow:
    """A progress observer that edits the input right after the first row is recorded."""

    def __init__(self, path: Path, edit: bytes, at: int) -> None:
        self.path, self.edit, self.at = path, edit, at
        self.done = False

    def start(self, total: int) -> None:
        pass

    def advance(self, entry: Entry | None) -> None:
        if not self.done:
            self.done = True
            with self.path.open("r+b") as handle:
                handle.seek(self.at)
                handle.write(self.edit)

    def skip(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


async def test_input_edited_during_the_job_stops_it_before_any_edited_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    ids = run_ids(sandbox)  # 40 runs; ~3 KB a row: the reader's first 64 KB read holds ~20
    path = write_csv(tmp_path / "long.csv", ["id", "summary"],
                     [[rid, f"{n:02d} " + "s" * 3000] for n, rid in enumerate(ids)])
    original = path.read_bytes()
    last_row = original.rindex(ids[-1].encode())
    options = ApplyOptions(input=path, rate=10_000.0, burst=100, concurrency=1)
    prepared = prepare(options, connection_to(sandbox))
    observer = EditOnFirstRow(path, b"EDITED", last_row + 40)
    try:
        with pytest.raises(InputError) as caught:
            await execute(prepared, observer=observer)
        entries = {entry.row: entry for entry in prepared.ledger.entries()}
        outcome = prepared.ledger.meta()["outcome"]
    finally:
        prepared.ledger.close()

    message = str(caught.value)
    assert "long.csv: the file changed while the job was reading it" in message
    assert "stopped before using any row read after the change" in message
    assert "\n" not in message
    assert outcome == "stopped: the input file changed or became unreadable"
    # Rows read before the edit were applied; none read after it, and the edited row never.
    done = sorted(row for row, entry in entries.items() if entry.status == "ok")
    assert done == list(range(1, len(done) + 1)) and 1 < len(done) < 40
    assert all(entry.status in ("ok", "pending") for entry in entries.values())
    assert not any("EDITED" in str(record.get("summary")) for record in sandbox.store.runs.values())
    assert [sandbox.store.runs[ids[row - 1]]["summary"][:2] for row in done] == [
        f"{row - 1:02d}" for row in done
    ]

    # Put back as it was, the same command finishes the job: nothing done twice.
    path.write_bytes(original)
    sandbox.reset_stats()
    summary, after = await run_job(sandbox, path, concurrency=1)
    assert summary.skipped == len(done)
    assert [entry.status for entry in after] == ["ok"] * 40
    assert len(on_records(sandbox)) == 2 * (40 - len(done))


async def test_deeply_nested_jsonl_line_is_one_invalid_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    ids = run_ids(sandbox, 3)
    path = write_jsonl(tmp_path / "deep.jsonl", [
        {"id": ids[0], "name": "One"},
        f'{{"id": "{ids[1]}", "prerun": ' + "[" * 100_000 + "}",
        {"id": ids[2], "name": "Three"},
    ])

    summary, entries = await run_job(sandbox, path)

    assert [entry.status for entry in entries] == ["ok", "invalid", "ok"]
    assert entries[1].error == (
        "deep.jsonl: row 2 (line 2): not valid JSON: arrays and objects nested more than "
        "100 levels deep"
    )
    assert summary.exit_code == 1


async def test_control_character_in_a_cell_is_one_invalid_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    ids = run_ids(sandbox, 2)
    path = write_csv(tmp_path / "nul.csv", ["id", "name"], [[ids[0], "bad\x00name"],
                                                            [ids[1], "Good"]])

    _summary, entries = await run_job(sandbox, path)

    assert [entry.status for entry in entries] == ["invalid", "ok"]
    assert entries[0].error is not None
    assert entries[0].error.startswith(
        'nul.csv: row 1, column "name": contains a control character (U+0000 NUL) at character 4'
    )
    assert sandbox.store.runs[ids[0]]["name"] != "bad\x00name"


# -- the command, as a process: nothing may block before the first row ------------------------


def bulk_apply(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TALLYFY_ACCESS_TOKEN": "tok-never-used",
           "TALLYFY_ORG_ID": "f" * 32, "TALLYFY_BASE_URL": "http://127.0.0.1:9/api"}
    # A bounded wait: on a FIFO the old open() never returned.
    return subprocess.run([sys.executable, "-m", "bulk", "apply", *args, "-q"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=30, check=False)


def test_fifo_input_exits_2_at_once(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    os.mkfifo(path)  # no writer ever opens it
    started = time.monotonic()
    result = bulk_apply("--input", str(path))
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "bulk: rows.csv: cannot read the file: it is a named pipe (FIFO), not a regular file; "
        "the input is read more than once (to check it, to run it, to resume), so give a "
        "regular file"
    )
    assert not (tmp_path / "rows.csv.ledger.db").exists()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_input_exits_2_at_once(tmp_path: Path) -> None:
    result = bulk_apply("--input", "/dev/zero", "--format", "csv",
                        "--ledger", str(tmp_path / "l.db"))
    assert result.returncode == 2
    assert "zero: cannot read the file: it is a character device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_utf16_input_exits_2_saying_to_save_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "unicode.csv"
    path.write_bytes(f"id,name\r\n{'a' * 32},X\r\n".encode("utf-16"))
    result = bulk_apply("--input", str(path))
    assert result.returncode == 2
    assert "unicode.csv: is UTF-16 text" in result.stderr and "save it as UTF-8" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
