"""One client process: the official Tallyfy SDK renaming runs one at a time.

    python -m benchmarks.sdk_loop naive|safe IDS_FILE LABEL

Reads TALLYFY_BASE_URL, TALLYFY_ORG_ID and TALLYFY_ACCESS_TOKEN; renames the run on each line
of IDS_FILE to "LABEL <n>"; prints ``{"rows": ..., "seconds": ...}`` as JSON. The seconds
cover the loop only (not the interpreter's start or the imports), which favours the SDK.

* ``naive``: ``update_process(org, id, name=...)``, one PUT per row: the loop everyone writes.
  It sends no ``users``/``groups``, so it wipes every member of each run it renames.
* ``safe``: ``get_process`` then a PUT of the name with the run's current users and groups,
  the same job ``bulk apply`` does (two requests per row).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

from tallyfy import TallyfySDK

Loop = Callable[[TallyfySDK, str, list[str], str], None]


def naive(sdk: TallyfySDK, org: str, ids: list[str], label: str) -> None:
    for number, run_id in enumerate(ids):
        sdk.update_process(org, run_id, name=f"{label} {number}")


def safe(sdk: TallyfySDK, org: str, ids: list[str], label: str) -> None:
    for number, run_id in enumerate(ids):
        run = sdk.get_process(org, run_id)
        body = {"name": f"{label} {number}", "users": run.extra["users"],
                "groups": run.extra["groups"]}
        sdk._make_request("PUT", f"organizations/{org}/runs/{run_id}", data=body)


LOOPS: dict[str, Loop] = {"naive": naive, "safe": safe}


def main(argv: list[str] | None = None) -> int:
    mode, ids_file, label = sys.argv[1:] if argv is None else argv
    with open(ids_file) as lines:
        ids = [line.strip() for line in lines if line.strip()]
    org = os.environ["TALLYFY_ORG_ID"]
    sdk = TallyfySDK(api_key=os.environ["TALLYFY_ACCESS_TOKEN"],
                     base_url=os.environ["TALLYFY_BASE_URL"])
    started = time.perf_counter()
    LOOPS[mode](sdk, org, ids, label)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": len(ids), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
