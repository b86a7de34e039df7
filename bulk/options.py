"""What each `bulk apply` option accepts: one table for the flags and for job files.

Kept light on purpose (no dataclasses, pathlib or Tallyfy layer): `bulk --help` builds its
click types from it. The target and format names are spelt out here rather than imported
from the library; tests/apply/test_config.py checks they equal `TARGETS` and `FORMATS`.
"""

from __future__ import annotations

import math

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


#: What `bulk apply` accepts for each checked option, flags and job files alike.
OPTION_SPECS: dict[str, Bounds | Choices] = {
    "format": Choices(FORMAT_NAMES),
    "target": Choices(TARGET_NAMES),
    "concurrency": Bounds(whole=True, low=1, high=256),
    # Up to a million: benchmarks run unpaced at 100_000; anything finite is harmless.
    "rate": Bounds(whole=False, low=0.01, high=1_000_000, words=("auto",)),
    "burst": Bounds(whole=True, low=1, high=1000),
    "max_attempts": Bounds(whole=True, low=1, high=50),
    "timeout": Bounds(whole=False, low=0.1, high=3600),
    # Seconds of continuous outage before the job stops: up to a day.
    "outage_limit": Bounds(whole=False, low=1, high=86_400),
    "max_failures": Bounds(whole=True, low=1, high=10**12),
}
