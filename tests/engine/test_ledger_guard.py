"""Look before writing: what may be opened as a ledger, and how a new one is created."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from bulk.engine.errors import ConfigError, NotALedger
from bulk.engine.ledger import OK, Entry, Ledger, open_existing
from bulk.engine.ledger_file import APPLICATION_ID

FINGERPRINT = {"input_sha256": "aaaa", "target": "runs", "org": "org1"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_programs_database(path: Path, *, wal: bool = False) -> Path:
    """An SQLite file of someone else's, with tables named like ours (the issue's case)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("CREATE TABLE rows (row INTEGER PRIMARY KEY, status TEXT)")
        db.execute("INSERT INTO meta VALUES ('owner', 'accounting')")
        db.executemany("INSERT INTO rows VALUES (?, 'theirs')", [(n,) for n in range(50)])
    return path


def listing(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_another_programs_database_is_refused_and_left_byte_for_byte(tmp_path, wal):
    path = other_programs_database(tmp_path / "their.db", wal=wal)
    before, files = digest(path), listing(tmp_path)

    with pytest.raises(NotALedger) as raised:
        Ledger(path)

    message = str(raised.value)
    assert str(path) in message and "not a bulk ledger" in message and "\n" not in message
    assert digest(path) == before
    assert listing(tmp_path) == files  # no lock, -wal, -shm or journal left beside it
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 50
        assert db.execute("SELECT value FROM meta").fetchall() == [("accounting",)]


def test_another_program_stamped_with_its_own_application_id_is_named(tmp_path):
    path = tmp_path / "stamped.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA application_id = 1234")
        db.execute("CREATE TABLE t (x)")
    before = digest(path)
    with pytest.raises(NotALedger, match=r"another program's SQLite database.*0x000004d2"):
        Ledger(path)
    assert digest(path) == before


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"", "is an empty file"),
     (b"name,id\nsomething,else\n" * 40, "is not an SQLite database"),
     (b"SQLite format 3\x00 but cut short", "is not an SQLite database")],
    ids=["empty", "text", "truncated-header"],
)
def test_files_that_are_not_databases_are_refused_untouched(tmp_path, content, says):
    path = tmp_path / "wrong.db"
    path.write_bytes(content)
    for opening in (Ledger, open_existing):
        with pytest.raises(NotALedger, match=says):
            opening(path)
        assert path.read_bytes() == content
    assert listing(tmp_path) == {"wrong.db"}


@pytest.mark.timeout(20)
def test_non_regular_files_are_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    folder = tmp_path / "folder.db"
    folder.mkdir()
    unix = socket.socket(socket.AF_UNIX)
    sock = tmp_path / "s.db"
    unix.bind(str(sock))
    try:
        cases = {fifo: r"a FIFO \(named pipe\)", folder: "a directory", sock: "a socket",
                 Path(os.devnull): "a character device"}
        for path, kind in cases.items():
            for opening in (Ledger, open_existing):
                with pytest.raises(NotALedger, match=f"is {kind}, not a bulk ledger"):
                    opening(path)
    finally:
        unix.close()
    assert listing(tmp_path) == {"pipe.db", "folder.db", "s.db"}
    assert listing(folder) == set()


def test_a_symbolic_link_is_refused_even_to_a_real_ledger(tmp_path):
    real = tmp_path / "real.db"
    with Ledger(real) as ledger:
        ledger.claim(FINGERPRINT)
    link = tmp_path / "link.db"
    link.symlink_to(real)
    dangling = tmp_path / "dangling.db"
    dangling.symlink_to(tmp_path / "nowhere.db")

    for path in (link, dangling):
        for opening in (Ledger, open_existing):
            with pytest.raises(NotALedger, match="is a symbolic link"):
                opening(path)
    assert not (tmp_path / "nowhere.db").exists()


def test_a_lock_file_that_is_a_symbolic_link_is_not_followed(tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep me", encoding="utf-8")
    (tmp_path / "l.db.lock").symlink_to(target)
    with pytest.raises(ConfigError, match="lock file is a symbolic link"):
        Ledger(tmp_path / "l.db")
    assert target.read_text(encoding="utf-8") == "keep me"
    assert not (tmp_path / "l.db").exists()


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_a_new_ledger_and_its_files_are_private_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / "new.db"
        with Ledger(path) as ledger:
            ledger.claim(FINGERPRINT)
            ledger.record(Entry(row=1, status=OK, before={"name": "secret"}))
            ledger.commit()
            modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode)
                     for name in listing(tmp_path)}
    finally:
        os.umask(old)
    assert set(modes) == {"new.db", "new.db-wal", "new.db-shm", "new.db.lock"}
    assert set(modes.values()) == {0o600}, {name: oct(mode) for name, mode in modes.items()}


def test_a_new_ledger_is_stamped_and_nothing_temporary_is_left(tmp_path):
    path = tmp_path / "new.db"
    with Ledger(path) as ledger:
        ledger.claim(FINGERPRINT)
    assert listing(tmp_path) == {"new.db", "new.db.lock"}  # at rest: one file, and the lock
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    with open_existing(path) as reopened:
        assert "fingerprint" in reopened.meta()


def test_a_ledger_written_before_the_stamp_is_still_ours_and_gets_stamped(tmp_path):
    path = tmp_path / "old.db"
    # What the previous version wrote: our tables and a fingerprint, no application id.
    from bulk.engine.ledger_rows import SCHEMA

    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        db.execute("INSERT INTO meta VALUES ('fingerprint', '{}')")
        db.execute("INSERT INTO rows (row, status, started_at, updated_at) "
                   "VALUES (1, 'ok', 'x', 'x')")
    with open_existing(path) as reader:
        assert reader.count() == 1
    with Ledger(path) as ledger:
        assert ledger.get(1).status == OK
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_a_ledger_path_in_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"l\.db: cannot create the ledger: there is no "
                                          r"folder .*missing$") as raised:
        Ledger(tmp_path / "missing" / "l.db")
    assert "\n" not in str(raised.value)


def test_without_hard_links_a_new_ledger_is_renamed_into_place(tmp_path, monkeypatch):
    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")  # what vfat and some NAS say

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "new.db"
    with Ledger(path) as ledger:
        ledger.claim(FINGERPRINT)
    assert listing(tmp_path) == {"new.db", "new.db.lock"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_existing(path) as reader:
        assert "fingerprint" in reader.meta()


def test_a_lock_file_with_another_name_is_not_written_through(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me", encoding="utf-8")
    os.link(precious, tmp_path / "l.db.lock")
    with pytest.raises(ConfigError, match="lock file has other names"):
        Ledger(tmp_path / "l.db")
    assert precious.read_text(encoding="utf-8") == "keep me"
