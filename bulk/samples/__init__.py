"""The demo's job files and sample data, shipped inside the package.

`jobs/` and `sample_data/` here are links to the repository's own folders (the readable
source); a built wheel holds copies, so `bulk demo` works wherever bulk is installed.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = HERE / "jobs"
SAMPLE_DATA = HERE / "sample_data"
ORG = SAMPLE_DATA / "org.json"


def shipped(path: Path) -> Path | None:
    """The shipped copy of `sample_data/NAME` or `jobs/NAME` (as the README names them).

    Used only when `path` does not exist where the user stands, so that the README's
    `bulk sandbox --data sample_data/org.json` works from any directory.
    """
    parts = path.parts
    if len(parts) == 2 and parts[0] in ("sample_data", "jobs"):
        found = HERE / parts[0] / parts[1]
        if found.is_file():
            return found
    return None
