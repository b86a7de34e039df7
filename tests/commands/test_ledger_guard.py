"""`bulk apply` and the ledger it is given: wrong files, two runs at once, a full disk.

Real `bulk` processes against a sandbox on loopback for the two-run cases; CliRunner
against a sandbox in a thread for the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.cli import main
from bulk.engine.errors import InputError, LedgerInUse
from bulk.engine.ledger import IN_DOUBT, Entry, Ledger
from bulk.engine.row_context import RowContext
from bulk.sandbox import Sandbox
from tests.support.helpers import (
    ROOT,
    config,
    env_for,
    rename_csv,
    run_ids,
    run_job,
    start_apply,
    wait_for_rows,
)


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- item 2: a wrong --ledger --------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True], ids=["apply", "dry-run"])
def test_another_programs_database_is_refused_untouched(threaded_sandbox, tmp_path, dry_run):
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 3), "X")
    theirs = tmp_path / "inventory.db"
    with closing(sqlite3.connect(theirs)) as db, db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("CREATE TABLE rows (row INTEGER PRIMARY KEY, item TEXT)")
        db.executemany("INSERT INTO rows VALUES (?, 'bolt')", [(n,) for n in range(100)])
        db.execute("INSERT INTO meta VALUES ('fingerprint', 'not ours either')")
    before = digest(theirs)
    flags = ["--dry-run"] if dry_run else []

    for fresh in ([], ["--fresh"]):
        result = invoke(["apply", "--input", str(path), "--ledger", str(theirs), *flags,
                         *fresh], env_for(threaded_sandbox))
        assert result.exit_code == 2, result.output
        line = one_line(result.stderr)
        assert str(theirs) in line and "not a bulk ledger" in line

    assert digest(theirs) == before
    assert {p.name for p in tmp_path.iterdir()} == {"r.csv", "inventory.db"}
    assert threaded_sandbox.stats.requests == 0


@pytest.mark.timeout(30)
def test_what_is_not_a_file_or_not_a_ledger_is_refused_with_one_line(threaded_sandbox,
                                                                     tmp_path):
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 2), "X")
    empty = tmp_path / "empty.db"
    empty.touch()
    text = tmp_path / "notes.txt"
    text.write_text("remember the milk\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "elsewhere.db")
    unix = socket.socket(socket.AF_UNIX)
    sock = tmp_path / "sock"
    unix.bind(str(sock))
    cases = {empty: "empty file", text: "not an SQLite database", folder: "a directory",
             fifo: "a FIFO", link: "symbolic link", sock: "a socket",
             Path(os.devnull): "a character device"}
    try:
        for ledger, says in cases.items():
            for flags in ([], ["--dry-run"]):
                result = invoke(["apply", "--input", str(path), "--ledger", str(ledger),
                                 *flags], env_for(threaded_sandbox))
                assert result.exit_code == 2, (ledger, result.output)
                line = one_line(result.stderr)
                assert str(ledger) in line and says in line, line
    finally:
        unix.close()
    assert empty.read_bytes() == b"" and text.read_text(encoding="utf-8") == "remember the milk\n"
    assert not (tmp_path / "elsewhere.db").exists()
    assert threaded_sandbox.stats.requests == 0


def test_a_new_ledger_is_private(threaded_sandbox, tmp_path):
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 2), "P")
    old = os.umask(0o022)
    try:
        result = invoke(["apply", "--input", str(path), "--rate", "1000"],
                        env_for(threaded_sandbox))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    ledger = Path(f"{path}.ledger.db")
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{ledger}.lock").stat().st_mode) == 0o600


# -- item 3: two runs on one ledger ----------------------------------------------------


async def run_bulk(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulk", *args, cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_second_run_exits_2_at_once_naming_the_first(tmp_path) -> None:
    # Slow answers and many rows, so the first run is still at work while the others
    # try (however long they take to start); then it is let go.
    async with Sandbox(config(runs=200, latency_ms=400), port=0) as sandbox:
        ids = run_ids(sandbox)
        path = rename_csv(tmp_path / "r.csv", ids, "Once")
        ledger = tmp_path / "shared.db"
        first = await start_apply(sandbox, path, ledger)
        try:
            await wait_for_rows(ledger, "ok", 2)
            args = ["apply", "--input", str(path), "--ledger", str(ledger), "--rate", "1000"]
            second, fresh, status, export = await asyncio.gather(
                run_bulk(*args, env=env_for(sandbox)),
                run_bulk(*args, "--fresh", env=env_for(sandbox)),
                # status and export still read it meanwhile.
                run_bulk("status", str(ledger)),
                run_bulk("export", str(ledger), "--status", "ok"),
            )
            overlapped = first.returncode is None
            sandbox.latency_ms = 0
            stdout, stderr = await asyncio.wait_for(first.communicate(), 30)
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()

        for code, out, err in (second, fresh):
            assert code == 2, err
            line = one_line(err)
            assert str(ledger) in line and f"pid {first.pid}, since 20" in line
            assert out == ""
        assert overlapped, "the first run was still at work while the others tried"
        assert status[0] == 0 and "ok" in status[1]
        assert export[0] == 0 and export[1].count('"status": "ok"') >= 2
        assert first.returncode == 0, stderr.decode()
        assert stdout.decode().startswith("done: 200 rows: ok 200")
        # Every record written exactly once: the other runs sent nothing.
        assert sorted(sandbox.stats.writes_per_record.values()) == [1] * 200


async def test_kill_9_leaves_no_stale_lock_and_the_next_run_finishes(tmp_path) -> None:
    async with Sandbox(config(runs=40, latency_ms=40), port=0) as sandbox:
        ids = run_ids(sandbox)
        path = rename_csv(tmp_path / "r.csv", ids, "Nine")
        ledger = tmp_path / "l.db"
        first = await start_apply(sandbox, path, ledger)
        try:
            await wait_for_rows(ledger, "ok", 2)
        finally:
            first.kill()
            await first.wait()
        assert first.returncode == -9
        sandbox.latency_ms = 0

        code, out, err = await run_bulk("apply", "--input", str(path), "--ledger", str(ledger),
                                        "--rate", "1000", "-q", env=env_for(sandbox))

        assert code == 0, err
        assert "ok 40" in out
        assert max(sandbox.stats.writes_per_record.values()) == 1
        # The killed run wrote no end: the next one told it as a crash, at its last write.
        with closing(sqlite3.connect(ledger)) as db:
            runs = db.execute(
                "SELECT how, started_at, ended_at FROM sessions ORDER BY rowid").fetchall()
            kept = db.execute("SELECT MAX(updated_at) FROM rows WHERE updated_at < ?",
                              (runs[1][1],)).fetchone()[0]  # rows the resume left as they were
        assert [how for how, _start, _end in runs] == ["crash", "finished"]
        assert runs[0][1] < kept <= runs[0][2] < runs[1][1]


# -- item 8: a full disk ----------------------------------------------------------------


def test_a_disk_filling_up_mid_run_stops_cleanly_and_a_later_run_resumes(
    threaded_sandbox, tmp_path, monkeypatch
):
    ids = run_ids(threaded_sandbox)
    path = rename_csv(tmp_path / "r.csv", ids, "Full " + "n" * 400)
    ledger = tmp_path / "l.db"
    claim = Ledger.claim

    def claim_then_fill_up(self: Ledger, *args, **kwargs):
        resumed = claim(self, *args, **kwargs)
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages + 3}")  # room for a few rows
        return resumed

    args = ["apply", "--input", str(path), "--ledger", str(ledger), "--rate", "1000",
            "--concurrency", "4"]
    with monkeypatch.context() as patched:
        patched.setattr(Ledger, "claim", claim_then_fill_up)
        result = invoke(args, env_for(threaded_sandbox))

    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert str(ledger) in line and "database or disk is full" in line
    assert result.stdout == ""
    with closing(sqlite3.connect(ledger)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        recorded = dict(db.execute("SELECT record_id, status FROM rows"))
    written = dict(threaded_sandbox.stats.writes_per_record)
    assert 0 < len(written) < len(ids), "stopped part way"
    # No write left without its in-doubt mark on disk: a resume settles each one.
    assert all(recorded.get(rid) in ("in_doubt", "ok") for rid in written)

    again = invoke(args, env_for(threaded_sandbox))  # with room again

    assert again.exit_code == 0, again.output
    assert "ok 40" in again.stdout
    assert max(threaded_sandbox.stats.writes_per_record.values()) == 1
    with closing(sqlite3.connect(ledger)) as db:  # the stopped run says why, in its history
        runs = db.execute("SELECT how, detail FROM sessions ORDER BY rowid").fetchall()
    assert [how for how, _detail in runs] == ["ledger write failed", "finished"]
    assert "database or disk is full" in runs[0][1]
    for n, rid in enumerate(ids):
        assert threaded_sandbox.store.runs[rid]["name"] == f"Full {'n' * 400} {n}"


def test_export_to_a_full_device_is_one_line_and_exit_2(threaded_sandbox, tmp_path):
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 20), "E")
    assert invoke(["apply", "--input", str(path), "--rate", "1000"],
                  env_for(threaded_sandbox)).exit_code == 0
    ledger = f"{path}.ledger.db"

    for fmt in ("jsonl", "csv"):
        result = invoke(["export", ledger, "--format", fmt, "-o", "/dev/full"])
        assert result.exit_code == 2, result.output
        line = one_line(result.stderr)
        assert "/dev/full" in line and "No space left on device" in line


def test_export_over_the_ledger_itself_is_refused(threaded_sandbox, tmp_path, monkeypatch):
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 5), "S")
    assert invoke(["apply", "--input", str(path), "--rate", "1000"],
                  env_for(threaded_sandbox)).exit_code == 0
    ledger = Path(f"{path}.ledger.db")
    before = digest(ledger)
    monkeypatch.chdir(tmp_path)

    for target in (str(ledger), "./r.csv.ledger.db", f"{ledger}.lock"):
        result = invoke(["export", str(ledger), "-o", target])
        assert result.exit_code == 2, result.output
        assert "is the ledger itself" in one_line(result.stderr)

    assert digest(ledger) == before
    assert "ok         5" in invoke(["status", str(ledger)]).stdout


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_to_a_full_standard_output_is_one_line_and_exit_2(threaded_sandbox, tmp_path,
                                                                  fmt):
    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 20), "E")
    assert invoke(["apply", "--input", str(path), "--rate", "1000"],
                  env_for(threaded_sandbox)).exit_code == 0
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "bulk", "export", f"{path}.ledger.db", "--format", fmt],
            cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=30,
        )
    assert result.returncode == 2
    line = one_line(result.stderr)  # and no "Exception ignored" at the exit
    assert "standard output" in line and "No space left on device" in line


# -- item 10: status opens by path, creates nothing --------------------------------------


def test_status_of_a_name_with_a_hash_creates_nothing(threaded_sandbox, tmp_path,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("uri").mkdir()
    missing = invoke(["status", "uri/run#1.db"])
    assert missing.exit_code == 2 and "no such ledger" in missing.stderr
    assert list(Path("uri").iterdir()) == []

    path = rename_csv(Path("uri/in.csv"), run_ids(threaded_sandbox, 3), "H")
    applied = invoke(["apply", "--input", str(path), "--ledger", "uri/run#1.db",
                      "--rate", "1000"], env_for(threaded_sandbox))
    assert applied.exit_code == 0, applied.output
    files = sorted(p.name for p in Path("uri").iterdir())

    for command in (["status", "uri/run#1.db"], ["export", "uri/run#1.db"]):
        result = invoke(command)
        assert result.exit_code == 0, result.output
    assert "ok         3" in invoke(["status", "uri/run#1.db"]).stdout
    assert sorted(p.name for p in Path("uri").iterdir()) == files
    assert not Path("uri/run").exists()


# -- the in-doubt mark a resume settles from -----------------------------------------------


async def test_the_in_doubt_mark_is_committed_with_the_before_values(sandbox, tmp_path,
                                                                     monkeypatch) -> None:
    """A kill between the mark and the answer leaves only the mark: it must hold them."""
    ids = run_ids(sandbox, 4)
    old = {rid: sandbox.store.runs[rid]["name"] for rid in ids}
    path = rename_csv(tmp_path / "r.csv", ids, "Marked")
    committed_marks: list[Entry] = []
    mark = RowContext.mark_in_doubt

    async def mark_and_look(self: RowContext, entry: Entry) -> None:
        await mark(self, entry)
        with closing(sqlite3.connect(tmp_path / "l.db")) as db:  # what a crash would leave
            before = db.execute("SELECT before FROM rows WHERE row = ?",
                                (entry.row,)).fetchone()[0]
        committed_marks.append(Entry(row=entry.row, status=IN_DOUBT, record_id=entry.record_id,
                                     before=json.loads(before) if before else None))

    monkeypatch.setattr(RowContext, "mark_in_doubt", mark_and_look)
    await run_job(sandbox, path, ledger=tmp_path / "l.db")

    assert len(committed_marks) == 4
    for entry in committed_marks:
        assert entry.before == {"name": old[entry.record_id]}


async def test_a_ledger_in_use_is_refused_before_the_input_is_read(sandbox, tmp_path) -> None:
    """At once: the input (here one that would be refused too) is not even read."""
    path = tmp_path / "r.csv"
    path.write_text("id,nmae\n" + "a" * 32 + ",x\n", encoding="utf-8")  # a bad column
    ledger = tmp_path / "l.db"
    with Ledger(ledger):
        with pytest.raises(LedgerInUse, match=f"pid {os.getpid()}, since "):
            await run_job(sandbox, path, ledger=ledger)
    with pytest.raises(InputError, match="nmae"):  # once free, the input is what is wrong
        await run_job(sandbox, path, ledger=ledger)
    assert sandbox.stats.requests == 0
