"""The planted-bug table stays true to the code, and the runner fails loudly."""

from __future__ import annotations

from pathlib import Path

from tests import run_mutants
from tests.mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[1]


def test_every_patch_still_applies_to_the_code_it_names() -> None:
    # A patch whose text moved would plant nothing: `make test` says so, not only
    # `make mutants`.
    stale = {m.name: run_mutants.stale_reason(m) for m in MUTANTS}
    assert {name: why for name, why in stale.items() if why} == {}
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)


def test_a_moved_patch_is_named_as_stale() -> None:
    moved = Mutant("moved", "-", "bulk/tallyfy/plan.py", old="no such text\n", new="x\n",
                   tests=("tests/tallyfy/test_safety.py::test_rename_keeps_every_member_of_every_run",))
    assert "no longer in bulk/tallyfy/plan.py" in run_mutants.stale_reason(moved)
    gone = Mutant("gone", "-", "bulk/tallyfy/plan.py", old="    return wrong\n", new="x\n",
                  tests=("tests/tallyfy/test_safety.py::test_that_was_renamed",))
    assert "test_that_was_renamed does not exist" in run_mutants.stale_reason(gone)


def test_a_survivor_or_a_stale_patch_fails_the_run_and_the_tree_is_untouched(
    monkeypatch, capsys
) -> None:
    plan = ROOT / "bulk/tallyfy/plan.py"
    before = plan.read_text(encoding="utf-8")
    harmless = Mutant("harmless", "nothing", "bulk/tallyfy/plan.py", old="    return wrong\n",
                      new="    return wrong  # planted, changes nothing\n",
                      tests=("tests/engine/test_input_reader.py::test_abandoned_rows_iterator_"
                             "closes_its_file",))
    moved = Mutant("moved", "-", "bulk/tallyfy/plan.py", old="no such text\n", new="x\n",
                   tests=harmless.tests)
    monkeypatch.setattr(run_mutants, "MUTANTS", (harmless, moved))

    code = run_mutants.main([])

    out = capsys.readouterr().out
    assert code == 1
    assert "SURVIVED  harmless" in out and "STALE     moved" in out
    assert "2 mutants: 0 caught, 1 survived, 1 stale, 0 error" in out
    assert plan.read_text(encoding="utf-8") == before
