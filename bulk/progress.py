"""The terminal progress bar (tqdm): rows done of total, rows/s, ok/failed counts, and
the pace in requests/s with the ETA it gives (the quota, not the CPU, sets the speed)."""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from bulk.engine.ledger import Entry

#: The pace shown is the requests sent over the last this-many seconds.
PACE_WINDOW = 5.0
#: tqdm's own ETA follows rows/s smoothed over the whole job; ours follows the pace now.
#: The count sits right after the bar and our postfix (ETA first) after it: tqdm cuts a line
#: too long for the terminal at its end, so what matters most comes first.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt}{postfix}"
#: The bar keeps at least this many columns; the postfix gives up its least useful parts.
MIN_BAR = 10


class TerminalProgress:
    """Shown only on a terminal; `bulk apply --quiet` or a pipe gets none."""

    def __init__(
        self, stream: TextIO | None = None, now: Callable[[], float] = time.monotonic,
        *, width: int | None = None,
    ) -> None:
        self._stream = stream or sys.stderr
        self._width = width  # columns; None: the terminal's, as it is now
        self._now = now
        self._bar: tqdm | None = None
        self._counts: Counter[str] = Counter()
        self._last_postfix = 0.0
        self._requests: Callable[[], int] | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._processed = 0  # rows done by this run (not skipped)
        self._started = 0.0

    def watch(self, requests: Callable[[], int]) -> None:
        """Where to read how many requests the job has sent so far."""
        self._requests = requests

    @staticmethod
    def wanted(stream: TextIO | None = None, quiet: bool = False) -> bool:
        stream = stream or sys.stderr
        return not quiet and hasattr(stream, "isatty") and stream.isatty()

    def start(self, total: int) -> None:
        self._started = self._now()
        self._bar = tqdm(
            total=total, unit="row", file=self._stream, smoothing=0.05, bar_format=BAR_FORMAT,
            **({"ncols": self._width} if self._width else {"dynamic_ncols": True}),
        )

    def advance(self, entry: Entry | None) -> None:
        if self._bar is None:
            return
        self._counts[entry.status if entry else "skipped"] += 1
        if entry is not None:
            self._processed += 1
        self._bar.update(1)
        now = self._now()
        if now - self._last_postfix > 0.25:  # formatting every row would cost more than the row
            self._last_postfix = now
            self._bar.set_postfix_str(self._postfix(), refresh=False)

    def skip(self, count: int) -> None:
        if self._bar is not None:
            self._counts["skipped"] += count
            self._bar.update(count)

    def extend(self, count: int) -> None:
        """`count` rows will be done once more (the end-of-job pass)."""
        if self._bar is not None:
            self._bar.total += count

    def _postfix(self, final: bool = False) -> str:
        c = self._counts
        if final:  # the whole run's rate: a job faster than the pace's window has one too
            rate = self.overall_pace()
            parts = [f"{rate:.1f} req/s overall"] if rate is not None else []
            parts += [f"ok {c['ok']}", f"failed {c['failed'] + c['in_doubt']}"]
            parts += [f"{name} {c[name]}" for name in ("invalid", "conflict", "unchanged",
                                                        "skipped") if c[name]]
            return self._fit(parts)
        pace = self.pace()
        parts = [f"ETA {self.eta(pace)}", f"{pace:.1f} req/s"] if pace is not None else []
        parts += [f"ok {c['ok']}", f"failed {c['failed'] + c['in_doubt']}"]
        parts += [f"{name} {c[name]}" for name in ("invalid", "conflict", "unchanged",
                                                    "skipped") if c[name]]
        return self._fit(parts)

    def _fit(self, parts: list[str]) -> str:
        """As many parts as leave the bar MIN_BAR columns, in order (ETA and pace first)."""
        bar = self._bar
        width = bar.ncols if bar is not None else None
        if not width:
            return " ".join(parts)
        total = bar.total or 0
        # "100%|" + the bar + "| n/total" + ", " (tqdm's) + the parts
        room = width - len("100%|") - MIN_BAR - len(f"| {total}/{total}") - len(", ")
        kept: list[str] = []
        for part in parts:
            if len(" ".join([*kept, part])) > room:
                break
            kept.append(part)
        return " ".join(kept)

    def overall_pace(self) -> float | None:
        """Requests per second over the whole run (None before any)."""
        if self._requests is None:
            return None
        elapsed = self._now() - self._started
        sent = self._requests()
        return sent / elapsed if elapsed > 0 and sent else None

    def pace(self) -> float | None:
        """Requests per second over the last PACE_WINDOW seconds (None before any)."""
        if self._requests is None:
            return None
        now = self._now()
        self._samples.append((now, self._requests()))
        while len(self._samples) > 2 and self._samples[1][0] <= now - PACE_WINDOW:
            self._samples.popleft()
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        return (last - first) / (end - start) if end > start else None

    def eta(self, pace: float) -> str:
        """Rows left at this run's requests per row, sent at the pace now."""
        if self._bar is None or self._requests is None or not self._processed or pace <= 0:
            return "?"
        left = max(0, (self._bar.total or 0) - self._bar.n)
        per_row = self._requests() / self._processed
        return tqdm.format_interval(left * per_row / pace)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(final=True), refresh=False)
            self._bar.close()
            self._bar = None
