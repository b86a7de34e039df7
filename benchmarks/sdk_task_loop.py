"""One client process: the official Tallyfy SDK handing tasks over one at a time.

    python -m benchmarks.sdk_task_loop naive|safe ROWS_FILE

ROWS_FILE has one `run_id,task_id,heir,leaver` line per task. Reads TALLYFY_BASE_URL,
TALLYFY_ORG_ID and TALLYFY_ACCESS_TOKEN; prints ``{"rows": ..., "seconds": ...}`` as JSON (the
loop only: no interpreter start or imports, which favours the SDK).

* ``naive``: ``update_task(org, run, task, owners={"users": [heir]})``, one PUT per row, what
  the SDK's signature invites. The API reads the missing guests and groups as empty lists:
  every other assignee of the task is detached.
* ``safe``: ``get_task``, then ``update_task`` with the whole ``owners`` merged (leaver out,
  heir in, guests and groups kept): the job ``bulk apply --target tasks`` does (two requests).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

from tallyfy import TallyfySDK

Row = tuple[str, str, int, int]
Loop = Callable[[TallyfySDK, str, list[Row]], None]


def naive(sdk: TallyfySDK, org: str, rows: list[Row]) -> None:
    for run_id, task_id, heir, _leaver in rows:
        sdk.update_task(org, run_id, task_id, owners={"users": [heir]})


def safe(sdk: TallyfySDK, org: str, rows: list[Row]) -> None:
    for run_id, task_id, heir, leaver in rows:
        owners = sdk.get_task(org, run_id, task_id).owners
        users = [u for u in owners.users if u != leaver]
        users += [heir] if heir not in users else []
        sdk.update_task(org, run_id, task_id, owners={
            "users": users, "guests": owners.guests, "groups": owners.groups})


LOOPS: dict[str, Loop] = {"naive": naive, "safe": safe}


def main(argv: list[str] | None = None) -> int:
    mode, rows_file = sys.argv[1:] if argv is None else argv
    with open(rows_file) as lines:
        rows = [(r, t, int(h), int(leaver)) for line in lines if line.strip()
                for r, t, h, leaver in [line.strip().split(",")]]
    org = os.environ["TALLYFY_ORG_ID"]
    sdk = TallyfySDK(api_key=os.environ["TALLYFY_ACCESS_TOKEN"],
                     base_url=os.environ["TALLYFY_BASE_URL"])
    started = time.perf_counter()
    LOOPS[mode](sdk, org, rows)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": len(rows), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
