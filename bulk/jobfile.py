"""Job files (TOML): what a user would otherwise type as flags, kept in a file.

Relative paths in a job file are read from the job file's own folder, so a job runs the
same whatever the current directory. Unknown keys are refused, for the same reason the
tool refuses unknown columns: a misspelt setting must not be silently ignored.

`OPTIONS` (bulk/options.py) is the one table of the keys, their types and what each
accepts: `bulk apply`'s flags are built from it and job-file values are checked against
it, so the two can never disagree.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bulk.engine.errors import ConfigError
from bulk.options import OPTION_SPECS, OPTIONS, Bounds

#: key -> type; keys use the flags' names with `_` or `-`.
KEYS: dict[str, type | tuple[type, ...]] = {
    option.key: option.job_file for option in OPTIONS if option.job_file is not None
}
PATH_KEYS = tuple(option.key for option in OPTIONS if option.job_file and option.path)


def load_job_file(path: Path) -> dict[str, Any]:
    """The settings of a job file, checked and with paths made absolute."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read job file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not a readable TOML file ({type(exc).__name__})") from None
    settings: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        expected = KEYS.get(key)
        if expected is None:
            known = ", ".join(sorted(KEYS))
            raise ConfigError(f"{path}: unknown setting {raw_key!r} (known: {known})")
        problem = _problem(key, value, expected)
        if problem:
            raise ConfigError(f"{path}: setting {raw_key!r}: {problem}")
        if key in PATH_KEYS:
            value = str((path.parent / value).resolve()) if not Path(value).is_absolute() else value
        settings[key] = value
    return settings


def _problem(key: str, value: object, expected: type | tuple[type, ...]) -> str | None:
    spec = OPTION_SPECS.get(key)
    if isinstance(spec, Bounds):
        problem = spec.problem(value)
    elif not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        return f"wrong type ({type(value).__name__} {_short(value)})"
    elif isinstance(value, str) and key != "description" and not value.strip():
        return "must not be empty"
    elif isinstance(value, str) and "\x00" in value:
        return "must not contain a NUL character"
    else:
        problem = spec.problem(value) if spec is not None else None
    if problem:
        flag = "--" + key.replace("_", "-")
        return f"{problem} (as for {flag})"
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def merge(job: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line win over the job file."""
    merged = dict(job)
    merged.update({key: value for key, value in flags.items() if value is not None})
    return merged
