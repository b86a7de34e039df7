"""The input reader on real files: CSV and JSONL dialects, file-level and row-level problems."""

from __future__ import annotations

import gc
import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from bulk.engine import reader as reader_module
from bulk.engine.errors import InputError
from bulk.engine.reader import InputFile, RawRow
from bulk.engine.watched_file import open_regular

RUN_A = "a" * 32
RUN_B = "b" * 32


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def read_all(path: Path, format: str | None = None) -> tuple[int, list[RawRow]]:
    source = InputFile(path, format)
    summary = source.scan()
    rows = list(source.rows())
    assert summary.rows == len(rows), "scan must count exactly what rows() yields"
    assert [row.number for row in rows] == list(range(1, len(rows) + 1))
    return summary.rows, rows


def input_error(path: Path, format: str | None = None) -> str:
    with pytest.raises(InputError) as caught:
        InputFile(path, format).scan()
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return message


# -- format ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.csv", "csv"), ("A.CSV", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl")],
)
def test_format_from_extension(tmp_path: Path, name: str, expected: str) -> None:
    assert InputFile(tmp_path / name).format == expected


def test_explicit_format_wins_over_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.txt", f'{{"id": "{RUN_A}"}}\n')
    assert InputFile(path, "jsonl").format == "jsonl"
    assert InputFile(path, "NDJSON").format == "jsonl"
    _, rows = read_all(path, "jsonl")
    assert rows[0].values == {"id": RUN_A}


@pytest.mark.parametrize("name", ["rows.txt", "rows.json", "rows"])
def test_unknown_extension_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="--format"):
        InputFile(tmp_path / name)


def test_unknown_format_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown input format 'xlsx'"):
        InputFile(tmp_path / "a.csv", "xlsx")


# -- CSV dialect -------------------------------------------------------------------------------


def test_csv_rows_are_numbered_and_keyed_by_header(tmp_path: Path) -> None:
    path = write(tmp_path, "rename.csv", f"id,name\n{RUN_A},First\n{RUN_B},Second\n")
    source = InputFile(path)
    summary = source.scan()
    assert summary.format == "csv"
    assert summary.columns == ("id", "name")
    assert summary.rows == 2
    assert list(source.rows()) == [
        RawRow(1, {"id": RUN_A, "name": "First"}),
        RawRow(2, {"id": RUN_B, "name": "Second"}),
    ]


def test_csv_bom_is_dropped_from_the_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbfid,name\n" + RUN_A.encode() + b",X\n")
    _, rows = read_all(path)
    assert InputFile(path).scan().columns == ("id", "name")
    assert rows[0].values == {"id": RUN_A, "name": "X"}


def test_csv_crlf_leaves_no_carriage_returns(tmp_path: Path) -> None:
    path = write(tmp_path, "crlf.csv", f"id,name\r\n{RUN_A},X\r\n{RUN_B},Y\r\n")
    _, rows = read_all(path)
    assert [row.values["name"] for row in rows] == ["X", "Y"]


def test_csv_quoted_commas_quotes_and_newlines(tmp_path: Path) -> None:
    text = f'id,name\r\n{RUN_A},"Smith, ""Bob""\r\nsecond line"\r\n{RUN_B},plain\r\n'
    path = write(tmp_path, "quoted.csv", text)
    count, rows = read_all(path)
    assert count == 2
    assert rows[0].values["name"] == 'Smith, "Bob"\r\nsecond line'
    assert rows[1].values == {"id": RUN_B, "name": "plain"}


def test_csv_header_names_are_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "spaces.csv", f" id ,\tname \n{RUN_A},X\n")
    assert InputFile(path).scan().columns == ("id", "name")
    _, rows = read_all(path)
    assert rows[0].values == {"id": RUN_A, "name": "X"}


