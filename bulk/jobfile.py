"""Job files (TOML): what a user would otherwise type as flags, kept in a file.

Relative paths in a job file are read from the job file's own folder, so a job runs the
same whatever the current directory. Unknown keys are refused, for the same reason the
tool refuses unknown columns: a misspelt setting must not be silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bulk.engine.errors import ConfigError

#: key -> type; keys use the flags' names with `_` or `-`.
KEYS: dict[str, type | tuple[type, ...]] = {
    "input": str,
    "format": str,
    "target": str,
    "ledger": str,
    "org": str,
    "base_url": str,
    "concurrency": int,
    "rate": (int, float),
    "burst": int,
    "max_attempts": int,
    "timeout": (int, float),
    "retry_failed": bool,
    "fresh": bool,
    "dry_run": bool,
    "include_completed": bool,
    "quiet": bool,
    "description": str,
}
PATH_KEYS = ("input", "ledger")


def load_job_file(path: Path) -> dict[str, Any]:
    """The settings of a job file, checked and with paths made absolute."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read job file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    settings: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        expected = KEYS.get(key)
        if expected is None:
            known = ", ".join(sorted(KEYS))
            raise ConfigError(f"{path}: unknown setting {raw_key!r} (known: {known})")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: setting {raw_key!r} has the wrong type ({value!r})")
        if key in PATH_KEYS:
            value = str((path.parent / value).resolve()) if not Path(value).is_absolute() else value
        settings[key] = value
    return settings


def merge(job: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line win over the job file."""
    merged = dict(job)
    merged.update({key: value for key, value in flags.items() if value is not None})
    return merged
