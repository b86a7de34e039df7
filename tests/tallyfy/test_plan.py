"""The pure core, called directly: planning a PUT (`plan_update`), checking the server's
answer (`unapplied`) and detecting a person's edit (`find_conflict`). Each case is a row
of a table; the end-to-end tests show the same rules through a real job."""

from __future__ import annotations

from typing import Any

import pytest

from bulk.engine.errors import PlanError
from bulk.tallyfy.client import record_check
from bulk.tallyfy.compare import same_value
from bulk.tallyfy.expect import find_conflict
from bulk.tallyfy.plan import LeftAlone, NobodyLeft, Plan, plan_update, unapplied
from bulk.tallyfy.rows import Change
from bulk.tallyfy.targets import RUNS, TASKS, TEMPLATES

RID = "a" * 32
GROUP = "b" * 32


def run(**fields: Any) -> dict[str, Any]:
    return {"id": RID, "name": "Old", "users": [1, 2], "groups": [GROUP], **fields}


def change(**fields: Any) -> Change:
    values: dict[str, Any] = {"row": 1, "record_id": RID, "set": {}}
    values.update(fields)
    return Change(**values)


# -- plan_update: (record, change) -> the body sent, or None ---------------------------------

PLANS = [
    # A rename keeps every member and group: a PUT without them would strip them all.
    ("rename keeps members", RUNS, run(), change(set={"name": "New"}),
     {"name": "New", "users": [1, 2], "groups": [GROUP]}),
    # Deltas merge into the list as read, never replace it.
    ("add a user", RUNS, run(), change(add_users=(3,)),
     {"users": [1, 2, 3], "groups": [GROUP]}),
    ("remove a user", RUNS, run(), change(remove_users=(1,)),
     {"users": [2], "groups": [GROUP]}),
    ("add a group", RUNS, run(groups=[]), change(add_groups=(GROUP,)),
     {"users": [1, 2], "groups": [GROUP]}),
    # A user id as the API's string is the same user as the row's number.
    ("adding a member already there as a string", RUNS, run(users=["1", "2"]),
     change(add_users=(1,)), None),
    ("a full users list replaces, groups kept", RUNS, run(), change(set={"users": [5]}),
     {"users": [5], "groups": [GROUP]}),
    # Already as asked: nothing to send.
    ("nothing to change", RUNS, run(), change(set={"name": "Old"}), None),
    ("owner as a string is the same owner", RUNS, run(owner_id="7"),
     change(set={"owner_id": 7}), None),
    ("a list in another order is the same list", RUNS, run(users=[2, 1]),
     change(set={"users": [1, 2]}), None),
    # Templates always carry their title.
    ("template keeps its title", TEMPLATES, {"id": RID, "title": "T", "users": [], "groups": [],
                                             "summary": "a"},
     change(set={"summary": "b"}),
     {"summary": "b", "users": [], "groups": [], "title": "T"}),
    # A task sends its whole owners object, and its title and deadline.
    ("task sends owners whole", TASKS,
     {"id": RID, "title": "T", "deadline": "2030-01-01T00:00:00Z", "status": "not-started",
      "owners": {"users": [1], "guests": ["g@x.io"], "groups": []}},
     change(add_users=(2,)),
     {"owners": {"users": [1, 2], "guests": ["g@x.io"], "groups": []}, "title": "T",
      "deadline": "2030-01-01T00:00:00Z"}),
    ("task deadline in another spelling is the same", TASKS,
     {"id": RID, "title": "T", "deadline": "2030-01-01T00:00:00.000Z", "status": "x",
      "owners": {"users": [1], "guests": [], "groups": []}},
     change(set={"deadline": "2030-01-01T00:00:00+00:00"}), None),
    ("kick-off value by key", RUNS,
     run(prerun=[{"timeline_id": "k1", "value": "a"}, {"timeline_id": "k2", "value": "b"}]),
     change(prerun={"k1": "z"}),
     {"prerun": {"k1": "z"}, "users": [1, 2], "groups": [GROUP]}),
]


@pytest.mark.parametrize(("target", "record", "row", "body"), [p[1:] for p in PLANS],
                         ids=[p[0] for p in PLANS])
def test_plan_update(target, record, row, body):
    plan = plan_update(target, target.view(record), row)
    assert (plan.body if plan is not None else None) == body


REFUSED = [
    ("no users in the read", RUNS, {"id": RID, "name": "x", "groups": []},
     change(set={"name": "y"}), PlanError, "did not return users"),
    ("no groups in the read", RUNS, {"id": RID, "name": "x", "users": []},
     change(set={"name": "y"}), PlanError, "did not return groups"),
    ("not a record", RUNS, ["x"], change(set={"name": "y"}), PlanError, "no record"),
    ("unknown kick-off field", RUNS, run(prerun=[{"timeline_id": "k1", "value": "a"}]),
     change(prerun={"nope": 1}), PlanError, "no kick-off field nope"),
    ("template without its title", TEMPLATES, {"id": RID, "users": [], "groups": []},
     change(set={"summary": "b"}), PlanError, "which every PUT needs"),
    ("completed task left alone", TASKS,
     {"id": RID, "title": "T", "deadline": "d", "status": "completed",
      "owners": {"users": [1], "guests": [], "groups": []}},
     change(set={"title": "U"}), LeftAlone, "left alone"),
    ("task with nobody left", TASKS,
     {"id": RID, "title": "T", "deadline": "d", "status": "active",
      "owners": {"users": [1], "guests": [], "groups": []}},
     change(remove_users=(1,)), NobodyLeft, "nobody assigned"),
]