def test_csv_ragged_lines_are_flagged_and_the_others_go_on(tmp_path: Path) -> None:
    text = (
        "id,name\n"
        f'{RUN_A},"two\nlines"\n'  # row 1, lines 2-3
        f"{RUN_B}\n"  # row 2, line 4: too few cells
        f"{RUN_A},X,extra\n"  # row 3, line 5: too many
        f"{RUN_B},Y\n"  # row 4
    )
    path = write(tmp_path, "ragged.csv", text)
    count, rows = read_all(path)
    assert count == 4
    assert rows[0].error is None and rows[3].error is None
    assert rows[3].values == {"id": RUN_B, "name": "Y"}
    assert rows[1] == RawRow(2, {}, "ragged.csv: row 2 (line 4): 1 cell where the header has 2")
    assert rows[2] == RawRow(3, {}, "ragged.csv: row 3 (line 5): 3 cells where the header has 2")


def test_csv_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "blank.csv", f"\nid,name\n\n{RUN_A},X\n   \n\r\n{RUN_B},Y\n\n\n")
    count, rows = read_all(path)
    assert count == 2
    assert [(row.number, row.values["id"]) for row in rows] == [(1, RUN_A), (2, RUN_B)]


def test_csv_row_of_empty_cells_is_a_row_not_a_blank_line(tmp_path: Path) -> None:
    # "," has the header's width: it is a (useless) row, left for the typing step to refuse.
    path = write(tmp_path, "commas.csv", f"id,name\n,\n{RUN_A},X\n")
    _, rows = read_all(path)
    assert rows[0] == RawRow(1, {"id": "", "name": ""})


def test_csv_cells_are_kept_verbatim(tmp_path: Path) -> None:
    path = write(tmp_path, "verbatim.csv", f'id,name\n{RUN_A},"  padded  "\n')
    _, rows = read_all(path)
    assert rows[0].values["name"] == "  padded  "


# -- CSV file-level problems -------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \r\n"])
def test_csv_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "empty.csv", content)
    assert "is empty" in input_error(path)


def test_csv_header_only_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "header.csv", "id,name\n\n")
    assert "no data rows" in input_error(path)


def test_csv_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.csv", f"id,name\n{RUN_A},ok\n".encode() + b"x,caf\xe9\n")
    message = input_error(path)
    assert "line 3 is not valid UTF-8" in message
    assert "0xe9" in message


def test_csv_undecodable_bytes_also_stop_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.csv", b"id,name\nx,caf\xe9\n")
    with pytest.raises(InputError, match="line 2 is not valid UTF-8"):
        list(InputFile(path).rows())


def test_utf16_file_is_refused_with_a_way_out(tmp_path: Path) -> None:
    path = write(tmp_path, "excel.csv", "id,name\r\n".encode("utf-16"))
    assert "is UTF-16 text" in input_error(path)
    assert "save it as UTF-8" in input_error(path)


def test_csv_duplicate_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", f"id,name, name\n{RUN_A},X,Y\n")
    assert 'names column "name" twice' in input_error(path)


def test_csv_empty_header_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "noname.csv", f"id,,name\n{RUN_A},,X\n")
    assert "header column 2 has no name" in input_error(path)


@pytest.mark.parametrize(
    ("body", "line"),
    [(f'{RUN_A},"never closed\n{RUN_B},Y\n', 3), (f'{RUN_A},"x"y\n', 2)],
)
def test_csv_broken_quoting_is_refused_with_its_line(tmp_path: Path, body: str, line: int) -> None:
    path = write(tmp_path, "quotes.csv", "id,name\n" + body)
    message = input_error(path)
    assert f"line {line}: broken CSV quoting" in message


def test_csv_broken_quoting_also_stops_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "quotes.csv", f'id,name\n{RUN_A},"x"y\n{RUN_B},Y\n')
    with pytest.raises(InputError, match="line 2: broken CSV quoting"):
        list(InputFile(path).rows())


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert "No such file" in input_error(tmp_path / "missing.csv")


