"""status/export open a ledger by its path, read-only, and create nothing."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bulk.engine.errors import ConfigError
from bulk.engine.ledger import OK, Entry, Ledger, open_existing

ROOT = Path(__file__).resolve().parents[2]
FINGERPRINT = {"input_sha256": "aaaa", "target": "runs", "org": "org1"}


def make_ledger(path: Path, rows: int = 3) -> Path:
    with Ledger(path) as ledger:
        ledger.claim(FINGERPRINT)
        for row in range(1, rows + 1):
            ledger.record(Entry(row=row, status=OK))
    return path


def listing(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


@pytest.mark.parametrize("name", ["run#1.db", "what?.db", "100%.db", "a%23b.db",
                                  "sp ace & ünï.db", "x?mode=rw#y.db"])
def test_names_that_would_break_a_formatted_uri_are_opened_by_path(tmp_path, name):
    folder = tmp_path / "uri"
    folder.mkdir()
    path = make_ledger(folder / name)
    files = listing(folder)

    with open_existing(path) as reader:
        assert reader.count() == 3

    assert listing(folder) == files  # nothing created: not `run`, not `what`, no -wal


def test_status_of_a_missing_ledger_with_a_hash_in_its_name_creates_nothing(tmp_path):
    folder = tmp_path / "uri"
    folder.mkdir()
    (folder / "run").mkdir()  # what a `file:uri/run#1.db` URI would point into
    for missing in ("run#1.db", "run?x.db", "run%231.db"):
        with pytest.raises(ConfigError, match="no such ledger"):
            open_existing(folder / missing)
    assert listing(folder) == {"run"} and listing(folder / "run") == set()


def test_a_reader_cannot_write(tmp_path):
    path = make_ledger(tmp_path / "l.db")
    with open_existing(path) as reader:
        with pytest.raises(ConfigError, match="opened read-only"):
            reader.record(Entry(row=9, status=OK))
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._db.execute("DELETE FROM rows")
    with open_existing(path) as reader:
        assert reader.count() == 3 and reader.get(9) is None


def test_a_ledger_at_rest_is_one_file_and_a_reader_adds_none(tmp_path):
    path = make_ledger(tmp_path / "l.db")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with open_existing(path) as reader:
        assert reader.count() == 3
    assert listing(tmp_path) == {"l.db", "l.db.lock"}
    with Ledger(path) as ledger, closing(sqlite3.connect(path)) as db:  # WAL while in use
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        ledger.record(Entry(row=4, status=OK))


# -- read-only file systems ------------------------------------------------------------
# Root ignores file permissions, so when the tests run as root the reader is a child
# process without the capabilities that let root write where the mode says no.

READ = textwrap.dedent(
    """
    import sys
    from bulk.engine.ledger import open_existing
    from bulk.ledger_views.status_export import status_lines

    with open_existing(sys.argv[1]) as ledger:
        print(sum(ledger.counts().values()), len(list(ledger.entries())))
        print(next(line for line in status_lines(ledger) if line.startswith("rows:")))
    """
)


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, made writable again afterwards so that it can be removed."""
    yield tmp_path
    for path in (tmp_path, *tmp_path.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


def read_as_unprivileged(path: Path) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    return subprocess.run(
        [*prefix, sys.executable, "-c", READ, str(path)], cwd="/", text=True,
        capture_output=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def make_read_only(folder: Path, *, files: bool, directory: bool) -> None:
    if files:
        for path in folder.iterdir():
            path.chmod(0o444)
    if directory:
        folder.chmod(0o555)


@pytest.mark.parametrize(
    ("files", "directory"), [(True, False), (False, True), (True, True)],
    ids=["read-only-file", "read-only-directory", "both"],
)
@pytest.mark.parametrize("state", ["at-rest", "wal-at-rest", "crashed"])
def test_a_ledger_on_a_read_only_file_system_is_still_readable(shared_dir, files, directory,
                                                              state):
    folder = shared_dir / "ledgers"
    folder.mkdir()
    path = folder / "l.db"
    if state == "crashed":
        # Copied while open: the -wal holds committed rows the file does not have yet.
        with Ledger(shared_dir / "live.db") as live:
            live.claim(FINGERPRINT)
            for row in (1, 2, 3):
                live.record(Entry(row=row, status=OK))
            live.commit()
            for suffix in ("", "-wal", "-shm"):
                shutil.copyfile(f"{shared_dir / 'live.db'}{suffix}", f"{path}{suffix}")
    else:
        make_ledger(path)
        (folder / "l.db.lock").unlink(missing_ok=True)
        if state == "wal-at-rest":  # as a reader's open connection would leave it
            with closing(sqlite3.connect(path)) as db:
                db.execute("PRAGMA journal_mode=WAL")
    for leftover in ("l.db-wal", "l.db-shm"):
        if state != "crashed" and (folder / leftover).exists():
            (folder / leftover).unlink()
    for entry in folder.iterdir():
        entry.chmod(0o644)
    make_read_only(folder, files=files, directory=directory)
    before = {p.name: p.stat().st_mode for p in folder.iterdir()}

    result = read_as_unprivileged(path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3 3", "rows:     0 in input, 3 recorded"]
    if directory:
        assert {p.name: p.stat().st_mode for p in folder.iterdir()} == before
