"""Settings from job files and flags: one table of ranges, one-line refusals, nothing touched."""

from __future__ import annotations

import json
import logging
import math
import pprint
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk.cli import apply as apply_cmd
from bulk.cli import main
from bulk.engine.errors import ConfigError
from bulk.engine.reader import FORMATS
from bulk.jobfile import load_job_file
from bulk.options import OPTION_SPECS, Bounds
from bulk.tallyfy.client import api_headers
from bulk.tallyfy.connection import Connection, Secret, connection_from_env
from bulk.tallyfy.targets import TARGETS
from tests.support.helpers import TOKEN, env_for, run_ids, write_csv

ENV = {"TALLYFY_ACCESS_TOKEN": TOKEN, "TALLYFY_ORG_ID": "b" * 32,
       # Nothing listens there: a request would fail, so the checks must come first.
       "TALLYFY_BASE_URL": "http://127.0.0.1:9/api"}


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env or ENV, catch_exceptions=False)


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    write_csv(tmp_path / "r.csv", ["id", "name"], [["a" * 32, "x"]])
    return tmp_path


HOSTILE = [
    ('target = "processes"', "target", "runs, templates"),
    ("concurrency = 0", "concurrency", "1 to 256"),
    ("rate = -5", "rate", "0.01 to"),
    ("rate = nan", "rate", "not a finite number"),
    ("rate = inf", "rate", "not a finite number"),
    ("rate = -inf", "rate", "not a finite number"),
    ("rate = 1e400", "rate", "not a finite number"),
    ("rate = true", "rate", "expected a number"),
    ("concurrency = 99999999999999999", "concurrency", "1 to 256"),
    ("concurrency = 2.5", "concurrency", "whole number"),
    ("burst = 0", "burst", "1 to 1000"),
    ("max_attempts = 0", "max_attempts", "1 to 50"),
    ("max-attempts = 51", "max-attempts", "1 to 50"),
    ("timeout = 0", "timeout", "0.1 to 3600"),
    ("timeout = inf", "timeout", "not a finite number"),
    ('format = "xml"', "format", "csv, jsonl"),
    ('org = "  "', "org", "empty"),
    ('base_url = ""', "base_url", "empty"),
    ('ledger = ""', "ledger", "empty"),
    ('ledger = "a\\u0000b"', "ledger", "NUL"),
]


@pytest.mark.parametrize(("line", "key", "says"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_job_file_value_out_of_range_is_one_line_before_the_ledger(job_dir, line, key, says):
    job = job_dir / "job.toml"
    job.write_text(f'input = "r.csv"\n{line}\n', encoding="utf-8")

    result = invoke(["apply", str(job), "-q"])

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "job.toml" in lines[0] and repr(key) in lines[0] and says in lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in job_dir.iterdir()) == ["job.toml", "r.csv"], "no ledger made"


def test_an_empty_input_in_a_job_file_is_refused(job_dir: Path) -> None:
    job = job_dir / "job.toml"
    job.write_text('input = ""\n', encoding="utf-8")

    result = invoke(["apply", str(job)])

    assert result.exit_code == 2
    assert "job.toml" in result.stderr and "'input'" in result.stderr and "empty" in result.stderr


def _flag_accepts(key: str, value: float) -> bool:
    option = next(p for p in apply_cmd.params if p.name == key)
    try:
        option.type.convert(repr(value) if isinstance(value, float) else str(value), option, None)
    except Exception:
        return False
    return True


def _job_accepts(tmp_path: Path, key: str, value: float) -> bool:
    job = tmp_path / "j.toml"
    text = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
    text = {"inf": "inf", "-inf": "-inf"}.get(text, text)
    job.write_text(f"{key} = {text}\n", encoding="utf-8")
    try:
        load_job_file(job)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("key", [k for k, s in OPTION_SPECS.items() if isinstance(s, Bounds)])
def test_flags_and_job_files_accept_exactly_the_same_numbers(tmp_path: Path, key: str) -> None:
    spec = OPTION_SPECS[key]
    assert isinstance(spec, Bounds)
    probes = [spec.low, spec.high, spec.low - 1, spec.high + 1, math.inf, -math.inf, math.nan]
    if not spec.whole:
        probes += [spec.low / 2, spec.low * 1.5, spec.high - 0.5, 1e308]
    for value in probes:
        value = int(value) if spec.whole and math.isfinite(value) else value
        assert _flag_accepts(key, value) == _job_accepts(tmp_path, key, value), (key, value)
    assert _flag_accepts(key, spec.low) and _flag_accepts(key, spec.high)
    assert not _flag_accepts(key, math.nan) and not _flag_accepts(key, math.inf)


def test_the_choices_are_the_targets_and_formats_the_library_knows() -> None:
    assert OPTION_SPECS["target"].values == tuple(TARGETS)
    assert OPTION_SPECS["format"].values == FORMATS
    by_name = {p.name: p for p in apply_cmd.params}
    assert tuple(by_name["target"].type.choices) == OPTION_SPECS["target"].values
    assert tuple(by_name["format"].type.choices) == OPTION_SPECS["format"].values


@pytest.mark.parametrize("flag", [["--rate", "nan"], ["--rate", "inf"], ["--timeout", "inf"],
                                  ["--concurrency", "0"], ["--rate", "1e999"]])
def test_a_flag_out_of_range_is_a_usage_error(job_dir: Path, flag: list[str]) -> None:
    result = invoke(["apply", "--input", str(job_dir / "r.csv"), *flag])

    assert result.exit_code == 2
    assert f"Invalid value for '{flag[0]}'" in result.stderr
    assert not list(job_dir.glob("*.ledger.db"))


# -- the token and the base URL: refused once, before any request ------------------------

BAD_TOKENS = {
    "control character": "tok\x01" + TOKEN,
    "header injection": TOKEN + "\r\nX-Evil: 1",
    "tab": TOKEN[:5] + "\t" + TOKEN[5:],
    "space inside": TOKEN[:5] + " " + TOKEN[5:],
    "non-ASCII": TOKEN + "é",
    "DEL": TOKEN + "\x7f",
}


@pytest.mark.parametrize("token", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
def test_a_token_no_header_can_carry_is_refused_once_and_never_shown(
        threaded_sandbox, tmp_path: Path, token: str) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, "x"] for rid in run_ids(threaded_sandbox, 5)])
    env = {**env_for(threaded_sandbox), "TALLYFY_ACCESS_TOKEN": token}

    result = invoke(["apply", "--input", str(path), "-q"], env)

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TALLYFY_ACCESS_TOKEN" in lines[0], result.stderr
    assert TOKEN[:8] not in result.output and "Traceback" not in result.output
    assert threaded_sandbox.stats.requests == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"], "no ledger made"