def test_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert "cannot read the file" in input_error(tmp_path / "dir.csv")


def test_rows_without_scan_also_refuse_a_bad_header(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", f"id,id\n{RUN_A},{RUN_B}\n")
    with pytest.raises(InputError, match="twice"):
        next(InputFile(path).rows())


# -- fingerprint -------------------------------------------------------------------------------


def test_sha256_is_the_hash_of_the_file_bytes(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbfid,name\r\n" + b"".join(
        f"{i:032x},name {i}\r\n".encode() for i in range(5000)
    )
    path = write(tmp_path, "hash.csv", content)
    summary = InputFile(path).scan()
    assert summary.sha256 == hashlib.sha256(content).hexdigest()
    assert summary.path == path

    write(tmp_path, "hash.csv", content.replace(b"name 4999", b"name 4998"))
    assert InputFile(path).scan().sha256 != summary.sha256


def test_sha256_covers_bytes_after_the_last_row(tmp_path: Path) -> None:
    first = InputFile(write(tmp_path, "a.csv", f"id\n{RUN_A}\n")).scan().sha256
    second = InputFile(write(tmp_path, "b.csv", f"id\n{RUN_A}\n\n\n")).scan().sha256
    assert first != second


# -- JSONL -------------------------------------------------------------------------------------


def test_jsonl_values_are_kept_as_typed(tmp_path: Path) -> None:
    line = f'{{"id": "{RUN_A}", "starred": true, "users": [1, "2"], "owner_id": 7, "x": null}}'
    _, rows = read_all(write(tmp_path, "typed.jsonl", line + "\n"))
    assert rows[0].values == {
        "id": RUN_A,
        "starred": True,
        "users": [1, "2"],
        "owner_id": 7,
        "x": None,
    }


def test_jsonl_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    text = f'\n{{"id": "{RUN_A}"}}\n   \n\t\n{{"id": "{RUN_B}"}}\n\n'
    count, rows = read_all(write(tmp_path, "blank.jsonl", text))
    assert count == 2
    assert [(row.number, row.values["id"]) for row in rows] == [(1, RUN_A), (2, RUN_B)]


def test_jsonl_crlf_and_bom(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbf" + f'{{"id": "{RUN_A}"}}\r\n{{"id": "{RUN_B}"}}\r\n'.encode()
    _, rows = read_all(write(tmp_path, "crlf.jsonl", content))
    assert [row.values for row in rows] == [{"id": RUN_A}, {"id": RUN_B}]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[1, 2]", "expected a JSON object, got an array"),
        ('"text"', "expected a JSON object, got a string"),
        ("12", "expected a JSON object, got a number"),
        ("null", "expected a JSON object, got null"),
        ("true", "expected a JSON object, got true/false"),
        ('{"id": ', "not valid JSON: Expecting value at column 8"),
        ("{'id': 1}", "not valid JSON"),
        ('{"n": NaN}', "not valid JSON: NaN is not a JSON number"),
    ],
)
def test_jsonl_bad_line_is_a_row_error_and_the_others_go_on(
    tmp_path: Path, line: str, expected: str
) -> None:
    text = f'{{"id": "{RUN_A}"}}\n\n{line}\n{{"id": "{RUN_B}"}}\n'
    count, rows = read_all(write(tmp_path, "bad.jsonl", text))
    assert count == 3
    assert rows[0].values == {"id": RUN_A} and rows[2].values == {"id": RUN_B}
    assert rows[1].values == {}
    assert rows[1].error is not None
    assert rows[1].error.startswith("bad.jsonl: row 2 (line 3): ")
    assert expected in rows[1].error


def test_jsonl_columns_are_the_union_of_keys_in_first_seen_order(tmp_path: Path) -> None:
    text = '{"id": "x", "name": "a"}\n[1]\n{"owner_id": 1, "id": "y"}\n{"name": "b", "tags": []}\n'
    summary = InputFile(write(tmp_path, "keys.jsonl", text)).scan()
    assert summary.columns == ("id", "name", "owner_id", "tags")
    assert summary.format == "jsonl"
    assert summary.rows == 4


