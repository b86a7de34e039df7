"""Input that is not what it seems: non-regular files, files that change while read, other
encodings, giant lines and cells, JSON nested too deeply (issue 6 items 6-8, 10; issue 10
item 6)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

from bulk.engine import reader
from bulk.engine.errors import InputError
from bulk.engine.reader import MAX_JSON_DEPTH, InputFile, RawRow
from bulk.engine.watched_file import FileIdentity, WatchedRaw, open_regular

RUN_A = "a" * 32


def scan_error(path: Path, format: str | None = None) -> str:
    with pytest.raises(InputError) as caught:
        InputFile(path, format).scan()
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return message


def fat_csv(path: Path, rows: int, width: int = 40_000) -> Path:
    """Rows of ~width bytes each, so that a few rows fill the reader's 1 MB buffer."""
    with path.open("w", newline="") as out:
        out.write("id,summary\n")
        out.writelines(f"{i:032x},{'s' * width} {i}\n" for i in range(rows))
    return path


# -- non-regular input (issue 6 item 7) --------------------------------------------------------


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    # No writer ever opens the pipe: a plain open() would wait for one forever.
    path = tmp_path / "rows.csv"
    os.mkfifo(path)
    message = scan_error(path)
    assert "is a named pipe (FIFO), not a regular file" in message
    with pytest.raises(InputError, match="named pipe"):
        next(InputFile(path).rows())


def test_directory_is_refused_as_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert "is a directory, not a regular file" in scan_error(tmp_path / "dir.csv")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_is_refused_before_reading(tmp_path: Path) -> None:
    # /dev/zero never ends: reading it would only stop at some limit, with a wrong message.
    with pytest.raises(InputError, match="zero: cannot read the file: it is a character device"):
        InputFile("/dev/zero", "csv").scan()


def test_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text(f"id,name\n{RUN_A},X\n")
    (tmp_path / "link.csv").symlink_to(target)
    source = InputFile(tmp_path / "link.csv")
    assert source.scan().rows == 1
    assert list(source.rows()) == [RawRow(1, {"id": RUN_A, "name": "X"})]


# -- the file changing (issue 6 item 6) --------------------------------------------------------


def test_file_edited_between_scan_and_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rename.csv"
    path.write_text(f"id,name\n{RUN_A},First\n")
    source = InputFile(path)
    source.scan()
    path.write_text(f"id,name\n{RUN_A},Other\n")  # same size, new content
    with pytest.raises(InputError) as caught:
        next(source.rows())
    message = str(caught.value)
    assert "the file changed after it was checked" in message
    assert "modified in place" in message and "put the file back" in message


def test_file_replaced_by_rename_between_scan_and_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rename.csv"
    path.write_text(f"id,name\n{RUN_A},First\n")
    source = InputFile(path)
    source.scan()
    (tmp_path / "new.csv").write_text(f"id,name\n{RUN_A},First\n")  # same bytes even
    os.replace(tmp_path / "new.csv", path)
    with pytest.raises(InputError, match="replaced by another file"):
        next(source.rows())


