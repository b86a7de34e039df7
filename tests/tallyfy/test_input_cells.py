"""Cells that are almost always a broken file: control characters in text (issue 10 item 6),
JSON nested too deeply in a cell (issue 6 item 8). Each makes its row invalid, nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from bulk.engine.errors import RowInvalid
from bulk.engine.reader import MAX_JSON_DEPTH, RawRow
from bulk.tallyfy.rows import Change, parse_row
from bulk.tallyfy.targets import RUNS, TEMPLATES, Target

RUN = "0123456789abcdef0123456789abcdef"
FIELD = "c" * 32


def row(target: Target = RUNS, format: str = "csv", **values: Any) -> Change:
    source = "cells.csv" if format == "csv" else "cells.jsonl"
    return parse_row(target, RawRow(4, {"id": RUN, **values}), "id", source, format)


def invalid(target: Target = RUNS, format: str = "csv", **values: Any) -> str:
    with pytest.raises(RowInvalid) as caught:
        row(target, format, **values)
    message = str(caught.value)
    assert message.startswith("cells.") and ": row 4, column " in message
    assert "\n" not in message
    return message


# -- control characters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "position"),
    [
        ("a\x00b", "U+0000 NUL", 2),
        ("\x1b[31mred", "U+001B ESC", 1),
        ("bell\x07", "U+0007", 5),
        ("form\x0cfeed", "U+000C", 5),
        ("del\x7f", "U+007F DEL", 4),
        ("caf\x85", "U+0085", 4),  # a C1 control: Windows-1252 text read as Latin-1
    ],
)
@pytest.mark.parametrize("format", ["csv", "jsonl"])
def test_control_character_in_a_text_cell_makes_the_row_invalid(
    text: str, label: str, position: int, format: str
) -> None:
    message = invalid(format=format, name=text)
    assert f'column "name": contains a control character ({label}) at character {position}' in (
        message
    )
    assert "tabs and line breaks" in message


@pytest.mark.parametrize(
    "text", ["tab\there", "two\nlines", "windows\r\nlines", "non\u00a0breaking", "émoji 🎉", "‍"]
)
def test_tabs_line_breaks_and_other_unicode_are_text(text: str) -> None:
    assert row(summary=text).set == {"summary": text}
    assert row(format="jsonl", summary=text).set == {"summary": text}


@pytest.mark.parametrize("text", ["old mac\rline", "ends with\r"])
def test_lone_carriage_return_makes_the_row_invalid(text: str) -> None:
    message = invalid(summary=text)
    assert 'column "summary": contains a carriage return (U+000D) not followed by a line feed' in (
        message
    )


def test_control_characters_are_refused_in_every_kind_of_text() -> None:
    assert "control character" in invalid(TEMPLATES, title="T\x00")
    assert "control character" in invalid(tags="ok;bad\x01")
    assert "control character" in invalid(format="jsonl", folders=["ok", "bad\x02"])
    assert "control character" in invalid(TEMPLATES, webhook="https://example.com/\x00")
    assert "control character" in invalid(**{f"prerun.{FIELD}": "text\x00"})
    assert "control character" in invalid(format="jsonl", prerun={FIELD: "text\x00"})


# -- JSON nested too deeply in a cell ----------------------------------------------------------

DEEP_OPEN = "[" * 100_000  # RecursionError in the C decoder before
DEEP_CLOSED = "[" * 150 + "]" * 150  # parses, deeper than MAX_JSON_DEPTH


@pytest.mark.parametrize("cell", [DEEP_OPEN, DEEP_CLOSED], ids=["unclosed", "closed-150"])
@pytest.mark.parametrize("column", ["users", "add_groups", "tags", f"prerun.{FIELD}"])
def test_deeply_nested_json_cell_makes_the_row_invalid(column: str, cell: str) -> None:
    message = invalid(**{column: cell})
    assert f'column "{column}": JSON nested more than {MAX_JSON_DEPTH} levels deep' in message


@pytest.mark.parametrize("inner", [DEEP_OPEN, DEEP_CLOSED], ids=["unclosed", "closed-150"])
def test_deeply_nested_prerun_object_cell_makes_the_row_invalid(inner: str) -> None:
    message = invalid(prerun=f'{{"{FIELD}": {inner}}}')
    assert f'column "prerun": JSON nested more than {MAX_JSON_DEPTH} levels deep' in message


def test_ordinary_nesting_in_cells_is_kept() -> None:
    table = '[["a", "b"], [{"x": [1]}]]'
    assert row(**{f"prerun.{FIELD}": table}).prerun == {FIELD: [["a", "b"], [{"x": [1]}]]}
    assert row(users="[1, 2]").set == {"users": [1, 2]}


@pytest.mark.parametrize("cell", [DEEP_OPEN, DEEP_CLOSED], ids=["unclosed", "closed-150"])
@pytest.mark.parametrize("column", ["expect", "expect.prerun"])
def test_deeply_nested_expect_object_cell_makes_the_row_invalid(column: str, cell: str) -> None:
    # The expect.* columns came with issue 8: their JSON cells share the same bound.
    message = invalid(name="x", **{column: cell})
    assert f'column "{column}": JSON nested more than {MAX_JSON_DEPTH} levels deep' in message
