"""Opening the input file safely, and noticing when it changes while it is read.

The job reads its input twice (``scan()`` checks and hashes it, ``rows()`` feeds the job) and
again on every resume, so the input must be a regular file that stays the same. This module:

- opens without ever blocking (``O_NONBLOCK``: a FIFO with no writer would otherwise hang
  ``open()`` out of reach of Ctrl-C) and refuses anything but a regular file before a byte
  is read;
- refuses UTF-16/UTF-32 text up front, with a message saying to save it as UTF-8;
- hashes every byte as it is read, and after every buffer read compares the open file's
  identity (device, inode, size, modification and change times) with the one it had when it
  was checked, so a row read after an edit never reaches the job.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from typing import Any

from bulk.engine.errors import InputError

_WHAT_TO_DO = (
    "rows done so far are in the ledger; to finish the job, put the file back as it was and "
    "run the same command again (or run the new contents as a new job: --fresh or another "
    "--ledger)"
)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What must stay the same for the file to be the one that was checked.

    ctime is included because no user tool can set it: an edit that restores the
    modification time still moves it.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileIdentity:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    def change_from(self, before: FileIdentity) -> str:
        """How this identity differs from ``before``, in words."""
        if (self.device, self.inode) != (before.device, before.inode):
            return "it was replaced by another file (renamed over or re-created)"
        if self.size != before.size:
            return f"its size went from {before.size:,} to {self.size:,} bytes"
        return "it was modified in place: same size, new times"


def open_regular(path: Any, name: str) -> tuple[io.FileIO, FileIdentity]:
    """Open ``path`` for reading; refuse (InputError) anything but a regular file.

    O_NONBLOCK makes open() return at once on a FIFO or a device; the file type is then
    checked on the open descriptor itself, so nothing can be swapped in between.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(_os_error_message(path, name, exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(_not_regular(name, info.st_mode))
        os.set_blocking(fd, True)  # no effect on a regular file's reads; cleared for clarity
        _refuse_other_encodings(fd, name)
        return io.FileIO(fd, "rb", closefd=True), FileIdentity.of(info)
    except BaseException:
        os.close(fd)
        raise


class WatchedRaw(io.RawIOBase):
    """A raw stream that hashes every byte it reads and stops when the file changes.

    After every read from the file (64 KB at a time under the reader), the open file's identity is
    compared with ``expected``; on a difference the read raises InputError, so none of
    the bytes of that read (nor any later one) becomes a row. At the end of the file the
    hash is compared with ``expected_sha256`` when given: that catches an edit the
    timestamps could not show. ``checking``: this is scan()'s pass, before any request.
    """

    def __init__(
        self,
        raw: io.FileIO,
        digest: Any,
        name: str,
        expected: FileIdentity,
        expected_sha256: str | None = None,
        *,
        checking: bool = False,
    ) -> None:
        self._raw = raw
        self._fd = raw.fileno()
        self._digest = digest
        self._name = name
        self._expected = expected
        self._expected_sha256 = expected_sha256
        self._checking = checking

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        n = self._raw.readinto(buffer)
        now = FileIdentity.of(os.fstat(self._fd))
        if now != self._expected and self._checking:
            raise InputError(
                f"{self._name}: the file changed while it was being checked "
                f"({now.change_from(self._expected)}); nothing was sent; run the same command "
                "again once nothing is writing to it"
            )
        if now != self._expected:
            raise InputError(
                f"{self._name}: the file changed while the job was reading it "
                f"({now.change_from(self._expected)}); stopped before using any row read "
                f"after the change; {_WHAT_TO_DO}"
            )
        if n:
            self._digest.update(memoryview(buffer)[:n])
        elif self._expected_sha256 is not None:
            wanted, self._expected_sha256 = self._expected_sha256, None
            if self._digest.hexdigest() != wanted:
                raise InputError(
                    f"{self._name}: the file's content changed while the job ran (its "
                    "SHA-256 differs from when it was checked, though its size and times "
                    "did not move); rows read after the change may have been applied from "
                    f"the new content: check them with `bulk export`; {_WHAT_TO_DO}"
                )
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def check_same_file(name: str, opened: FileIdentity, checked: FileIdentity) -> None:
    """Refuse a file that is not the one scan() checked (replaced or edited since)."""
    if opened != checked:
        raise InputError(
            f"{name}: the file changed after it was checked, before any row was read "
            f"({opened.change_from(checked)}); {_WHAT_TO_DO}"
        )


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(name: str, mode: int) -> str:
    kind = next((label for test, label in _KINDS if test(mode)), "not a file")
    return (
        f"{name}: cannot read the file: it is {kind}, not a regular file; the input is read "
        "more than once (to check it, to run it, to resume), so give a regular file"
    )


def _os_error_message(path: Any, name: str, exc: OSError) -> str:
    # A socket cannot be opened at all (ENXIO): say what it is rather than "no such device".
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        return _not_regular(name, mode)
    reason = exc.strerror or exc.__class__.__name__
    return f"{name}: cannot read the file: {reason}"


# Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_SNIFF = 4096


def _refuse_other_encodings(fd: int, name: str) -> None:
    """Refuse UTF-16/32 text (what spreadsheets save as "Unicode text") before parsing.

    Read correctly it would need a second encoding everywhere a line is located or
    exported; refused, the user saves it as UTF-8 once. Without a byte-order mark,
    UTF-16 is recognised by its zero bytes: ASCII text in UTF-16 has one every other
    byte, and UTF-8 text has none.
    """
    head = os.pread(fd, _SNIFF, 0)
    encoding = next((label for bom, label in _BOMS if head.startswith(bom)), None)
    how = "it starts with a byte-order mark"
    if encoding is None and len(head) >= 4:
        half = len(head) // 2
        if max(head[0::2].count(0), head[1::2].count(0)) > half * 0.3:
            encoding, how = "UTF-16", "every other byte is zero"
    if encoding is not None:
        raise InputError(
            f'{name}: is {encoding} text ({how}), as spreadsheet programs save "Unicode '
            'text"; save it as UTF-8 (for example "CSV UTF-8") and run again'
        )


__all__ = ["FileIdentity", "WatchedRaw", "check_same_file", "open_regular"]
