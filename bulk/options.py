"""The one table of options: every flag of apply, select and undo that is a setting, and
every job-file key, with what it accepts, its default, its help and who takes it.

An option added here appears everywhere it belongs: `bulk.cli` builds each command's click
options from `OPTIONS`, `bulk.jobfile` checks job files against it, the commands pass
`settings_for(command)` on to the library, and `bulk report` shows `shown_keys()`.
(Select's filters, `--set` and `--columns` are its query, not settings: they stay in cli.)

Kept light on purpose (no dataclasses, pathlib or Tallyfy layer): `bulk --help` builds its
click types from it. The target and format names are spelt out here rather than imported
from the library; tests/commands/test_config.py checks they equal `TARGETS` and `FORMATS`.
"""

from __future__ import annotations

import math
from typing import Any

TARGET_NAMES = ("runs", "templates", "tasks")
FORMAT_NAMES = ("csv", "jsonl")


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


class Bounds:
    """A numeric option: whole numbers or not, and the inclusive range it must be in.

    Every option has an upper bound too: a huge or infinite worker count, rate or
    timeout is a typo, and taken literally it hangs the run instead of failing it.
    """

    __slots__ = ("high", "low", "whole", "words")

    def __init__(self, *, whole: bool, low: float, high: float,
                 words: tuple[str, ...] = ()) -> None:
        self.whole = whole
        self.low = low
        self.high = high
        self.words = words  # also accepted as they are (--rate auto)

    @property
    def span(self) -> str:
        words = "".join(f" or {word}" for word in self.words)
        return f"{_number(self.low)} to {_number(self.high)}{words}"

    def problem(self, value: object) -> str | None:
        """Why `value` is refused (one phrase naming the allowed range), or None."""
        if value in self.words:
            return None
        kind = "a whole number" if self.whole else "a number"
        allowed: tuple[type, ...] = (int,) if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            return f"expected {kind} from {self.span}, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value!r} is not a finite number; expected {kind} from {self.span}"
        if not self.low <= value <= self.high:  # type: ignore[operator]
            return f"{value!r} is not in the range {self.span}"
        return None


