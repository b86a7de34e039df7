"""Where a ledger lives: what may be opened as one, how one is created, who holds it.

Everything here happens before SQLite is allowed to write a byte:

- **Look before writing.** A path given as a ledger must be nothing, or a regular file
  that is a ledger of ours: an SQLite database stamped with our `application_id` (or, for
  ledgers written before the stamp, one with our `meta` fingerprint and `rows` table).
  Another program's database, a text file, an empty file, a directory, a FIFO, a device
  or a socket is refused with one line; a non-regular file is never opened (a FIFO would
  block the open), and a symbolic link is never followed (the link is refused, naming it).
- **One run per ledger.** `RunLock` takes an exclusive `flock` on the sidecar
  `<ledger>.lock` for the whole run. The OS drops it when the process dies, even by
  `kill -9`, so a lock is never stale. A sidecar rather than the ledger itself: closing
  any descriptor of a file drops every POSIX lock the process holds on it, and SQLite's
  own locks on the ledger are POSIX locks.
- **A new ledger appears whole, private.** It is built under a temporary name with mode
  0600 (SQLite gives its -wal and -shm files the mode of the database), stamped and
  given its tables, then linked into place: a crash never leaves an empty or half-made
  file at the ledger's path.
- **Reading opens by path, read-only.** `status` and `export` use SQLite's read-only mode
  through a URI made by `pathlib` (every `#`, `?` and `%` in the name percent-encoded),
  so they work on a read-only file or directory and never write the ledger.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sqlite3
import stat
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bulk.engine.errors import ConfigError, LedgerInUse, NotALedger

#: Stamped in the SQLite header (`PRAGMA application_id`): "BULK".
APPLICATION_ID = 0x42554C4B
SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_APPLICATION_ID_AT = 68  # offset of the application id in the SQLite header

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_path(path: Path) -> os.stat_result | None:
    """What is at `path` without opening it: None for nothing, else a non-empty regular file.

    Anything else is refused (NotALedger) with one line naming the path and what it is.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot look at the ledger ({exc.strerror})") from None
    if stat.S_ISLNK(found.st_mode):
        raise NotALedger(f"{path}: is a symbolic link; bulk follows no link to a ledger "
                         "(give the path of the file itself)")
    if not stat.S_ISREG(found.st_mode):
        raise NotALedger(f"{path}: is {_kind(found.st_mode)}, not a bulk ledger")
    if found.st_size == 0:
        raise NotALedger(f"{path}: is an empty file, not a bulk ledger; refusing to use it")
    return found


def _read_header(path: Path) -> bytes:
    # O_NONBLOCK and O_NOFOLLOW: should the path have been swapped for a FIFO or a link
    # since it was looked at, the open neither blocks nor follows it. (Closing this
    # descriptor drops any POSIX lock this process's SQLite holds on the same file: a
    # run reads the header before it opens its connection, and holds the run lock.)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the ledger ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotALedger(f"{path}: is not a regular file, not a bulk ledger")
        return os.pread(fd, _HEADER_SIZE, 0)
    finally:
        os.close(fd)


def _application_id(path: Path) -> int:
    """The header's application id; refuses what is not SQLite or belongs to another program."""
    header = _read_header(path)
    if len(header) < _HEADER_SIZE or not header.startswith(SQLITE_MAGIC):
        raise NotALedger(f"{path}: is not an SQLite database, so not a bulk ledger; "
                         "refusing to use it")
    found = int.from_bytes(header[_APPLICATION_ID_AT:_APPLICATION_ID_AT + 4], "big")
    if found not in (APPLICATION_ID, 0):
        raise NotALedger(f"{path}: is another program's SQLite database (application id "
                         f"{found:#010x}), not a bulk ledger; left untouched")
    return found


