"""`bulk select`: exactly the records the filters say, a ready apply input, nothing half written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.cli import main
from bulk.engine.clock import SkipClock
from bulk.engine.errors import AuthError, SelectFailed
from bulk.engine.retry import RetryPolicy
from bulk.sandbox import Sandbox
from bulk.tallyfy.select_query import SelectError, build_selection
from bulk.tallyfy.select_scan import SelectOptions, select
from bulk.tallyfy.targets import RUNS, TEMPLATES
from tests.support.helpers import (
    config,
    connection_to,
    env_for,
    on_records,
    run_job,
    serving,
)


async def run_select(sandbox, path: Path, target=RUNS, *, token=None, limit=None, **filters):
    selection = build_selection(target, **filters)
    options = SelectOptions(output=path, limit=limit, rate=10_000.0, burst=100,
                            backoff=RetryPolicy(base=0.01, cap=0.05))
    return await select(selection, options, connection_to(sandbox, token), clock=SkipClock())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def ids_of(path: Path, column: str = "run_id") -> list[str]:
    return [row[column] for row in read_csv(path)]


@pytest.fixture
async def busy(tmp_path) -> Sandbox:
    """A bigger org, so every filter has records on both sides of it (and several pages)."""
    async with Sandbox(config(runs=260, templates=30), host="127.0.0.1", port=0) as running:
        yield running


async def test_owner_is_exactly_the_owner_though_the_api_also_matches_members(busy, tmp_path):
    store = busy.store
    owner = max(store.members, key=lambda m: sum(
        m in r["users"] or m in store.task_assignees.get(r["id"], ()) for r in store.runs.values()))
    owned = [rid for rid, r in store.runs.items() if r["owner_id"] == owner]
    widened = [rid for rid, r in store.runs.items()
               if owner in {r["owner_id"], *r["users"], *store.task_assignees.get(rid, ())}]
    assert len(widened) > len(owned) > 0  # owners= would bring in members and assignees

    summary = await run_select(busy, tmp_path / "o.csv", owner=owner)

    assert ids_of(tmp_path / "o.csv") == owned
    assert summary.selected == len(owned) and summary.scanned == len(widened)
    assert summary.reads == 0  # the list items were whole: one request a page
    assert summary.requests == summary.pages == 1


@pytest.mark.parametrize("name", ["member", "group", "status", "template", "name", "where"])
async def test_each_filter_returns_exactly_the_matching_records(busy, tmp_path, name):
    store = busy.store
    runs = list(store.runs.values())
    some = runs[7]
    cases = {
        "member": ({"member": some["users"][0]}, lambda r: some["users"][0] in r["users"]),
        "group": ({"group": next(iter(store.groups)).upper()},
                  lambda r: next(iter(store.groups)) in r["groups"]),
        "status": ({"statuses": ("problem", "delayed")},
                   lambda r: r["status"] in ("problem", "delayed")),
        "template": ({"template": some["checklist_id"]},
                     lambda r: r["checklist_id"] == some["checklist_id"]),
        "name": ({"name": "oNBOARDing"}, lambda r: "onboarding" in r["name"].lower()),
        "where": ({"where": ("starred=true", f"owner_id={some['owner_id']}")},
                  lambda r: r["starred"] and r["owner_id"] == some["owner_id"]),
    }
    filters, wanted = cases[name]
    expected = [r["id"] for r in runs if wanted(r)]
    assert 0 < len(expected) < len(runs)

    await run_select(busy, tmp_path / "f.csv", **filters)

    assert ids_of(tmp_path / "f.csv") == expected


async def test_where_on_a_read_only_field_an_empty_value_and_a_limit(busy, tmp_path):
    store = busy.store
    first = next(iter(store.runs.values()))
    busy.edit_as_person(first["id"], summary="")
    second = list(store.runs.values())[3]
    busy.edit_as_person(second["id"], summary=None)

    await run_select(busy, tmp_path / "e.csv", where=("summary=",))
    assert ids_of(tmp_path / "e.csv") == [first["id"], second["id"]]

    await run_select(busy, tmp_path / "i.csv", where=(f"increment_id={first['increment_id']}",))
    assert ids_of(tmp_path / "i.csv") == [first["id"]]

    summary = await run_select(busy, tmp_path / "l.csv", limit=150)
    assert len(ids_of(tmp_path / "l.csv")) == 150
    assert summary.pages == 2  # stopped paging once the limit was reached


async def test_templates_by_owner_and_title(busy, tmp_path):
    store = busy.store
    owner = next(iter(store.checklists.values()))["owner_id"]
    expected = [c["id"] for c in store.checklists.values()
                if c["owner_id"] == owner and "on" in c["title"].lower()]

    await run_select(busy, tmp_path / "t.csv", TEMPLATES, owner=owner, name="ON")

    rows = read_csv(tmp_path / "t.csv")
    assert [row["checklist_id"] for row in rows] == expected
    assert list(rows[0]) == ["checklist_id", "ref.title", "expect.title", "expect.owner_id",
                             "expect.users", "expect.groups"]
    assert [row["ref.title"] for row in rows] == [store.checklists[i]["title"] for i in expected]


async def test_set_writes_a_ready_input_guarded_by_expectations(sandbox, tmp_path):
    store = sandbox.store
    owner = next(iter(store.runs.values()))["owner_id"]
    new_owner = next(m for m in store.members if m != owner)
    path = tmp_path / "move.csv"
    await run_select(sandbox, path, owner=owner, sets=(
        "name={name} (FY2027)", f"owner_id={new_owner}", f"add_users={new_owner}",
        f"remove_users={owner}"))
    rows = read_csv(path)
    assert list(rows[0]) == ["run_id", "ref.name", "name", "owner_id", "add_users",
                             "remove_users", "expect.name", "expect.owner_id"]
    first = store.runs[rows[0]["run_id"]]
    assert rows[0]["name"] == f"{first['name']} (FY2027)"
    assert rows[0]["expect.name"] == first["name"]
    assert rows[0]["expect.owner_id"] == str(owner)

    # Someone renames one of them between select and apply.
    edited = rows[-1]["run_id"]
    sandbox.edit_as_person(edited, name="Renamed in the web app")
    before = {rid: dict(r) for rid, r in store.runs.items()}

    _, entries = await run_job(sandbox, path)

    statuses = {e.record_id: e.status for e in entries}
    assert statuses.pop(edited) == "conflict"
    assert set(statuses.values()) == {"ok"}
    assert sandbox.stats.writes_per_record.get(edited, 0) == 0
    assert store.runs[edited]["name"] == "Renamed in the web app"
    for rid in statuses:
        run = store.runs[rid]
        assert run["name"] == before[rid]["name"] + " (FY2027)"
        assert run["owner_id"] == new_owner
        assert set(run["users"]) == (set(before[rid]["users"]) | {new_owner}) - {owner}


async def test_jsonl_output_is_typed_and_applies(sandbox, tmp_path):
    template = next(iter(sandbox.store.checklists.values()))
    path = tmp_path / "t.jsonl"
    await run_select(sandbox, path, TEMPLATES, where=(f"id={template['id']}",),
                     sets=("starred=yes", "summary={title}: {{reviewed}}"))

    (line,) = path.read_text().splitlines()
    row = json.loads(line)
    assert row["starred"] is True
    assert row["summary"] == f"{template['title']}: {{reviewed}}"
    assert row["expect"] == {"starred": template["starred"], "summary": template["summary"]}
    _, entries = await run_job(sandbox, path, target="templates")
    assert entries[0].status in ("ok",), entries[0].error


async def test_a_failed_select_writes_nothing(sandbox, tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("the previous file\n")
    with pytest.raises(AuthError):
        await run_select(sandbox, path, token="wrong")
    sandbox.faults = sandbox.faults.__class__(error_rate=1.0)
    with pytest.raises(SelectFailed, match="HTTP 5"):
        await run_select(sandbox, path)

    assert path.read_text() == "the previous file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left


async def test_select_waits_out_429s_and_still_gets_every_page(tmp_path):
    # One virtual clock for both sides, as in the apply fault tests: no real sleeping.
    clock = SkipClock()
    sandbox_config = config(runs=450, rate_limit=1, burst=1, clock=clock.now)
    async with Sandbox(sandbox_config, host="127.0.0.1", port=0) as sandbox:
        options = SelectOptions(output=tmp_path / "p.csv", rate=50.0, burst=5,
                                backoff=RetryPolicy(base=0.01, cap=0.05))
        summary = await select(build_selection(RUNS), options, connection_to(sandbox),
                               clock=clock)

        assert sandbox.stats.rate_limited > 0
        assert summary.selected == 450 and summary.pages == 5
        assert ids_of(tmp_path / "p.csv") == list(sandbox.store.runs)
        assert summary.requests == 5 + sandbox.stats.rate_limited


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "nmae=x"], '"nmae" is not a field runs can change (did you mean "name"?)'),
    (["--set", "owner_id=bob"], "--set owner_id=bob: expected a user id"),
    (["--set", "users=[]"], "an empty list would remove every one"),
    (["--set", "name={nam}"], '"nam" is not a field of runs (did you mean "name"?)'),
    (["--set", "name={name"], "a lone '{'"),
    (["--set", "name"], "expected FIELD=VALUE"),
    (["--set", "summary="], "the value is empty"),
    (["--where", "owner=1"], '"owner" is not a field of runs (did you mean "owner_id"?)'),
    (["--where", "starred=maybe"], "--where starred=maybe: expected true/false"),
    (["--columns", "name,titel"], '"titel" is not a field runs can change'),
    (["--template", "abc"], "a template id is 32 hex characters"),
    (["-o", "out.txt"], "cannot tell the format"),
])
def test_bad_options_are_refused_with_one_line_before_any_request(
        threaded_sandbox, tmp_path, args, message):
    output = ["-o", str(tmp_path / "out.csv")] if "-o" not in args else []
    result = CliRunner().invoke(main, ["select", "runs", *output, *args],
                                env=env_for(threaded_sandbox), catch_exceptions=False)

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert threaded_sandbox.stats.requests == 0
    assert not (tmp_path / "out.csv").exists()


def test_runs_only_filters_are_refused_for_templates() -> None:
    with pytest.raises(SelectError, match="--status applies to runs only"):
        build_selection(TEMPLATES, statuses=("active",))


def test_cli_select_then_apply(threaded_sandbox, tmp_path) -> None:
    env = env_for(threaded_sandbox)
    path = tmp_path / "sel.csv"
    runner = CliRunner()
    # --rate auto, as apply takes it (it once reached the pacer as the string "auto").
    result = runner.invoke(main, ["select", "runs", "--status", "problem", "-o", str(path),
                                  "--set", "starred=true", "--rate", "auto", "-q"], env=env,
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("selected ")
    expected = [r["id"] for r in threaded_sandbox.store.runs.values() if r["status"] == "problem"]
    assert ids_of(path) == expected
    applied = runner.invoke(main, ["apply", "--input", str(path), "--rate", "1000", "-q"],
                            env=env, catch_exceptions=False)
    assert applied.exit_code == 0, applied.output


async def test_select_streams_20000_records_in_flat_memory(tmp_path):
    import asyncio
    import os
    import signal
    import sys
    import tracemalloc

    from bulk.tallyfy.connection import Connection, Secret
    from tests.support.helpers import ROOT

    # The sandbox serves from its own process, so only the select's own memory is traced
    # (and tracing does not slow the server down).
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulk", "sandbox", "--host", "127.0.0.1", "--port", "0",
        "--runs", "20000", "--templates", "10", "--seed", "3", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        env = {}
        for _ in range(3):
            line = (await asyncio.wait_for(server.stdout.readline(), 50)).decode()
            name, _, value = line.removeprefix("export ").strip().partition("=")
            env[name] = value
        connection = Connection(env["TALLYFY_BASE_URL"], env["TALLYFY_ORG_ID"],
                                Secret(env["TALLYFY_ACCESS_TOKEN"]))
        peaks = {}
        tracemalloc.start()
        try:
            for limit in (1_000, None):
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                options = SelectOptions(output=tmp_path / f"{limit}.csv", limit=limit,
                                        rate=10_000.0, burst=100)
                summary = await select(build_selection(RUNS), options, connection,
                                       clock=SkipClock())
                peaks[limit] = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), 30)

    assert summary.selected == 20_000 and summary.pages == 200
    assert len(ids_of(tmp_path / "None.csv")) == 20_000
    # Twenty times the records, the same peak (one page at a time, rows written as they
    # come): holding the records would cost tens of megabytes here.
    assert peaks[None] < peaks[1_000] + 1_000_000, peaks
    assert peaks[None] < 8_000_000, peaks


async def test_list_items_without_a_needed_field_are_read_whole(tmp_path):
    # Production's list items may be slimmer than a record: a small server whose list
    # gives only id and name (and no pagination meta) makes select read each record.
    from aiohttp import web

    from bulk.tallyfy.connection import Connection, Secret

    org = "ab" * 16
    records = {f"{n:032x}": {"id": f"{n:032x}", "name": f"Run {n}", "owner_id": 7,
                             "users": [7, 8] if n % 2 else [7], "groups": []}
               for n in range(1, 131)}
    gets = []

    async def listing(request):
        page = int(request.query["page"])
        assert request.query["owners"] == "8" and request.query["per_page"] == "100"
        chunk = list(records.values())[(page - 1) * 100: page * 100]
        return web.json_response({"data": [{"id": r["id"], "name": r["name"]} for r in chunk]})

    async def one(request):
        gets.append(request.match_info["rid"])
        return web.json_response({"data": records[request.match_info["rid"]]})

    app = web.Application()
    app.router.add_get(f"/api/organizations/{org}/runs", listing)
    app.router.add_get(f"/api/organizations/{org}/runs/{{rid}}", one)
    async with serving(app) as port:
        connection = Connection(f"http://127.0.0.1:{port}/api", org, Secret("t"))
        options = SelectOptions(output=tmp_path / "m.jsonl", rate=10_000.0, burst=100)
        summary = await select(build_selection(RUNS, member=8, sets=("name={name}!",)),
                               options, connection, clock=SkipClock())

    assert summary.pages == 2 and summary.reads == 130 and len(gets) == 130
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [row["run_id"] for row in rows] == [r["id"] for r in records.values() if 8 in r["users"]]
    assert rows[0] == {"run_id": rows[0]["run_id"], "ref": {"name": "Run 1"},
                       "name": "Run 1!", "expect": {"name": "Run 1"}}


def test_a_wrong_token_exits_3_and_never_shows_the_token(threaded_sandbox, tmp_path) -> None:
    secret = "tok-never-print-me-0123456789"
    env = {**env_for(threaded_sandbox), "TALLYFY_ACCESS_TOKEN": secret}
    result = CliRunner().invoke(main, ["select", "runs", "-o", str(tmp_path / "o.csv")],
                                env=env, catch_exceptions=False)

    assert result.exit_code == 3
    assert "authentication failed" in result.output and "nothing written" in result.output
    assert secret not in result.output
    assert not (tmp_path / "o.csv").exists()


async def test_a_selected_file_edited_like_a_spreadsheet_applies(sandbox, tmp_path) -> None:
    path = tmp_path / "sheet.csv"
    await run_select(sandbox, path, statuses=("active",))
    rows = read_csv(path)
    assert list(rows[0]) == ["run_id", "ref.name", "expect.name", "expect.owner_id",
                             "expect.users", "expect.groups"]
    # The person adds a summary column and fills it on two rows only.
    for n, row in enumerate(rows):
        row["summary"] = "Checked" if n < 2 else ""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    sandbox.reset_stats()

    summary, entries = await run_job(sandbox, path)

    assert [e.status for e in entries[:2]] == ["ok", "ok"], [e.error for e in entries[:2]]
    assert {e.status for e in entries[2:]} == {"unchanged"}
    assert len(on_records(sandbox)) == 4  # a GET and a PUT per filled row, none for others
    assert summary.exit_code == 0


async def test_a_set_value_a_record_cannot_take_stops_the_select_and_writes_nothing(
        sandbox, tmp_path) -> None:
    path = tmp_path / "o.csv"
    with pytest.raises(SelectError, match=r"--set owner_id: record [0-9a-f]{32}: expected a user"):
        await run_select(sandbox, path, sets=("owner_id={summary}",))
    assert not path.exists() and list(tmp_path.iterdir()) == []