def test_surrounding_whitespace_of_a_token_is_still_forgiven(threaded_sandbox, tmp_path):
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, "x"] for rid in run_ids(threaded_sandbox, 2)])
    env = {**env_for(threaded_sandbox), "TALLYFY_ACCESS_TOKEN": f"  {TOKEN}\n"}

    assert invoke(["apply", "--input", str(path), "-q"], env).exit_code == 0


def _with(base_url: str, userinfo: str = "", tail: str = "") -> str:
    return base_url.replace("http://", f"http://{userinfo}") + tail


@pytest.mark.parametrize(("userinfo", "tail", "says"), [
    ("user:hunter2@", "", "credentials"),
    ("hunter2@", "", "credentials"),
    (":hunter2@", "", "credentials"),
    ("", "?hunter2=1", "query or fragment"),
    ("", "?", "query or fragment"),
    ("", "#hunter2", "query or fragment"),
    ("", "/hunter2\x01", "control character"),
    ("", "/hunter2 x", "a space"),
], ids=["user-pass", "user", "pass", "query", "empty-query", "fragment", "control", "space"])
def test_a_base_url_with_credentials_query_or_control_characters_is_refused(
        threaded_sandbox, tmp_path: Path, userinfo: str, tail: str, says: str) -> None:
    path = write_csv(tmp_path / "r.csv", ["id", "name"],
                     [[rid, "x"] for rid in run_ids(threaded_sandbox, 5)])
    base_url = _with(threaded_sandbox.base_url, userinfo, tail)

    from_env = invoke(["apply", "--input", str(path), "-q"],
                      {**env_for(threaded_sandbox), "TALLYFY_BASE_URL": base_url})
    job = tmp_path / "job.toml"
    job.write_text(f'input = "r.csv"\nbase_url = {json.dumps(base_url)}\n', encoding="utf-8")
    from_job = invoke(["apply", str(job), "-q"], env_for(threaded_sandbox))

    for result in (from_env, from_job):
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "base URL" in lines[0] and says in lines[0], result.stderr
        assert "hunter2" not in result.output
    assert threaded_sandbox.stats.requests == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml", "r.csv"], "no ledger"


def test_the_library_refuses_them_too_and_never_in_the_message() -> None:
    env = {"TALLYFY_ACCESS_TOKEN": "abc\x00def-hunter2", "TALLYFY_ORG_ID": "b" * 32}
    with pytest.raises(ConfigError) as raised:
        connection_from_env(env)
    assert "hunter2" not in str(raised.value)
    env = {"TALLYFY_ACCESS_TOKEN": TOKEN, "TALLYFY_ORG_ID": "b" * 32,
           "TALLYFY_BASE_URL": "https://me:hunter2@go.tallyfy.com/api"}
    with pytest.raises(ConfigError) as raised:
        connection_from_env(env)
    assert "hunter2" not in str(raised.value) and "***@go.tallyfy.com" in str(raised.value)
    env["TALLYFY_BASE_URL"] = "https://go.tallyfy.com:99999/api"
    with pytest.raises(ConfigError, match="invalid port"):
        connection_from_env(env)


def test_a_connection_made_by_a_library_caller_is_checked_too() -> None:
    with pytest.raises(ConfigError) as raised:
        Connection("https://me:hunter2@go.tallyfy.com/api", "b" * 32, Secret(TOKEN))
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        Connection("https://go.tallyfy.com/api", "b" * 32, Secret("hunter2\n"))
    assert "hunter2" not in str(raised.value)


def test_a_connection_never_shows_its_token_however_it_is_printed(caplog) -> None:
    # Nothing prints a Connection today; the day something does (a log line, a debugger, a
    # traceback with its locals), the token must still not show.
    connection = connection_from_env(ENV)
    assert api_headers(connection)["Authorization"] == f"Bearer {TOKEN}"  # it is held

    def fails(connection):
        raise RuntimeError("boom")

    try:
        fails(connection)
    except RuntimeError as exc:
        traced = "".join(traceback.TracebackException.from_exception(
            exc, capture_locals=True).format())
    logging.getLogger("bulk.test").warning("connection %r / %s", connection, connection)
    shown = [repr(connection), str(connection), f"{connection}", f"{connection!r}",
             repr(connection.token), str(connection.token), f"{connection.token}",
             pprint.pformat(connection), repr(vars(connection)), traced, caplog.text]
    for text in shown:
        assert TOKEN not in text, text
    assert "Secret('***')" in repr(connection) and "connection = Connection(" in traced