def read_only_uri(path: Path, *, immutable: bool = False) -> str:
    # pathlib percent-encodes the path, so `#`, `?` and `%` in a name stay in the name.
    uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
    return uri + "&immutable=1" if immutable else uri


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection: never writes the ledger; works on a read-only file or folder.

    Beside a ledger at rest (rollback journal) it creates nothing; a WAL-mode one gets
    the -wal and -shm files SQLite needs to read it, where the folder allows.
    """
    try:
        db = sqlite3.connect(read_only_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot open the ledger ({exc})") from None
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.Error as exc:
        db.close()
        first = exc
    # A WAL database in a read-only directory cannot get its -shm file. With no -wal
    # file there either, no writer can be at work (it could not create one), so the
    # file as it stands is the whole ledger and may be read as immutable.
    if Path(f"{path}-wal").exists():
        raise ConfigError(f"{path}: cannot read the ledger ({first})")
    try:
        db = sqlite3.connect(read_only_uri(path, immutable=True), uri=True,
                             isolation_level=None)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        with contextlib.suppress(Exception):
            db.close()
        raise ConfigError(f"{path}: cannot read the ledger ({first})") from None
    return db


def _connect_to_look(path: Path) -> sqlite3.Connection:
    """A read-only look at a database that may be another program's: creates nothing.

    With no -wal or -journal beside it, the file is the whole database, read as
    immutable (SQLite would otherwise create -wal and -shm files next to a WAL-mode
    file). With one, they exist already and the plain read-only mode reads them.
    """
    if Path(f"{path}-wal").exists() or Path(f"{path}-journal").exists():
        return connect_read_only(path)
    try:
        db = sqlite3.connect(read_only_uri(path, immutable=True), uri=True,
                             isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot read the ledger ({exc})") from None
    return db


#: The columns of a ledger's `rows` table (a ledger written before the stamp has them all).
ROW_COLUMNS = frozenset({"row", "record_id", "status", "http_status", "attempts", "error",
                         "request_id", "before", "after", "input", "started_at", "updated_at"})


def _holds_a_job(db: sqlite3.Connection) -> bool:
    """Our tables, with our columns, and a job's fingerprint (a JSON object) in `meta`."""
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(rows)")}
        found = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        fingerprint = json.loads(found[0]) if found is not None else None
    except (sqlite3.Error, ValueError, TypeError):
        return False
    return ROW_COLUMNS <= columns and isinstance(fingerprint, dict)


def _ours(path: Path, application_id: int, db: sqlite3.Connection) -> bool:
    """Stamped as ours, or (written before the stamp) holding our tables and a job."""
    if application_id == APPLICATION_ID:
        return True
    return _holds_a_job(db)


def open_read_only(path: Path) -> sqlite3.Connection:
    """For `status` and `export`: an existing ledger of ours, opened read-only."""
    if check_path(path) is None:
        raise ConfigError(f"{path}: no such ledger")
    application_id = _application_id(path)
    db = connect_read_only(path)
    if not _ours(path, application_id, db):
        db.close()
        raise NotALedger(f"{path}: is an SQLite database but not a bulk ledger")
    return db