@pytest.mark.parametrize(("target", "record", "row", "error", "says"),
                         [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_plan_update_refuses(target, record, row, error, says):
    with pytest.raises(error, match=says):
        plan_update(target, target.view(record), row)


def test_a_completed_task_is_changed_when_the_job_asks():
    record = {"id": RID, "title": "T", "deadline": "d", "status": "completed",
              "owners": {"users": [1], "guests": [], "groups": []}}
    plan = plan_update(TASKS, TASKS.view(record), change(set={"title": "U"}), include_done=True)
    assert plan is not None and plan.after == {"title": "U"}


def test_before_and_after_hold_only_what_changes():
    plan = plan_update(RUNS, run(), change(set={"name": "New"}, add_users=(3,)))
    assert plan is not None
    assert plan.before == {"name": "Old", "users": [1, 2]}
    assert plan.after == {"name": "New", "users": [1, 2, 3]}


# -- unapplied: what the server's answer shows it did not apply ------------------------------

PLAN = Plan(body={}, before={"name": "Old", "users": [1]},
            after={"name": "New", "users": [1, 2]})
ANSWERS = [
    ("as asked", {"name": "New", "users": [1, 2]}, []),
    ("users as strings, other order", {"name": "New", "users": ["2", "1"]}, []),
    ("the name dropped", {"name": "Old", "users": [1, 2]}, ["name"]),
    ("a member dropped", {"name": "New", "users": [1]}, ["users"]),
    # A field the answer does not show is not judged here (the client's check reads back).
    ("a field not shown", {"users": [1, 2]}, []),
    ("not an object", None, []),
]


@pytest.mark.parametrize(("written", "wrong"), [a[1:] for a in ANSWERS],
                         ids=[a[0] for a in ANSWERS])
def test_unapplied(written, wrong):
    assert unapplied(PLAN, written) == wrong


def test_unapplied_kick_off_values():
    plan = Plan(body={}, before={"prerun": {"k": "a"}}, after={"prerun": {"k": "b"}})
    assert unapplied(plan, {"prerun": [{"timeline_id": "k", "value": "b"}]}) == []
    assert unapplied(plan, {"prerun": [{"timeline_id": "k", "value": "a"}]}) == ["prerun"]


# -- find_conflict: the record no longer is what the row expected ----------------------------

CONFLICTS = [
    ("as expected", run(), {"name": "Old"}, None),
    ("renamed since", run(name="Edited"), {"name": "Old"}, '"name" was expected'),
    ("owner as a string", run(owner_id="7"), {"owner_id": 7}, None),
    ("members in another order", run(users=[2, 1]), {"users": [1, 2]}, None),
    ("a member added since", run(users=[1, 2, 3]), {"users": [1, 2]}, '"users"'),
    ("expected empty, now set", run(summary="x"), {"summary": None}, '"summary"'),
    ("kick-off value as expected", run(prerun={"k": "a"}), {"prerun": {"k": "a"}}, None),
    ("kick-off value changed", run(prerun={"k": "b"}), {"prerun": {"k": "a"}}, '"prerun.k"'),
    ("kick-off field gone", run(prerun={}), {"prerun": {"k": "a"}}, "no such field"),
    ("the first of two, by name", run(name="E", summary="E"),
     {"summary": "S", "name": "N"}, '"name"'),
]


@pytest.mark.parametrize(("record", "expect", "says"), [c[1:] for c in CONFLICTS],
                         ids=[c[0] for c in CONFLICTS])
def test_find_conflict(record, expect, says):
    found = find_conflict(record, expect)
    if says is None:
        assert found is None
    else:
        assert found is not None and says in found and "nothing sent" in found


@pytest.mark.parametrize(("field", "a", "b", "same"), [
    ("users", [1, "2"], ["2", 1], True),
    ("guests", ["A@x.io"], ["a@x.io"], True),
    ("groups", [GROUP], [], False),
    ("owner_id", "12", 12, True),
    ("deadline", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000+00:00", True),
    ("deadline", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", False),
    ("name", "a", "A", False),
    ("summary", None, "", False),
])
def test_same_value(field, a, b, same):
    assert same_value(field, a, b) is same


# -- record_check: is a 2xx answer the record asked for? --------------------------------------

CHECKS = [
    ("the record", {"data": {"id": RID, "users": [], "groups": []}}, None),
    ("flat, id in capitals", {"id": RID.upper(), "users": [], "groups": []}, None),
    ("empty body", None, "an empty body"),
    ("HTML", "<html>", "not JSON"),
    ("empty data", {"data": {}}, "no record"),
    ("another record", {"data": {"id": "c" * 32, "users": [], "groups": []}}, "another record"),
    ("no id", {"data": {"users": [], "groups": []}}, "without an id"),
    ("groups missing", {"data": {"id": RID, "users": []}}, "lacks groups"),
]


@pytest.mark.parametrize(("data", "reason"), [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS])
def test_record_check(data, reason):
    found = record_check(RID, ("users", "groups"))(data)
    assert found is None if reason is None else reason in found
