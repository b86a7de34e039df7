"""How many requests per second the sandbox answers, with no latency, quota or faults.

The sandbox runs as its own process (``bulk sandbox`` via ``_procs.Sandbox``), as in a
rehearsal; load comes from separate client processes (aiohttp, GET a run then PUT it back
with its users and groups, so half the requests are validated writes). The figure is the
sandbox's own request counter over a timed window, read from ``/_sandbox/stats``, so client
start-up and wind-down are not in it.

    python -m benchmarks.sandbox_rps [--seconds 5] [--concurrency 32] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------- one client process


async def _load(base_url: str, org: str, token: str, seconds: float, concurrency: int,
                offset: int) -> Counter[str]:
    import aiohttp

    root = base_url.removesuffix("/api")
    run_ids = [r["id"] for r in _get_json(f"{root}/_sandbox/org")["runs"]]
    headers = {"Authorization": f"Bearer {token}", "X-Tallyfy-Client": "APIClient",
               "Accept": "application/json"}
    counts: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession, index: int) -> None:
        while time.monotonic() < stop_at:
            url = f"{base_url}/organizations/{org}/runs/{run_ids[index % len(run_ids)]}"
            index += concurrency
            try:
                async with session.get(url) as response:
                    run = (await response.json())["data"]
                    counts[str(response.status)] += 1
                body = {"summary": f"benchmark {index}", "users": run["users"],
                        "groups": run["groups"]}
                async with session.put(url, json=body) as response:
                    await response.read()
                    counts[str(response.status)] += 1
            except (aiohttp.ClientError, KeyError, ValueError) as exc:
                counts[type(exc).__name__] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        await asyncio.gather(*(worker(session, offset + i) for i in range(concurrency)))
    return counts


def _client_main(argv: list[str]) -> int:
    base_url, org, token, seconds, concurrency, offset = argv
    counts = asyncio.run(_load(base_url, org, token, float(seconds), int(concurrency),
                               int(offset)))
    print(json.dumps(counts))
    return 0


# ---------------------------------------------------------------- the measurement


def measure(seconds: float = 5.0, concurrency: int = 32, clients: int = 2,
            runs: int = 2_000, warmup: float = 1.0) -> dict[str, Any]:
    """Start a sandbox and ``clients`` load processes; return the requests/second the sandbox
    answered over ``seconds`` (after ``warmup``), with the counts the clients saw."""
    # Imported here, not at the top: the load clients run this file as a plain script.
    from benchmarks._procs import Sandbox

    loaders: list[subprocess.Popen[str]] = []
    with (tempfile.TemporaryDirectory(prefix="bulk-rps-") as workdir,
          Sandbox(Path(workdir), runs=runs, latency_ms=0) as server):
        env = server.env
        base_url = env["TALLYFY_BASE_URL"]
        stats_url = server.root + "/_sandbox/stats"
        try:
            per_client = max(1, concurrency // clients)
            for number in range(clients):
                loaders.append(subprocess.Popen(
                    [sys.executable, __file__, "--client", base_url, env["TALLYFY_ORG_ID"],
                     env["TALLYFY_ACCESS_TOKEN"], str(warmup + seconds + 1.0), str(per_client),
                     str(number * per_client)],
                    cwd=ROOT, stdout=subprocess.PIPE, text=True))
            time.sleep(warmup)
            start_count, start = _get_json(stats_url)["requests"], time.monotonic()
            time.sleep(seconds)
            end_count, end = _get_json(stats_url)["requests"], time.monotonic()
            seen: Counter[str] = Counter()
            for loader in loaders:
                out, _ = loader.communicate(timeout=60)
                seen.update(json.loads(out))
            stats = _get_json(stats_url)
        finally:
            for loader in loaders:
                if loader.poll() is None:
                    loader.kill()
                    loader.wait()
    return {
        "requests_per_second": round((end_count - start_count) / (end - start)),
        "window_seconds": seconds,
        "concurrency": per_client * clients,
        "client_processes": clients,
        "runs": runs,
        "statuses": dict(seen),
        "writes": stats["writes"],
        "peak_concurrency": stats["peak_concurrency"],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        return _client_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.concurrency, args.clients, args.runs)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"sandbox: {result['requests_per_second']} requests/s "
              f"(GET+PUT 1:1, {result['concurrency']} concurrent from "
              f"{result['client_processes']} client processes, {args.seconds:g} s window, "
              f"{result['cpus']} CPUs; statuses {result['statuses']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
