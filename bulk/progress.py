"""The terminal progress bar (tqdm): rows done of total, rows/s, ETA, ok/failed counts."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

from tqdm import tqdm

from bulk.engine.ledger import Entry


class TerminalProgress:
    """Shown only on a terminal; `bulk apply --quiet` or a pipe gets none."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: tqdm | None = None
        self._counts: Counter[str] = Counter()
        self._last_postfix = 0.0

    @staticmethod
    def wanted(stream: TextIO | None = None, quiet: bool = False) -> bool:
        stream = stream or sys.stderr
        return not quiet and hasattr(stream, "isatty") and stream.isatty()

    def start(self, total: int) -> None:
        self._bar = tqdm(
            total=total, unit="row", file=self._stream, dynamic_ncols=True, smoothing=0.05
        )

    def advance(self, entry: Entry | None) -> None:
        if self._bar is None:
            return
        self._counts[entry.status if entry else "skipped"] += 1
        self._bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix > 0.25:  # formatting every row would cost more than the row
            self._last_postfix = now
            self._bar.set_postfix_str(self._postfix(), refresh=False)

    def skip(self, count: int) -> None:
        if self._bar is not None:
            self._counts["skipped"] += count
            self._bar.update(count)

    def _postfix(self) -> str:
        c = self._counts
        text = f"ok {c['ok']} unchanged {c['unchanged']} failed {c['failed'] + c['in_doubt']}"
        if c["invalid"]:
            text += f" invalid {c['invalid']}"
        if c["conflict"]:
            text += f" conflict {c['conflict']}"
        if c["skipped"]:
            text += f" skipped {c['skipped']}"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.close()
            self._bar = None