def test_touched_file_with_its_time_put_back_is_still_noticed(tmp_path: Path) -> None:
    path = tmp_path / "rename.csv"
    path.write_text(f"id,name\n{RUN_A},First\n")
    before = path.stat()
    source = InputFile(path)
    source.scan()
    path.write_text(f"id,name\n{RUN_A},Fir5t\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime still moves
    with pytest.raises(InputError, match="changed after it was checked"):
        next(source.rows())


def test_unchanged_file_is_read_after_scan(tmp_path: Path) -> None:
    path = fat_csv(tmp_path / "fat.csv", 60)
    source = InputFile(path)
    assert source.scan().rows == 60
    assert sum(1 for _ in source.rows()) == 60
    # and twice: rows() may be walked again (a resume in the same process)
    assert sum(1 for _ in source.rows()) == 60


@pytest.mark.parametrize("how", ["in place", "appended", "truncated"])
def test_file_edited_while_rows_are_read_stops_before_any_changed_row(
    tmp_path: Path, how: str
) -> None:
    # ~460 KB read 64 KB at a time; the edit touches only the last rows, far past the reads.
    path = fat_csv(tmp_path / "fat.csv", 5000, width=50)
    source = InputFile(path)
    source.scan()
    rows = source.rows()
    seen = [next(rows)]
    size = path.stat().st_size
    with path.open("r+b") as handle:
        if how == "in place":
            handle.seek(size - 20_000)
            handle.write(b"X" * 1000)
        elif how == "appended":
            handle.seek(size)
            handle.write(f"{RUN_A},added\n".encode())
        else:
            handle.truncate(size - 20_000)
    with pytest.raises(InputError) as caught:
        for row in rows:
            seen.append(row)
    message = str(caught.value)
    assert "the file changed while the job was reading it" in message
    assert "stopped before using any row read after the change" in message
    assert "put the file back as it was and run the same command again" in message
    # Rows already in the last read before the edit come out; none after it.
    assert 100 < len(seen) < 2000
    assert all("X" not in row.values["summary"] for row in seen)
    assert [row.number for row in seen] == list(range(1, len(seen) + 1))


def test_file_written_while_it_is_checked_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An export still being written when the job starts: the scan's own pass notices.
    path = tmp_path / "export.csv"
    path.write_text(f"id,name\n{RUN_A},First\n")

    def open_then_append(target: Path, name: str) -> tuple[io.FileIO, FileIdentity]:
        opened = open_regular(target, name)
        with path.open("a") as more:
            more.write(f"{RUN_A},Second\n")
        return opened

    monkeypatch.setattr(reader, "open_regular", open_then_append)
    message = scan_error(path)
    assert "the file changed while it was being checked (its size went from" in message
    assert "nothing was sent" in message


def test_content_change_the_times_missed_is_caught_by_the_hash(tmp_path: Path) -> None:
    # Timestamps can miss an edit (a coarse clock); the hash of what was read cannot.
    path = tmp_path / "rename.csv"
    path.write_bytes(b"id,name\n" + f"{RUN_A},First\n".encode())
    raw, identity = open_regular(path, path.name)
    wrong = hashlib.sha256(b"something else").hexdigest()
    watched = WatchedRaw(raw, hashlib.sha256(), path.name, identity, wrong)
    with io.BufferedReader(watched) as buffered, pytest.raises(InputError) as caught:
        buffered.read()
    assert "its SHA-256 differs from when it was checked" in str(caught.value)


def test_identity_describes_the_change() -> None:
    base = FileIdentity(1, 2, 10, 5, 5)
    assert "replaced" in FileIdentity(1, 3, 10, 5, 5).change_from(base)
    assert "size went from 10 to 12 bytes" in FileIdentity(1, 2, 12, 6, 6).change_from(base)
    assert "modified in place" in FileIdentity(1, 2, 10, 6, 6).change_from(base)


# -- other encodings (issue 10 item 6) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "label"),
    [
        ("utf-16", "UTF-16"),  # with a BOM, little-endian here
        ("utf-16-be", "UTF-16"),  # no BOM
        ("utf-16-le", "UTF-16"),  # no BOM
        ("utf-32", "UTF-32"),
    ],
)
@pytest.mark.parametrize("name", ["export.csv", "export.jsonl"])
def test_utf16_and_utf32_are_refused_before_any_row(
    tmp_path: Path, encoding: str, label: str, name: str
) -> None:
    text = f"id,name\r\n{RUN_A},Café\r\n" if name.endswith("csv") else f'{{"id": "{RUN_A}"}}\n'
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    message = scan_error(path)
    assert f"is {label} text" in message
    assert "save it as UTF-8" in message


def test_big_endian_bom_is_named_as_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "be.csv"
    path.write_bytes(b"\xfe\xff" + "id,name\n".encode("utf-16-be"))
    assert "is UTF-16 text (it starts with a byte-order mark)" in scan_error(path)


def test_a_stray_nul_in_utf8_is_not_taken_for_utf16(tmp_path: Path) -> None:
    # One damaged cell is the row's problem (its text is refused), not the file's.
    path = tmp_path / "nul.csv"
    path.write_bytes(f"id,name\n{RUN_A},a\x00b\n{RUN_A},fine\n".encode())
    source = InputFile(path)
    assert source.scan().rows == 2
    assert [row.values["name"] for row in source.rows()] == ["a\x00b", "fine"]


# -- giant cells and lines (issue 6 item 10) ---------------------------------------------------


