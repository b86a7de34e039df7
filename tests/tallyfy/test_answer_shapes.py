"""Reading production's shapes into one (shapes.py, Target.view) and choice values
(form_values.py), without a server: every shape the sources show, each read the same."""

from __future__ import annotations

import pytest

from bulk.tallyfy import form_values
from bulk.tallyfy.targets import TARGETS

FIELD = "d" * 32
OPTIONS = [{"id": 1, "text": "Low", "value": None}, {"id": 2, "text": "High", "value": None}]


@pytest.mark.parametrize("target", ["runs", "templates"])
def test_member_lists_as_objects_are_read_as_ids(target):
    record = {"id": "1" * 32, "owner_id": {"id": 7, "email": "o@x.org"},
              "users": [{"id": 7, "full_name": "O"}, 8], "groups": [{"id": "2" * 32}]}

    view = TARGETS[target].view(record)

    assert view["users"] == [7, 8] and view["groups"] == ["2" * 32]
    assert view["owner_id"] == 7


def test_task_owners_as_objects_are_read_as_ids_and_guests_by_email():
    record = {"id": "1" * 32, "owners": {"users": [{"id": 1005, "email": "a@x.org"}],
                                         "guests": [{"email": "g@y.org"}], "groups": []}}

    view = TARGETS["tasks"].view(record)

    assert (view["users"], view["guests"], view["groups"]) == ([1005], ["g@y.org"], [])


@pytest.mark.parametrize("include", [
    {"data": [{"id": FIELD, "field_type": "dropdown", "options": OPTIONS,
               "field_value": OPTIONS[1]}]},  # the MCP server's, traced against production
    [{"id": FIELD, "field_type": "dropdown", "options": OPTIONS, "value": OPTIONS[1]}],  # docs
])
def test_form_fields_are_read_in_both_shapes(include):
    view = TARGETS["tasks"].view({"id": "1" * 32, "form_fields": include})

    assert [f["id"] for f in view["form_fields"]] == [FIELD]
    assert view["form_fields"][0]["options"] == OPTIONS
    assert view["taskdata"] == {FIELD: OPTIONS[1]}  # the answer, though taskdata was absent


def test_a_read_without_the_include_has_no_field_list():
    view = TARGETS["tasks"].view({"id": "1" * 32, "taskdata": {FIELD: "x"}})

    assert "form_fields" not in view and view["taskdata"] == {FIELD: "x"}


def test_choice_values_are_built_from_option_texts_and_compared_as_chosen():
    dropdown = {"id": FIELD, "field_type": "dropdown", "options": OPTIONS}
    multi = {**dropdown, "field_type": "multiselect"}
    radio = {**dropdown, "field_type": "radio"}
    whole = [{**OPTIONS[0], "selected": True}, {**OPTIONS[1], "selected": True}]

    assert form_values.to_send(dropdown, " high ") == {"id": 2, "text": "High", "value": None}
    assert form_values.to_send(dropdown, {"id": 1, "text": "Low"})["text"] == "Low"
    assert form_values.to_send(radio, "Low") == "Low"
    assert form_values.to_send(multi, "Low; High") == whole
    assert form_values.to_send(multi, '["High"]')[0]["selected"] is False
    assert form_values.same(multi, whole, "High;Low")
    assert not form_values.same(multi, whole, "High")
    assert form_values.same(dropdown, OPTIONS[1], "High")
    assert form_values.cell(multi, whole) == "Low; High"
    assert form_values.cell(dropdown, OPTIONS[0]) == "Low"
    with pytest.raises(form_values.UnknownOption, match='"Medium" is not an option'):
        form_values.to_send(dropdown, "Medium")


def test_dates_compare_as_instants():
    date = {"id": FIELD, "field_type": "date"}

    assert form_values.same(date, "2024-07-01T09:00:00.000Z", "2024-07-01T11:00:00+02:00")
    assert form_values.same(date, "2024-07-01 09:00:00", "2024-07-01T09:00:00Z")


def test_a_task_write_answer_is_never_evidence_of_its_summary():
    # A task PUT answer omits summary (Tallyfy's MCP server: no update response can ever echo
    # it back); were one to show a value, it would prove nothing: "not shown", read back,
    # never "not applied".
    from bulk.tallyfy.client import record_check

    record_id = "1" * 32
    tasks = record_check(record_id, ("summary", "title"), target=TARGETS["tasks"])
    runs = record_check(record_id, ("summary",), target=TARGETS["runs"])

    assert "never does" in tasks({"data": {"id": record_id, "title": "t", "summary": "old"}})
    assert "never does" in tasks({"data": {"id": record_id, "title": "t"}})
    assert tasks({"data": {"id": record_id, "title": "t"}}).startswith("the answer cannot show")
    assert runs({"data": {"id": record_id, "summary": "new"}}) is None
    assert runs({"data": {"id": record_id}}) == "the record lacks summary"
