"""Tallyfy columns and row typing: what is refused before any request, and how cells are typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulk.engine.errors import InputError, RowInvalid
from bulk.engine.reader import InputFile, RawRow
from bulk.tallyfy.rows import Change, RowParser, parse_row
from bulk.tallyfy.targets import RUNS, TARGETS, TEMPLATES, Target, check_columns

RUN = "0123456789abcdef0123456789abcdef"
GROUP_A = "a" * 32
GROUP_B = "b" * 32
FIELD_A = "c" * 32
FIELD_B = "d" * 32


def csv_row(target: Target = RUNS, number: int = 7, **values: Any) -> Change:
    values = {"id": RUN, **values}
    return parse_row(target, RawRow(number, values), "id", "rename.csv")


def jsonl_row(target: Target = RUNS, **values: Any) -> Change:
    values = {"id": RUN, **values}
    return parse_row(target, RawRow(7, values), "id", "rename.jsonl", "jsonl")


def csv_invalid(target: Target = RUNS, **values: Any) -> str:
    with pytest.raises(RowInvalid) as caught:
        csv_row(target, **values)
    message = str(caught.value)
    assert message.startswith("rename.csv: row 7")
    assert "\n" not in message
    return message


def jsonl_invalid(target: Target = RUNS, **values: Any) -> str:
    with pytest.raises(RowInvalid) as caught:
        jsonl_row(target, **values)
    message = str(caught.value)
    assert message.startswith("rename.jsonl: row 7")
    return message


def columns_error(target: Target, *columns: str) -> str:
    with pytest.raises(InputError) as caught:
        check_columns(target, columns, "rename.csv")
    message = str(caught.value)
    assert message.startswith("rename.csv: ") and "\n" not in message
    return message


# -- targets -----------------------------------------------------------------------------------


def test_targets_describe_the_api() -> None:
    assert TARGETS == {"runs": RUNS, "templates": TEMPLATES, "tasks": TARGETS["tasks"]}
    assert (RUNS.path, TEMPLATES.path) == ("runs", "checklists")
    assert RUNS.id_columns == ("id", "run_id")
    assert TEMPLATES.id_columns == ("id", "checklist_id", "template_id")
    assert TEMPLATES.required_on_put == ("title",)
    assert RUNS.required_on_put == ()
    assert {"name", "owner_id", "users", "groups", "prerun", "tags"} <= set(RUNS.fields)
    assert {"title", "webhook", "auto_naming", "users", "groups"} <= set(TEMPLATES.fields)
    assert "prerun" not in TEMPLATES.fields


# -- columns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "id_column"),
    [
        (RUNS, "id"),
        (RUNS, "run_id"),
        (TEMPLATES, "id"),
        (TEMPLATES, "checklist_id"),
        (TEMPLATES, "template_id"),
    ],
)
def test_check_columns_returns_the_id_column(target: Target, id_column: str) -> None:
    columns = ["owner_id", id_column, "add_users", "remove_groups", "users"]
    assert check_columns(target, columns, "x.csv") == id_column


def test_unknown_column_is_refused_with_a_suggestion() -> None:
    message = columns_error(RUNS, "id", "nmae")
    assert "column is not a field of runs" in message
    assert '"nmae" (did you mean "name"?)' in message


def test_every_unknown_column_is_named() -> None:
    message = columns_error(RUNS, "id", "Name", "colour", "owner")
    assert '"Name" (did you mean "name"?)' in message
    assert '"colour"' in message
    assert '"owner" (did you mean "owner_id"?)' in message


def test_column_of_the_other_target_hints_at_the_target() -> None:
    assert '"title" (a templates column: is the target right?)' in columns_error(
        RUNS, "id", "title"
    )
    assert '"prerun" (a runs column' in columns_error(TEMPLATES, "id", "prerun")
    assert "a runs column" in columns_error(TEMPLATES, "id", f"prerun.{FIELD_A}")


def test_missing_id_column_is_refused() -> None:
    message = columns_error(TEMPLATES, "title", "owner_id")
    assert 'no record id column; templates need one of "id", "checklist_id", "template_id"' in (
        message
    )


def test_two_id_columns_are_refused() -> None:
    assert 'more than one record id column ("id", "run_id")' in columns_error(
        RUNS, "id", "name", "run_id"
    )


def test_kick_off_columns_are_checked_by_name() -> None:
    assert check_columns(RUNS, ["id", f"prerun.{FIELD_A}", "prerun"], "x.csv") == "id"
    for bad in ("prerun.abc", "prerun.", f"prerun.{'g' * 32}", f"prerun.{FIELD_A}x"):
        assert "prerun.<32-hex timeline_id>" in columns_error(RUNS, "id", bad)


def test_kick_off_columns_differing_only_in_case_are_refused() -> None:
    message = columns_error(RUNS, "id", f"prerun.{FIELD_A.upper()}", f"prerun.{FIELD_A}")
    assert "name the same kick-off field" in message


# -- record id ---------------------------------------------------------------------------------


def test_record_id_is_normalised_to_lowercase() -> None:
    assert csv_row(id=f" {RUN.upper()} ", name="X").record_id == RUN


@pytest.mark.parametrize("value", [RUN[:-1], RUN + "0", "g" * 32, "12", "run-1"])
def test_malformed_record_id_is_invalid(value: str) -> None:
    assert 'column "id": expected a 32-character hex id' in csv_invalid(id=value, name="X")


def test_empty_record_id_is_invalid() -> None:
    assert 'column "id": empty' in csv_invalid(id="  ", name="X")


def test_record_id_in_jsonl_must_be_a_string() -> None:
    assert "expected a 32-character hex id, got 12" in jsonl_invalid(id=12, name="X")
    assert 'column "id": missing' in jsonl_invalid(id=None, name="X")


def test_other_id_column_is_used() -> None:
    change = parse_row(TEMPLATES, RawRow(1, {"template_id": RUN, "title": "T"}), "template_id", "t")
    assert change.record_id == RUN
    assert change.set == {"title": "T"}


# -- empty cells and whole rows ----------------------------------------------------------------


def test_empty_cells_leave_fields_unchanged() -> None:
    change = csv_row(name="", owner_id="   ", starred="\t", summary="Kept")
    assert change == Change(row=7, record_id=RUN, set={"summary": "Kept"})


def test_row_that_changes_nothing_is_invalid() -> None:
    assert "nothing to change" in csv_invalid(name="", owner_id="  ")
    assert "nothing to change" in csv_invalid()
    assert "nothing to change" in jsonl_invalid(name=None)
    assert "nothing to change" in csv_invalid(add_users="[]", remove_groups="[]")


def test_raw_row_error_becomes_row_invalid() -> None:
    raw = RawRow(3, {}, "rename.csv: row 3 (line 4): 1 cell where the header has 2")
    with pytest.raises(RowInvalid, match=r"^rename\.csv: row 3 \(line 4\): 1 cell where"):
        parse_row(RUNS, raw, "id", "rename.csv")


# -- text --------------------------------------------------------------------------------------


def test_text_is_kept_exactly() -> None:
    assert csv_row(name='  Q3 review, "final"\n').set == {"name": '  Q3 review, "final"\n'}


@pytest.mark.parametrize(
    ("target", "field", "limit"),
    [
        (RUNS, "name", 550),
        (TEMPLATES, "title", 250),
        (TEMPLATES, "default_process_name_format", 550),
    ],
)
def test_length_limits_at_the_boundary(target: Target, field: str, limit: int) -> None:
    extra = {"title": "T"} if target is TEMPLATES and field != "title" else {}
    assert csv_row(target, **extra, **{field: "x" * limit}).set[field] == "x" * limit
    message = csv_invalid(target, **extra, **{field: "x" * (limit + 1)})
    assert f'column "{field}": {limit + 1} characters; {field} allows at most {limit}' in message
    assert "characters" in jsonl_invalid(target, **extra, **{field: "y" * (limit + 1)})


def test_length_counts_characters_not_bytes() -> None:
    assert csv_row(name="é" * 550).set["name"] == "é" * 550
    assert "551 characters" in csv_invalid(name="é" * 551)


def test_jsonl_text_must_be_a_string_and_names_not_blank() -> None:
    assert 'column "name": expected a string, got 12' in jsonl_invalid(name=12)
    assert "name cannot be empty" in jsonl_invalid(name=" ")
    assert "title cannot be empty" in jsonl_invalid(TEMPLATES, title="")
    # An empty summary in JSONL is a value (it clears the summary), not "unchanged".
    assert jsonl_row(summary="").set == {"summary": ""}


# -- booleans ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("1", True),
        (" yes ", True),
        ("false", False),
        ("False", False),
        ("NO", False),
        ("0", False),
    ],
)
def test_csv_booleans(cell: str, expected: bool) -> None:
    assert csv_row(starred=cell).set == {"starred": expected}


@pytest.mark.parametrize("cell", ["y", "2", "on", "truee", "-1"])
def test_csv_bad_boolean_is_invalid(cell: str) -> None:
    message = csv_invalid(is_public=cell)
    assert f'column "is_public": expected true/false/yes/no/1/0, got "{cell}"' in message


def test_jsonl_booleans_are_typed() -> None:
    assert jsonl_row(starred=False).set == {"starred": False}
    assert 'expected true or false, got "yes"' in jsonl_invalid(starred="yes")
    assert "expected true or false, got 1" in jsonl_invalid(starred=1)


# -- user ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "expected"), [("12", 12), (" 12 ", 12), ("007", 7)])
def test_csv_user_id(cell: str, expected: int) -> None:
    assert csv_row(owner_id=cell).set == {"owner_id": expected}


@pytest.mark.parametrize("cell", ["12.5", "bob", "-3", "0", "1e3", "١٢", "+12", "1 2"])
def test_csv_bad_user_id_is_invalid(cell: str) -> None:
    message = csv_invalid(owner_id=cell)
    assert 'column "owner_id": expected a user id (positive integer)' in message


def test_the_contract_message_shape() -> None:
    with pytest.raises(RowInvalid) as caught:
        csv_row(number=12, owner_id="bob")
    assert str(caught.value) == (
        'rename.csv: row 12, column "owner_id": expected a user id (positive integer) or a '
        'member\'s email, got "bob"'
    )


def test_jsonl_user_id_accepts_integers_and_digit_strings() -> None:
    assert jsonl_row(owner_id=12).set == {"owner_id": 12}
    assert jsonl_row(owner_id="12").set == {"owner_id": 12}
    for bad in (12.0, True, -1, 0, "x", [12]):
        assert "expected a user id" in jsonl_invalid(owner_id=bad)


# -- lists -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["1;2", "[1, 2]", " 1 ; 2 ;", '["1", 2]', "1;2;1"])
def test_csv_user_lists_in_both_syntaxes(cell: str) -> None:
    assert csv_row(users=cell).set == {"users": [1, 2]}


def test_csv_group_lists_are_normalised() -> None:
    cell = f"{GROUP_A.upper()};{GROUP_B}"
    assert csv_row(groups=cell).set == {"groups": [GROUP_A, GROUP_B]}
    assert csv_row(groups=f'["{GROUP_A}"]').set == {"groups": [GROUP_A]}


def test_bad_list_items_are_invalid() -> None:
    assert "expected a user id" in csv_invalid(users="1;bob")
    assert "expected a group id (32 hex characters)" in csv_invalid(groups="abc")
    assert "not a valid JSON array" in csv_invalid(users="[1, 2")
    assert "expected a user id" in csv_invalid(users="[1.5]")


@pytest.mark.parametrize("field", ["users", "groups"])
def test_emptying_members_is_refused(field: str) -> None:
    message = csv_invalid(**{field: "[]"})
    assert f'column "{field}": an empty list would remove every one' in message
    assert f"use remove_{field}" in message
    assert "an empty list" in jsonl_invalid(**{field: []})


def test_other_lists_can_be_cleared_only_with_brackets() -> None:
    assert csv_row(tags="[]").set == {"tags": []}
    assert csv_row(tags="urgent; q3 ").set == {"tags": ["urgent", "q3"]}
    assert csv_row(folders='["a;b"]').set == {"folders": ["a;b"]}
    assert "write [] for an empty list" in csv_invalid(tags=";")
    assert "expected a non-empty string" in csv_invalid(tags="[1]")


def test_jsonl_lists_must_be_arrays() -> None:
    assert jsonl_row(users=[3, "4"], tags=["x"]).set == {"users": [3, 4], "tags": ["x"]}
    assert "expected a JSON array of user ids" in jsonl_invalid(users="1;2")
    assert "expected a JSON array of strings" in jsonl_invalid(tags="x")


# -- membership changes ------------------------------------------------------------------------


def test_add_and_remove_members() -> None:
    change = csv_row(add_users="1;2", remove_users="[3]", add_groups=GROUP_A, remove_groups="")
    assert change.set == {}
    assert change.add_users == (1, 2)
    assert change.remove_users == (3,)
    assert change.add_groups == (GROUP_A,)
    assert change.remove_groups == ()


def test_same_user_added_and_removed_is_invalid() -> None:
    message = csv_invalid(add_users="1;2", remove_users="2")
    assert 'columns "add_users" and "remove_users": user 2 is both added and removed' in message


def test_same_group_added_and_removed_is_invalid_whatever_the_case() -> None:
    message = csv_invalid(add_groups=GROUP_A, remove_groups=GROUP_A.upper())
    assert f"group {GROUP_A} is both added and removed" in message


def test_whole_list_with_add_or_remove_in_one_row_is_invalid() -> None:
    message = csv_invalid(users="1;2", remove_users="3")
    assert 'column "remove_users": cannot be combined with "users"' in message
    assert "cannot be combined" in csv_invalid(groups=GROUP_A, add_groups=GROUP_B)
    # Both columns in the file, but only one filled in this row: fine.
    assert csv_row(users="1;2", add_users="").set == {"users": [1, 2]}


# -- urls --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell", ["https://hooks.example.com/x?y=1", "http://localhost:8080/hook", " https://a.io "]
)
def test_urls(cell: str) -> None:
    assert csv_row(TEMPLATES, webhook=cell).set == {"webhook": cell.strip()}


@pytest.mark.parametrize(
    "cell",
    ["ftp://example.com", "example.com/hook", "https://", "http://exa mple.com", "http://[x"],
)
def test_bad_urls_are_invalid(cell: str) -> None:
    message = csv_invalid(TEMPLATES, explanation_video=cell)
    assert 'column "explanation_video": expected an http(s) URL with a host' in message


# -- kick-off values ---------------------------------------------------------------------------


def test_kick_off_columns() -> None:
    change = csv_row(
        **{
            f"prerun.{FIELD_A}": "2024-05-01",
            f"prerun.{FIELD_B.upper()}": '{"id": 2, "text": "Blue", "value": null}',
        }
    )
    assert change.set == {}
    assert change.prerun == {
        FIELD_A: "2024-05-01",
        FIELD_B: {"id": 2, "text": "Blue", "value": None},
    }


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('[{"id": 1, "text": "A", "selected": true}]', [{"id": 1, "text": "A", "selected": True}]),
        ("[draft] notes", "[draft] notes"),
        ("{not json", "{not json"),
        ("  spaced text ", "  spaced text "),
        ("12", "12"),
    ],
)
def test_kick_off_cell_is_json_only_when_it_is_an_object_or_array(cell: str, expected: Any) -> None:
    assert csv_row(**{f"prerun.{FIELD_A}": cell}).prerun == {FIELD_A: expected}


def test_prerun_object_column() -> None:
    assignees = '{"users": [1], "guests": [], "groups": []}'
    cell = f'{{"{FIELD_A}": "x", "{FIELD_B.upper()}": {assignees}}}'
    change = csv_row(prerun=cell, **{f"prerun.{'e' * 32}": "y"})
    assert change.prerun == {
        FIELD_A: "x",
        FIELD_B: {"users": [1], "guests": [], "groups": []},
        "e" * 32: "y",
    }
    assert jsonl_row(prerun={FIELD_A: 1}).prerun == {FIELD_A: 1}


def test_bad_prerun_objects_are_invalid() -> None:
    assert "expected a JSON object" in csv_invalid(prerun="[1]")
    assert "expected a JSON object" in csv_invalid(prerun="text")
    assert "expected a JSON object" in csv_invalid(prerun=f'{{"{FIELD_A}": NaN}}')
    assert "expected a JSON object" in jsonl_invalid(prerun=[{"a": 1}])
    assert "kick-off field ids are 32 hex characters" in jsonl_invalid(prerun={"abc": 1})


def test_kick_off_value_given_twice_is_invalid() -> None:
    message = csv_invalid(prerun=f'{{"{FIELD_A}": "x"}}', **{f"prerun.{FIELD_A}": "y"})
    assert f'kick-off field {FIELD_A} is also given as "prerun.{FIELD_A}"' in message


def test_templates_take_no_kick_off_values() -> None:
    with pytest.raises(RowInvalid, match="not a field of templates"):
        csv_row(TEMPLATES, title="T", **{f"prerun.{FIELD_A}": "x"})


# -- format handling ---------------------------------------------------------------------------


def test_csv_mode_judges_non_text_values_by_their_json_type() -> None:
    # A JSONL row typed as CSV by mistake still types correctly instead of crashing.
    assert csv_row(starred=True, users=[1]).set == {"starred": True, "users": [1]}


def test_row_parser_is_reusable() -> None:
    parser = RowParser(RUNS, "run_id", "r.csv")
    first = parser.parse(RawRow(1, {"run_id": RUN, "name": "A"}))
    second = parser.parse(RawRow(2, {"run_id": RUN, "name": "B"}))
    assert (first.row, first.set, second.row, second.set) == (1, {"name": "A"}, 2, {"name": "B"})


# -- end to end --------------------------------------------------------------------------------


def test_file_to_changes(tmp_path: Path) -> None:
    path = tmp_path / "owners.csv"
    path.write_text(
        "\ufeffrun_id,owner_id,add_users\r\n"
        f"{RUN},12,\r\n"
        f"{RUN.upper()},,3;4\r\n"
        f"{RUN},bob,\r\n"
        f"{RUN}\r\n",
        encoding="utf-8",
        newline="",
    )
    source = InputFile(path)
    summary = source.scan()
    id_column = check_columns(RUNS, summary.columns, source.name)
    results: list[Change | str] = []
    for raw in source.rows():
        try:
            results.append(parse_row(RUNS, raw, id_column, source.name, summary.format))
        except RowInvalid as exc:
            results.append(str(exc))
    assert results == [
        Change(row=1, record_id=RUN, set={"owner_id": 12}),
        Change(row=2, record_id=RUN, set={}, add_users=(3, 4)),
        'owners.csv: row 3, column "owner_id": expected a user id (positive integer) or a '
        'member\'s email, got "bob"',
        "owners.csv: row 4 (line 5): 1 cell where the header has 3",
    ]


def test_jsonl_file_to_changes(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text(
        f'{{"id": "{RUN}", "starred": true, "users": [1, "2"]}}\n\n'
        f'{{"id": "{RUN}", "starred": "yes"}}\n',
        encoding="utf-8",
    )
    source = InputFile(path)
    summary = source.scan()
    id_column = check_columns(RUNS, summary.columns, source.name)
    rows = list(source.rows())
    assert parse_row(RUNS, rows[0], id_column, source.name, summary.format) == Change(
        row=1, record_id=RUN, set={"starred": True, "users": [1, 2]}
    )
    with pytest.raises(RowInvalid, match=r'row 2, column "starred": expected true or false'):
        parse_row(RUNS, rows[1], id_column, source.name, summary.format)