class Choices:
    """An option that is one word of a fixed list."""

    __slots__ = ("values",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values

    def problem(self, value: object) -> str | None:
        if value in self.values:
            return None
        return f"{value!r} is not one of {', '.join(self.values)}"


APPLY, SELECT, UNDO = "apply", "select", "undo"


class Option:
    """One setting. `commands` maps each command that takes it as a flag to that command's
    own help (None: the common `help`); `{span}` in a help is the accepted range.

    `job_file`: the TOML type(s) a job file gives it (None: not a job-file key; job files
    are `bulk apply`'s). `settings`: the commands whose library options it goes into (the
    rest, such as --org, --input or --quiet, the command itself uses). `path`: "file" or
    "any" (a file or a folder: the library says what is wrong with a folder).
    """

    __slots__ = (
        "commands",
        "default",
        "help",
        "job_file",
        "key",
        "path",
        "settings",
        "short",
        "shown",
        "spec",
        "switch",
    )

    def __init__(self, key: str, help: str, *, commands: dict[str, str | None],
                 spec: Bounds | Choices | None = None, default: object = None,
                 switch: bool = False, path: str | None = None, short: str | None = None,
                 job_file: type | tuple[type, ...] | None = None,
                 settings: tuple[str, ...] = (), shown: bool = False) -> None:
        self.key = key
        self.help = help
        self.commands = commands
        self.spec = spec
        self.default = default
        self.switch = switch
        self.path = path
        self.short = short
        self.job_file = job_file
        self.settings = settings
        self.shown = shown

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def help_for(self, command: str) -> str:
        text = self.commands.get(command) or self.help
        if isinstance(self.spec, Bounds):
            text = text.replace("{span}", self.spec.span)
        if isinstance(self.default, int | float) and not isinstance(self.default, bool):
            text = text.replace("{default}", _number(self.default))
        return text


_BOTH = {APPLY: None, UNDO: None}
_ALL = {APPLY: None, SELECT: None, UNDO: None}
_OUTPUT_FORMAT = "Output format (default: from the extension)."

#: Every option, in the order `--help` lists them.
OPTIONS: tuple[Option, ...] = (
    Option("input", "CSV or JSONL file, one row per record to change.",
           commands={APPLY: None}, path="file", job_file=str),
    Option("format", "Input format (default: from the file extension).",
           commands={APPLY: None, SELECT: _OUTPUT_FORMAT, UNDO: _OUTPUT_FORMAT},
           spec=Choices(FORMAT_NAMES), job_file=str, settings=(APPLY, SELECT), shown=True),
    Option("limit", "Stop after this many records.", commands={SELECT: None},
           spec=Bounds(whole=True, low=1, high=10**12), settings=(SELECT,)),
    Option("target", "What the rows name: runs (processes), templates (checklists) or tasks.",
           commands={APPLY: None}, spec=Choices(TARGET_NAMES), default="runs", job_file=str,
           settings=(APPLY,)),
    Option("ledger", "Result ledger (default: <input>.ledger.db).",
           commands={APPLY: None,
                     UNDO: "With --apply: the undo's ledger (default: <undo file>.ledger.db)."},
           path="any", job_file=str, settings=(APPLY, UNDO)),
    Option("org", "Organization id (default: $TALLYFY_ORG_ID).", commands=_ALL, job_file=str),
    Option("base_url", "API base URL (default: $TALLYFY_BASE_URL or production).",
           commands=_ALL, job_file=str),
    Option("concurrency", "Workers (default {default}; {span}).", commands=_BOTH,
           spec=Bounds(whole=True, low=1, high=256), default=8, job_file=int,
           settings=(APPLY, UNDO), shown=True),
    # Up to a million: benchmarks run unpaced at 100_000; anything finite is harmless.
    Option("rate", "Most requests per second, or 'auto' to find the quota "
           "(default {default}; {span}).",
           commands=_ALL, spec=Bounds(whole=False, low=0.01, high=1_000_000, words=("auto",)),
           default=10.0, job_file=(int, float, str), settings=(APPLY, SELECT, UNDO), shown=True),
    Option("burst", "Requests allowed at once (default {default}; {span}).", commands=_ALL,
           spec=Bounds(whole=True, low=1, high=1000), default=2, job_file=int,
           settings=(APPLY, SELECT, UNDO), shown=True),
    Option("max_attempts", "Tries per row (default {default}; {span}).",
           commands={APPLY: None, SELECT: "Tries per request (default {default}; {span}).",
                     UNDO: None},
           spec=Bounds(whole=True, low=1, high=50), default=5, job_file=int,
           settings=(APPLY, SELECT, UNDO), shown=True),
    Option("timeout", "Seconds per request (default {default}; {span}).", commands=_ALL,
           spec=Bounds(whole=False, low=0.1, high=3600), default=30.0, job_file=(int, float),
           settings=(APPLY, SELECT, UNDO), shown=True),
    # Seconds of continuous outage before the job stops: up to a day.
    Option("outage_limit", "Seconds the API may stay unreachable before the job stops "
           "(default {default}; {span}).",
           commands={APPLY: None, SELECT: "Seconds the API may stay unreachable before select "
                     "stops, writing nothing (default {default}; {span})."},
           spec=Bounds(whole=False, low=1, high=86_400), default=600.0,
           job_file=(int, float), settings=(APPLY, SELECT)),
    Option("max_failures", "Stop once this many rows have failed (default: no limit).",
           commands={APPLY: None}, spec=Bounds(whole=True, low=1, high=10**12),
           job_file=int, settings=(APPLY,)),
    Option("retry_failed", "On resume, retry failed rows.", commands=_BOTH, switch=True,
           job_file=bool, settings=(APPLY, UNDO), shown=True),
    Option("fresh", "Start the ledger over (needed when the input, target or org changed).",
           commands={APPLY: None, UNDO: "Start the undo's ledger over."}, switch=True,
           job_file=bool, settings=(APPLY, UNDO), shown=True),
    Option("dry_run", "Read and plan every row, write nothing; the plan goes to its own ledger "
           "(<input>.dry-run.ledger.db) for `bulk export`.",
           commands={APPLY: None, UNDO: "With --apply: plan, write nothing."}, switch=True,
           job_file=bool, settings=(APPLY, UNDO), shown=True),
    Option("include_completed", "Tasks: change completed ones too (left alone by default: it "
           "rewrites history).",
           commands={APPLY: None, UNDO: "With --apply, tasks: put back completed ones too."},
           switch=True, job_file=bool, settings=(APPLY, UNDO), shown=True),
    Option("quiet", "No progress bar.", commands={**_ALL, SELECT: "No progress line."},
           switch=True, short="-q", job_file=bool),
    # Not a job-file key: whether a person is asked is decided where the command runs.
    Option("yes", "Do not ask before writing (only a terminal is asked; scripts never are).",
           commands={APPLY: None, UNDO: "With --apply: do not ask before writing (only a "
                     "terminal is asked)."}, switch=True, short="-y"),
    Option("description", "What the job does, for the people who read the job file.",
           commands={}, job_file=str),
)
BY_KEY = {option.key: option for option in OPTIONS}


def flags_of(command: str) -> tuple[Option, ...]:
    """The options `command` takes as flags, in `--help` order."""
    return tuple(option for option in OPTIONS if command in option.commands)


def settings_for(command: str) -> tuple[str, ...]:
    """The keys `command` passes on to its library options (ApplyOptions, SelectOptions)."""
    return tuple(option.key for option in OPTIONS if command in option.settings)


def shown_keys() -> tuple[str, ...]:
    """The options a job's ledger keeps for `bulk report` (none of them is a secret)."""
    return tuple(option.key for option in OPTIONS if option.shown)


def default(key: str) -> Any:
    """An option's default, as the library's options take it."""
    return BY_KEY[key].default


#: What each checked option accepts, flags and job files alike.
OPTION_SPECS: dict[str, Bounds | Choices] = {
    option.key: option.spec for option in OPTIONS
    if option.spec is not None and option.job_file is not None
}