def check_before_run(path: Path) -> None:
    """Refuse at once, before any long work: a wrong path, or a ledger another run holds.

    Creates nothing. Only a first look: `open_for_run` takes the lock and checks again.
    """
    check_path(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(f"{path}.lock", flags)
    except OSError:
        return  # no lock file (a new ledger), or one `open_for_run` will explain
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            # A shared lock is refused only while someone holds the exclusive one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LedgerInUse(RunLock(path).in_use(os.pread(fd, 4096, 0))) from None
    finally:
        os.close(fd)


def open_for_run(
    path: Path, setup: Callable[[sqlite3.Connection], None]
) -> tuple[sqlite3.Connection, RunLock]:
    """For `apply`: lock the ledger, then open it, creating it (private) if it is new.

    `setup` gives a new or stamp-less ledger its tables. Raises ConfigError (with its
    subclasses NotALedger, LedgerInUse) with one line; nothing is left locked.
    """
    if check_path(path) is None and not path.parent.is_dir():
        raise ConfigError(f"{path}: cannot create the ledger: there is no folder {path.parent}")
    # A wrong path was refused above, before even a lock file was created beside it.
    lock = RunLock(path)
    lock.acquire()
    try:
        if check_path(path) is None:
            _create(path, setup)
        application_id = _application_id(path)
        if application_id != APPLICATION_ID:
            # No stamp: a ledger from before it, or another program's database. Looked
            # at read-only, so the other program's file is not changed in any way.
            probe = _connect_to_look(path)
            try:
                if not _holds_a_job(probe):
                    raise NotALedger(f"{path}: is an SQLite database but not a bulk "
                                     "ledger; left untouched")
            finally:
                probe.close()
        try:
            db = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: cannot open the ledger ({exc})") from None
        return db, lock
    except BaseException:
        lock.release(remove=lock.created)  # leave no trace next to a refused file
        raise


def _create(path: Path, setup: Callable[[sqlite3.Connection], None]) -> None:
    folder = path.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the ledger ({exc.strerror})") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask: it holds record contents
        os.close(fd)
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            setup(db)
        finally:
            db.close()
        _put_in_place(temporary, path)
    except FileExistsError:
        pass  # made meanwhile by someone else: looked at like any existing file
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the ledger ({exc.strerror})") from None
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot create the ledger ({exc})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _put_in_place(temporary: str, path: Path) -> None:
    # A hard link fails if the name was taken meanwhile, where a rename would silently
    # replace whatever is there.
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links on this file system (some network and FAT ones): a rename, the
        # name checked just before (other bulk runs are kept out by the lock).
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        os.rename(temporary, path)


class RunLock:
    """An exclusive `flock` on `<ledger>.lock`, held by this process for the whole run.

    The file says who holds it (pid, host, since when), for the message a second run
    prints. It is never deleted while in use: a process could then lock the deleted
    file while a third locks a new one.
    """

    def __init__(self, ledger_path: Path) -> None:
        self.ledger_path = ledger_path
        self.path = Path(f"{ledger_path}.lock")
        self.created = False
        self._fd: int | None = None

    def acquire(self) -> None:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                self.created = True
            except FileExistsError:
                fd = os.open(self.path, flags)
        except OSError as exc:
            what = ("is a symbolic link" if exc.errno == errno.ELOOP
                    else f"cannot be opened ({exc.strerror})")
            raise ConfigError(f"{self.path}: the ledger's lock file {what}") from None
        try:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode):
                raise ConfigError(f"{self.path}: the ledger's lock file is not a regular file")
            if found.st_nlink != 1:  # it is written to: never through another file's name
                raise ConfigError(f"{self.path}: the ledger's lock file has other names "
                                  "(hard links); remove it and run again")
            if self.created:
                os.fchmod(fd, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LedgerInUse(self.in_use(os.pread(fd, 4096, 0))) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_record(), 0)
        except BaseException:
            if self.created:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            os.close(fd)
            raise
        self._fd = fd

    def in_use(self, record: bytes) -> str:
        """The message for a second run, from what the holder wrote in the lock file."""
        return (f"{self.ledger_path}: in use by another bulk run ({_describe_holder(record)}); "
                "wait for it to end, or stop it, then run again")

    def release(self, *, remove: bool = False) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if remove:  # only a lock file this call created, for a ledger it refused
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(fd)  # closing the only descriptor releases the flock


def _holder_record() -> bytes:
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now(UTC).isoformat(timespec="seconds")}
    return (json.dumps(record) + "\n").encode()


def _describe_holder(content: bytes) -> str:
    try:
        record = json.loads(content)
        pid, host, since = int(record["pid"]), str(record["host"]), str(record["since"])
    except (ValueError, KeyError, TypeError):
        return "process id not yet written: it is just starting"
    where = "" if host == socket.gethostname() else f" on {host}"
    return f"pid {pid}{where}, since {since}"
