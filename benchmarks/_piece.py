"""The command line of a benchmark piece run alone (`python -m benchmarks.loop`, ...)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_piece(doc: str, prefix: str, measure: Callable[..., Any],
              render: Callable[[Any], str], argv: list[str] | None = None) -> int:
    """Parse --quick, measure in a temporary folder, print the Markdown section."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        results = measure(Path(tmp), quick=args.quick, say=say)
    print(render(results))
    return 0
