"""Run one command; write its wall time and exact peak RSS to REPORT as JSON.

    python -I -S benchmarks/_launcher.py REPORT COMMAND [ARG...]

Why a launcher: on Linux a process's ``ru_maxrss`` starts at the high-water mark of the
memory it was spawned from (``exec`` folds the old address space's peak into it). Spawned
straight from the benchmark runner, which holds whole sandbox dumps, every client would
report at least the runner's size. Spawned from this small process, a client reports its own
peak, or this launcher's own (``launcher_hwm_kib``, a few MB) if it never grew past that.
Standard library only, no site packages (``-S``): it stays small.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _own_high_water_kib() -> int:
    """This process's own peak (VmHWM: not inherited, unlike getrusage's ru_maxrss)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    report, argv = sys.argv[1], sys.argv[2:]
    floor = _own_high_water_kib()
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    with open(report, "w") as out:
        json.dump({"returncode": os.waitstatus_to_exitcode(status), "wall": wall,
                   "max_rss_kib": usage.ru_maxrss, "launcher_hwm_kib": floor}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