def test_csv_cell_over_the_field_limit_is_named_as_such(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    path = tmp_path / "huge.csv"
    path.write_text(f"id,name\n{RUN_A},ok\n\n{RUN_A},{'n' * (limit + 10)}\n{RUN_A},ok\n")
    message = scan_error(path)
    assert f"row 2 (line 4): a cell is longer than {limit:,} characters" in message
    assert "broken CSV quoting" not in message
    with pytest.raises(InputError, match="row 2 \\(line 4\\): a cell is longer"):
        list(InputFile(path).rows())


def test_unclosed_quote_swallowing_the_file_points_at_its_start(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    lines = "".join(f"{RUN_A},line {i}\n" for i in range(limit // 10))
    path = tmp_path / "quote.csv"
    path.write_text(f'id,name\n{RUN_A},ok\n{RUN_A},"never closed\n{lines}')
    message = scan_error(path)
    assert "row 2 (line 3): a cell is longer than" in message
    assert "quote" in message


def test_jsonl_line_over_the_cap_is_a_row_error_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "MAX_LINE", 1000)
    path = tmp_path / "long.jsonl"
    long_line = f'{{"id": "{RUN_A}", "name": "{"n" * 5000}"}}'
    path.write_text(f'{{"id": "{RUN_A}"}}\n{long_line}\n\n{{"id": "{RUN_A}", "n": 1}}\n')
    source = InputFile(path)
    assert source.scan().rows == 3
    rows = list(source.rows())
    assert rows[0].values == {"id": RUN_A}
    assert rows[1] == RawRow(
        2, {}, "long.jsonl: row 2 (line 2): the line is longer than 1,000 characters, "
        "the most a JSONL line may hold",
    )
    assert rows[2] == RawRow(3, {"id": RUN_A, "n": 1})


def test_jsonl_line_exactly_at_the_cap_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = f'{{"id": "{RUN_A}", "name": "x"}}'
    monkeypatch.setattr(reader, "MAX_LINE", len(line) + 1)  # its line break included
    path = tmp_path / "exact.jsonl"
    path.write_text(line + "\n" + line)  # the last one without a line break
    source = InputFile(path)
    source.scan()
    assert [row.error for row in source.rows()] == [None, None]


def test_giant_jsonl_line_is_never_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "MAX_LINE", 1 << 20)
    path = tmp_path / "giant.jsonl"
    with path.open("w") as out:
        out.write(f'{{"id": "{RUN_A}", "name": "')
        for _ in range(40):
            out.write("n" * (1 << 20))  # a 40 MB line, no line break until the end
        out.write(f'"}}\n{{"id": "{RUN_A}"}}\n')
    source = InputFile(path)
    tracemalloc.start()
    try:
        assert source.scan().rows == 2
        rows = list(source.rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "longer than 1,048,576 characters" in (rows[0].error or "")
    assert rows[1].values == {"id": RUN_A}
    assert peak < 12 << 20, peak  # a few pieces of 1 MB, never the 40 MB line


def test_default_jsonl_cap_is_ten_million_characters() -> None:
    assert reader.MAX_LINE == 10_000_000


# -- JSON nested too deeply (issue 6 item 8) ---------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "[" * 100_000,  # the C decoder recurses once per level: RecursionError before
        f'{{"id": "{RUN_A}", "prerun": ' + "[" * 100_000 + "]" * 100_000 + "}",
        f'{{"id": "{RUN_A}", "prerun": ' + "[" * 150 + "]" * 150 + "}",  # parses, too deep
    ],
    ids=["unclosed", "closed-100000", "closed-150"],
)
def test_deeply_nested_jsonl_line_is_a_row_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(f'{{"id": "{RUN_A}"}}\n{line}\n{{"id": "{RUN_A}", "n": 2}}\n')
    source = InputFile(path)
    assert source.scan().rows == 3
    rows = list(source.rows())
    assert rows[0].values == {"id": RUN_A} and rows[2].values == {"id": RUN_A, "n": 2}
    assert rows[1].error == (
        f"deep.jsonl: row 2 (line 2): not valid JSON: arrays and objects nested more than "
        f"{MAX_JSON_DEPTH} levels deep"
    )


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    value = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    path = tmp_path / "ok.jsonl"
    path.write_text(f'{{"id": "{RUN_A}", "prerun": {{"x": {value[:-1]}]}}}}\n')
    source = InputFile(path)
    source.scan()
    (row,) = source.rows()
    assert row.error is not None  # the object adds one level, the "x" key another
    path.write_text(f'{{"id": "{RUN_A}", "x": {"[" * 99}{"]" * 99}}}\n')
    source = InputFile(path)
    source.scan()
    (row,) = source.rows()
    assert row.error is None
