"""The organization: deterministic generation, the sample file, loading data files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bulk.sandbox import OrgDataError, Sandbox, SandboxConfig, dump_org, generate_org, load_org

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "org.json"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_same_seed_and_counts_give_byte_identical_json():
    assert dump_org(generate_org(5, 60, 9)) == dump_org(generate_org(5, 60, 9))
    assert dump_org(generate_org(5, 60, 9)) != dump_org(generate_org(6, 60, 9))


def test_more_runs_do_not_change_members_groups_or_templates():
    small, big = generate_org(5, 10, 4), generate_org(5, 50, 4)
    for key in ("org_id", "token", "members", "groups", "checklists", "kickoff_fields"):
        assert small[key] == big[key]


def test_generated_org_is_realistic_and_consistent():
    org = generate_org(2, 300, 20)
    member_ids = {m["id"] for m in org["members"]}
    group_ids = {g["id"] for g in org["groups"]}
    checklists = {c["id"]: c for c in org["checklists"]}

    assert HEX32.match(org["org_id"])
    assert len(org["members"]) == 20 and len(member_ids) == 20
    assert all(isinstance(i, int) for i in member_ids)
    assert len(org["groups"]) == 5 and all(HEX32.match(g) for g in group_ids)
    assert len(org["runs"]) == 300 and len(checklists) == 20
    assert len({r["id"] for r in org["runs"]}) == 300
    for run in org["runs"]:
        assert HEX32.match(run["id"])
        assert 1 <= len(run["users"]) <= 4 and set(run["users"]) <= member_ids
        assert len(run["groups"]) <= 2 and set(run["groups"]) <= group_ids
        assert run["owner_id"] in member_ids
        kickoff = {f["timeline_id"] for f in org["kickoff_fields"][run["checklist_id"]]}
        assert set(run["prerun"]) == kickoff and 2 <= len(kickoff) <= 4
        assert all(isinstance(v, str) for v in run["prerun"].values())
        assert run["last_updated"] >= run["created_at"]
    for checklist in checklists.values():
        assert HEX32.match(checklist["id"]) and checklist["owner_id"] in member_ids
        assert set(checklist["users"]) <= member_ids and set(checklist["groups"]) <= group_ids
    assert len({r["name"] for r in org["runs"]}) == 300
    assert org["runs"][0]["name"] == "Onboarding - Acme"


def test_sample_data_is_what_the_generator_makes_for_seed_7():
    # If this fails, the generator changed and the ids the demo inputs use moved with it:
    # regenerate with `bulk sandbox --runs 40 --templates 12 --seed 7 --export
    # sample_data/org.json` and update the sample inputs.
    text = SAMPLE.read_text(encoding="utf-8")
    assert text == dump_org(generate_org(7, 40, 12))
    assert len(text.encode()) < 100_000
    org = load_org(SAMPLE)
    assert len(org["runs"]) == 40 and len(org["checklists"]) == 12
    assert "Onboarding - Acme" in {r["name"] for r in org["runs"]}


def write(tmp_path: Path, payload) -> Path:
    path = tmp_path / "org.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


MINIMAL = {
    "org_id": "1" * 32,
    "members": [{"id": 7}, {"id": 8}],
    "groups": [{"id": "2" * 32, "name": "Team"}],
    "runs": [{"id": "3" * 32, "name": "Hand made", "users": [7]}],
    "checklists": [{"id": "4" * 32, "title": "Hand made template"}],
}


async def test_a_minimal_hand_written_file_is_served_with_defaults(tmp_path, api_for):
    config = SandboxConfig(data=write(tmp_path, MINIMAL), token="tok")
    async with Sandbox(config) as sandbox:
        api = api_for(sandbox)
        run = await api.get("/runs/" + "3" * 32)
        put = await api.put("/runs/" + "3" * 32, {"owner_id": 8, "prerun": {"x": 1}})
        assert sandbox.org_id == "1" * 32 and sandbox.token == "tok"
    assert run.status == 200
    assert run.data["name"] == "Hand made" and run.data["groups"] == []
    assert run.data["prerun"] == {} and run.data["status"] == "active"
    assert put.status == 200 and put.data["prerun"] == {}


async def test_sample_file_is_served_with_its_own_org_and_token(api_for):
    async with Sandbox(SandboxConfig(data=SAMPLE)) as sandbox:
        org = json.loads(SAMPLE.read_text())
        assert (sandbox.org_id, sandbox.token) == (org["org_id"], org["token"])
        reply = await api_for(sandbox).get(f"/runs/{org['runs'][0]['id']}")
    assert reply.status == 200 and reply.data["name"] == "Onboarding - Acme"


async def test_config_token_and_org_id_win(api_for):
    async with Sandbox(SandboxConfig(runs=3, templates=1, token="t0k", org_id="my-org")) as sb:
        assert (sb.token, sb.org_id) == ("t0k", "my-org")
        assert (await api_for(sb).get("/runs")).status == 200


@pytest.mark.parametrize(("payload", "message"), [
    ("{nope", "not valid JSON"),
    ([], "top level"),
    ({**MINIMAL, "org_id": "ORG"}, "org_id"),
    ({**MINIMAL, "members": [{"id": "7"}]}, "integer id"),
    ({**MINIMAL, "runs": [{"id": "short"}]}, "runs"),
    ({**MINIMAL, "runs": MINIMAL["runs"] * 2}, "twice"),
    ({**MINIMAL, "runs": [{"id": "3" * 32, "prerun": []}]}, "prerun"),
])
def test_bad_data_files_are_refused_with_a_clear_message(tmp_path, payload, message):
    path = write(tmp_path, payload)
    with pytest.raises(OrgDataError, match=message) as caught:
        load_org(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_data_file_is_refused(tmp_path):
    with pytest.raises(OrgDataError, match="cannot read"):
        Sandbox(SandboxConfig(data=tmp_path / "absent.json"))
