"""The option table (bulk/options.py) is the one place an option is named: each command's
flags, its `--help`, the job-file keys, the keys passed to the library and the options
`bulk report` shows all come from it, and nothing names a table option by hand."""

from __future__ import annotations

import dataclasses
import re

import click
import pytest
from click.testing import CliRunner

from bulk import jobfile
from bulk.cli import main
from bulk.options import APPLY, OPTIONS, SELECT, UNDO, flags_of, settings_for, shown_keys
from bulk.tallyfy.api import Pacing
from bulk.tallyfy.apply_job import ApplyOptions
from bulk.tallyfy.select_scan import SelectOptions

COMMANDS = (APPLY, SELECT, UNDO)
TABLE_KEYS = {option.key for option in OPTIONS}
#: What each command takes besides the table: its query and its arguments, not settings.
OWN = {
    APPLY: {"job_file"},
    SELECT: {"target", "output", "owner", "member", "group", "status", "template",
             "assignee", "run", "name", "where", "set_", "columns"},
    UNDO: {"job_ledger", "output", "status", "apply_now"},
}
LIBRARY = {APPLY: ApplyOptions, SELECT: SelectOptions, UNDO: ApplyOptions}


def _command(name: str) -> click.Command:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    return command


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_takes_exactly_its_table_options_and_its_own(name):
    params = {param.name for param in _command(name).params if param.name != "help"}
    mine = {option.key for option in flags_of(name)}
    assert params - OWN[name] == mine
    # No table option is written by hand (select's TARGET argument is apply's --target's
    # name only: the record kind to scan, not a setting).
    assert (params & TABLE_KEYS) - mine <= ({"target"} if name == SELECT else set())


@pytest.mark.parametrize("name", COMMANDS)
def test_help_lists_each_table_option_with_its_help(name):
    result = CliRunner().invoke(main, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0
    listed = {match.group(1) for match in re.finditer(r"^ +(?:-\w, )?(--[\w-]+)",
                                                       result.output, re.MULTILINE)}
    mine = {option.flag for option in flags_of(name)}
    assert listed & {option.flag for option in OPTIONS} == mine
    text = " ".join(result.output.split())
    for option in flags_of(name):
        assert option.help_for(name) in text, (name, option.key)


def test_the_job_file_keys_are_the_tables():
    assert jobfile.KEYS == {o.key: o.job_file for o in OPTIONS if o.job_file is not None}
    assert set(jobfile.PATH_KEYS) == {"input", "ledger"}
    assert set(jobfile.KEYS) <= {o.key for o in flags_of(APPLY)} | {"description"}


@pytest.mark.parametrize("name", COMMANDS)
def test_each_commands_settings_reach_its_library_options(name):
    fields = {field.name for field in dataclasses.fields(LIBRARY[name])}
    assert set(settings_for(name)) <= fields
    assert set(settings_for(name)) <= {option.key for option in flags_of(name)}


def test_pacing_is_one_value_every_command_takes_whole():
    pacing = {field.name for field in dataclasses.fields(Pacing)} - {"backoff"}
    assert pacing <= TABLE_KEYS
    for name in (SELECT, UNDO, APPLY):
        # every pacing option a command offers as a flag goes on to its library
        offered = pacing & {option.key for option in flags_of(name)}
        assert offered <= set(settings_for(name)), name
    assert issubclass(ApplyOptions, Pacing) and issubclass(SelectOptions, Pacing)


def test_the_library_defaults_are_the_tables():
    options = ApplyOptions(input=__import__("pathlib").Path("x.csv"))
    for option in OPTIONS:
        if option.default is not None and hasattr(options, option.key):
            assert getattr(options, option.key) == option.default, option.key


def test_the_report_shows_table_options():
    assert set(shown_keys()) <= {field.name for field in dataclasses.fields(ApplyOptions)}
