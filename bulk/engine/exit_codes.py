"""The exit codes of every `bulk` command, in one place (the README and each command's
`--help` describe them; `Summary.exit_code` and the commands return them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every row ok or unchanged; the file written
    ROWS_FAILED = 1  # some rows failed, invalid, in conflict or in doubt; a select cut short
    USAGE = 2  # usage, configuration or unreadable input; nothing sent
    ABORTED = 3  # authentication, an outage past the limit, every row failing alike
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: run the same command again to resume
