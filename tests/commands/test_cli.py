"""The command line, driven with CliRunner against a real sandbox (served from a thread)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from bulk.cli import main
from tests.support.helpers import TOKEN, env_for, run_ids, write_csv, write_jsonl


def invoke(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_apply_prints_a_one_line_summary_and_exits_0(threaded_sandbox, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, "CLI"] for rid in run_ids(threaded_sandbox, 5)])

    result = invoke(["apply", "--input", str(path), "--rate", "1000"], env_for(threaded_sandbox))

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("done: 5 rows: ok 5, unchanged 0, invalid 0, failed 0")
    assert str(path) + ".ledger.db" in lines[0]


def test_bad_rows_are_recorded_and_the_good_ones_go_on(threaded_sandbox, tmp_path: Path) -> None:
    ids = run_ids(threaded_sandbox, 3)
    path = tmp_path / "bad.csv"
    path.write_text(f"id,name\n{ids[0]},Good\nnot-an-id,Bad\n{ids[1]},Too,Many\n{ids[2]},Fine\n",
                    encoding="utf-8")

    result = invoke(["apply", "--input", str(path), "--rate", "1000"], env_for(threaded_sandbox))

    assert result.exit_code == 1
    exported = invoke(["export", str(path) + ".ledger.db"], {})
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["ok", "invalid", "invalid", "ok"]
    assert "row 2" in rows[1]["error"] and "id" in rows[1]["error"]
    assert "row 3" in rows[2]["error"]
    assert set(rows[0]) >= {"row", "id", "status", "http_status", "attempts", "error",
                            "before", "after"}


def test_unknown_column_exits_2_with_one_line_and_sends_nothing(threaded_sandbox, tmp_path):
    rid = run_ids(threaded_sandbox, 1)[0]
    path = write_csv(tmp_path / "typo.csv", ["id", "nmae"], [[rid, "x"]])

    result = invoke(["apply", "--input", str(path)], env_for(threaded_sandbox))

    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nmae" in result.stderr and "typo.csv" in result.stderr
    assert "Traceback" not in result.output
    assert threaded_sandbox.stats.requests == 0


def test_unreadable_input_exits_2(threaded_sandbox, tmp_path: Path) -> None:
    env = env_for(threaded_sandbox)
    missing = invoke(["apply", "--input", str(tmp_path / "nope.csv")], env)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    blank = invoke(["apply", "--input", str(empty)], env)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"id": "\xff\xfe"}\n')
    undecodable = invoke(["apply", "--input", str(broken)], env)

    for result, name in ((missing, "nope.csv"), (blank, "empty.csv"), (undecodable, "broken")):
        assert result.exit_code == 2, result.output
        assert name in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [["a" * 32, "x"]])
    env = {"TALLYFY_ACCESS_TOKEN": TOKEN, "TALLYFY_ORG_ID": "b" * 32,
           "TALLYFY_BASE_URL": "http://api.example.com/api"}

    result = invoke(["apply", "--input", str(path)], env)

    assert result.exit_code == 2
    assert "plain http" in result.stderr
    assert TOKEN not in result.output


def test_a_missing_token_exits_2(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [["a" * 32, "x"]])
    result = invoke(["apply", "--input", str(path)],
                    {"TALLYFY_ACCESS_TOKEN": "", "TALLYFY_ORG_ID": "b" * 32})
    assert result.exit_code == 2 and "TALLYFY_ACCESS_TOKEN" in result.stderr


def test_a_wrong_token_aborts_with_exit_3_and_never_shows_the_token(threaded_sandbox, tmp_path):
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, "x"] for rid in run_ids(threaded_sandbox, 20)])
    wrong = "wrong-" + TOKEN
    env = {**env_for(threaded_sandbox), "TALLYFY_ACCESS_TOKEN": wrong}

    result = invoke(["apply", "--input", str(path), "--concurrency", "2"], env)

    assert result.exit_code == 3
    assert "aborted" in result.stdout and "authentication" in result.stdout
    assert wrong not in result.output and TOKEN not in result.output
    ledger = Path(str(path) + ".ledger.db")
    exported = invoke(["export", str(ledger)], {}).stdout
    statuses = {json.loads(line)["status"] for line in exported.splitlines()}
    assert statuses <= {"pending"}, "a 401 must not mark rows failed"
    assert threaded_sandbox.stats.requests <= 4, "the job must stop at the first 401s"
    for leftover in tmp_path.iterdir():
        assert wrong.encode() not in leftover.read_bytes()
        assert TOKEN.encode() not in leftover.read_bytes()


def test_the_token_is_in_no_output_and_no_ledger(threaded_sandbox, tmp_path: Path) -> None:
    ids = run_ids(threaded_sandbox, 4)
    threaded_sandbox.mark_forbidden(ids[0])
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": rid, "name": "T"} for rid in ids]
                       + ['{"id": 5}', "[1, 2]"])
    env = env_for(threaded_sandbox)

    outputs = [invoke(["apply", "--input", str(path), "--rate", "1000"], env).output]
    ledger = str(path) + ".ledger.db"
    outputs.append(invoke(["status", ledger], env).output)
    outputs.append(invoke(["export", ledger], env).output)
    outputs.append(invoke(["export", ledger, "--format", "csv"], env).output)

    assert all(TOKEN not in text for text in outputs)
    for produced in tmp_path.iterdir():
        assert TOKEN.encode() not in produced.read_bytes(), produced
    assert "forbidden" in outputs[2].lower() or "403" in outputs[2]


def test_status_shows_counts_fingerprint_and_times(threaded_sandbox, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, "S"] for rid in run_ids(threaded_sandbox, 3)] + [["bad", "x"]])
    invoke(["apply", "--input", str(path), "--rate", "1000"], env_for(threaded_sandbox))

    result = invoke(["status", str(path) + ".ledger.db"], {})

    assert result.exit_code == 0
    text = result.stdout
    assert "ok         3" in text and "invalid    1" in text
    assert "sha256" in text and "runs" in text and threaded_sandbox.org_id in text
    assert "started:" in text and "ended:" in text and "(finished)" in text


def test_failed_rows_exported_as_csv_are_a_valid_input(threaded_sandbox, tmp_path: Path) -> None:
    ids = run_ids(threaded_sandbox, 3)
    threaded_sandbox.mark_forbidden(ids[1])
    path = write_csv(tmp_path / "r.csv", ["run_id", "name", "starred"],
                     [[rid, f"E{i}", "yes"] for i, rid in enumerate(ids)])
    env = env_for(threaded_sandbox)
    assert invoke(["apply", "--input", str(path), "--rate", "1000"], env).exit_code == 1
    retry = tmp_path / "retry.csv"

    exported = invoke(["export", str(path) + ".ledger.db", "--status", "failed", "--format",
                       "csv", "--output", str(retry)], env)
    assert exported.exit_code == 0
    threaded_sandbox.mark_forbidden(ids[1], forbidden=False)
    result = invoke(["apply", "--input", str(retry), "--rate", "1000"], env)

    assert result.exit_code == 0, result.output
    record = threaded_sandbox.store.runs[ids[1]]
    assert record["name"] == "E1" and record["starred"] is True


def test_job_file_settings_and_flags_override_them(threaded_sandbox, tmp_path: Path) -> None:
    rows = [[rid, "J"] for rid in run_ids(threaded_sandbox, 2)]
    write_csv(tmp_path / "r.csv", ["id", "name"], rows)
    job = tmp_path / "job.toml"
    job.write_text('input = "r.csv"\ntarget = "templates"\nrate = 1000\n', encoding="utf-8")
    env = env_for(threaded_sandbox)

    # The job file says templates; the flag says runs and wins.
    result = invoke(["apply", str(job), "--target", "runs", "--ledger", str(tmp_path / "j.db")],
                    env)
    assert result.exit_code == 0, result.output

    job.write_text('input = "r.csv"\nconcurency = 4\n', encoding="utf-8")
    bad = invoke(["apply", str(job)], env)
    assert bad.exit_code == 2 and "concurency" in bad.stderr


def test_every_command_has_help_with_an_example() -> None:
    for command in ("apply", "status", "export", "demo", "sandbox"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output, command


def test_status_and_export_refuse_what_is_not_a_ledger(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello", encoding="utf-8")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")

    for target in (text, other, tmp_path / "missing.db"):
        for command in (["status", str(target)], ["export", str(target)]):
            result = invoke(command, {})
            assert result.exit_code == 2, result.output
            assert str(target) in result.stderr
    with sqlite3.connect(other) as db:  # looked at, not changed
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["t"]


def test_a_ledger_path_that_is_not_a_database_exits_2(threaded_sandbox, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"], [[run_ids(threaded_sandbox, 1)[0], "x"]])
    bogus = tmp_path / "ledger.txt"
    bogus.write_text("not a database, just some text " * 100, encoding="utf-8")

    result = invoke(["apply", "--input", str(path), "--ledger", str(bogus)],
                    env_for(threaded_sandbox))

    assert result.exit_code == 2
    assert "ledger.txt" in result.stderr and "Traceback" not in result.output
    assert threaded_sandbox.stats.requests == 0


def test_a_ledger_of_another_job_exits_2_naming_fresh(threaded_sandbox, tmp_path: Path) -> None:
    rid = run_ids(threaded_sandbox, 1)[0]
    env = env_for(threaded_sandbox)
    ledger = str(tmp_path / "shared.db")
    one = write_csv(tmp_path / "one.csv", ["id", "name"], [[rid, "One"]])
    two = write_csv(tmp_path / "two.csv", ["id", "name"], [[rid, "Two"]])
    assert invoke(["apply", "--input", str(one), "--ledger", ledger], env).exit_code == 0

    refused = invoke(["apply", "--input", str(two), "--ledger", ledger], env)
    fresh = invoke(["apply", "--input", str(two), "--ledger", ledger, "--fresh"], env)

    assert refused.exit_code == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--fresh" in refused.stderr
    assert fresh.exit_code == 0
    assert threaded_sandbox.store.runs[rid]["name"] == "Two"


def test_dry_run_flag_writes_nothing_and_says_so(threaded_sandbox, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, "Dry"] for rid in run_ids(threaded_sandbox, 3)])

    result = invoke(["apply", "--input", str(path), "--dry-run"], env_for(threaded_sandbox))

    assert result.exit_code == 0
    assert result.stdout.startswith("dry run done, nothing written (ok = would change): 3 rows")
    assert sum(threaded_sandbox.stats.writes_per_record.values()) == 0
    exported = invoke(["export", str(path) + ".dry-run.ledger.db"], {}).stdout
    assert exported.count('"after": {"name": "Dry"}') == 3