@pytest.mark.parametrize("content", [b"", b"\n \n\r\n"])
def test_jsonl_without_rows_is_refused(tmp_path: Path, content: bytes) -> None:
    assert "has no rows" in input_error(write(tmp_path, "empty.jsonl", content))


def test_jsonl_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.jsonl", b'{"id": "x"}\n{"name": "caf\xe9"}\n')
    assert "line 2 is not valid UTF-8" in input_error(path)


# -- streaming ---------------------------------------------------------------------------------


def big_csv(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as out:
        out.write("id,name\n")
        out.writelines(f"{i:032x},Renamed process number {i}\n" for i in range(rows))
    return path


def open_position(path: Path) -> int:
    """The read offset of this process's open descriptor on ``path`` (Linux /proc)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == os.path.realpath(path):
                info = Path(f"/proc/self/fdinfo/{fd}").read_text()
                return int(info.split("pos:")[1].split()[0])
        except OSError:
            continue
    raise AssertionError(f"{path} is not open")


@pytest.mark.skipif(not Path("/proc/self/fdinfo").exists(), reason="needs Linux /proc")
def test_rows_reads_lazily(tmp_path: Path) -> None:
    path = big_csv(tmp_path, 200_000)
    size = path.stat().st_size
    rows = InputFile(path).rows()
    try:
        first = next(rows)
        assert first == RawRow(1, {"id": f"{0:032x}", "name": "Renamed process number 0"})
        # Only a buffer's worth has been read from a ~12 MB file.
        assert open_position(path) < size // 4
        assert next(rows).number == 2
    finally:
        rows.close()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("how", ["closed", "dropped", "failed"])
def test_abandoned_rows_iterator_closes_its_file(tmp_path: Path, monkeypatch, suffix, how):
    # The test keeps its own reference to every file the reader opens, so nothing but a
    # close can close it (a file nobody refers to any more would be closed by the garbage
    # collector alone, and no ResourceWarning would tell). "failed": rows stop on a bad
    # byte far into the file, and the error is kept (as a caller reporting it would): its
    # traceback holds the reader's frame, so only the reader's own `with` closes the file.
    opened: list = []

    def keep(*args, **kwargs):
        raw, identity = open_regular(*args, **kwargs)
        opened.append(raw)
        return raw, identity

    monkeypatch.setattr(reader_module, "open_regular", keep)
    if suffix == ".csv":
        path = big_csv(tmp_path, 3000)
    else:
        path = write(tmp_path, "big.jsonl",
                     "".join(f'{{"id": "{RUN_A}", "n": {n}}}\n' for n in range(3000)))
    with path.open("ab") as out:  # past the first chunk the reader decodes
        out.write(b"\xff\n")
    rows = InputFile(path).rows()
    next(rows)
    [raw] = opened
    assert not raw.closed
    if how == "closed":
        rows.close()
    elif how == "dropped":
        del rows
        gc.collect()
    else:
        with pytest.raises(InputError, match="UTF-8") as failed:
            for _ in rows:
                pass
        assert failed.tb is not None
    assert raw.closed


def test_memory_stays_flat_over_a_large_file(tmp_path: Path) -> None:
    path = big_csv(tmp_path, 200_000)
    size = path.stat().st_size
    source = InputFile(path)
    tracemalloc.start()
    try:
        summary = source.scan()
        _, scan_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        count = 0
        for row in source.rows():
            count += 1
            last = row
        _, rows_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.rows == count == 200_000
    assert last.number == 200_000
    # The file is ~12 MB; holding it (or its rows) would need far more than this.
    assert scan_peak < size // 3, scan_peak
    assert rows_peak < size // 3, rows_peak
