"""Helpers for `bulk apply` tests: inputs built from a real sandbox, jobs run in-loop."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from bulk.engine.clock import SkipClock
from bulk.engine.ledger import Entry
from bulk.engine.retry import RetryPolicy
from bulk.engine.summary import Summary
from bulk.sandbox import JournalEntry, Sandbox, SandboxConfig
from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
from bulk.tallyfy.connection import Connection, Secret

TOKEN = "tok-s3cr3t-0123456789abcdef"


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def rename_csv(path: Path, ids: list[str], label: str) -> Path:
    """An `id,name` input renaming each run to "<label> <n>" (n = its position)."""
    return write_csv(path, ["id", "name"], [[rid, f"{label} {n}"] for n, rid in enumerate(ids)])


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def config(**overrides: Any) -> SandboxConfig:
    values: dict[str, Any] = {"runs": 40, "templates": 12, "seed": 11, "token": TOKEN}
    values.update(overrides)
    return SandboxConfig(**values)


def connection_to(sandbox: Sandbox, token: str | None = None) -> Connection:
    return Connection(sandbox.base_url, sandbox.org_id, Secret(token or sandbox.token))


async def run_job(
    sandbox: Sandbox,
    input_path: Path,
    *,
    clock: SkipClock | None = None,
    token: str | None = None,
    on_job: Any = None,
    observer: Any = None,
    via: Any = None,
    **options: Any,
) -> tuple[Summary, list[Entry]]:
    """Prepare and execute a job in this event loop; waits are skipped, not slept.

    `via`: a `Front` (tests/support/front.py) to send through instead of straight to the
    sandbox; one worker by default then, since those tests read the order of requests.
    """
    settings: dict[str, Any] = {"rate": 10_000.0, "burst": 100,
                                "concurrency": 8 if via is None else 1}
    settings.update(options)
    settings.setdefault("backoff", RetryPolicy(base=0.01, cap=0.05))
    connection = connection_to(sandbox, token)
    if via is not None:
        connection = Connection(via.base_url, connection.org_id, connection.token)
    prepared = prepare(ApplyOptions(input=input_path, **settings), connection)
    try:
        summary = await execute(prepared, clock=clock or SkipClock(), on_job=on_job,
                                observer=observer)
        entries = list(prepared.ledger.entries())
    finally:
        prepared.ledger.close()
    return summary, entries


class ThreadedSandbox:
    """A sandbox serving from its own thread, for tests that drive the CLI synchronously."""

    def __init__(self, sandbox_config: SandboxConfig) -> None:
        self._config = sandbox_config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._cm: Sandbox | None = None

    def __enter__(self) -> Sandbox:
        self._thread.start()
        self._cm = Sandbox(self._config, host="127.0.0.1", port=0)
        return asyncio.run_coroutine_threadsafe(self._cm.__aenter__(), self._loop).result(30)

    def __exit__(self, *exc: object) -> None:
        assert self._cm is not None
        stopping = self._cm.__aexit__(None, None, None)
        asyncio.run_coroutine_threadsafe(stopping, self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


def env_for(sandbox: Sandbox) -> dict[str, str]:
    return {
        "TALLYFY_BASE_URL": sandbox.base_url,
        "TALLYFY_ORG_ID": sandbox.org_id,
        "TALLYFY_ACCESS_TOKEN": sandbox.token,
    }


def run_ids(sandbox: Sandbox, n: int | None = None) -> list[str]:
    ids = sorted(sandbox.store.runs)
    return ids if n is None else ids[:n]


def template_ids(sandbox: Sandbox, n: int | None = None) -> list[str]:
    ids = sorted(sandbox.store.checklists)
    return ids if n is None else ids[:n]




ROOT = Path(__file__).resolve().parents[2]


async def start_apply(sandbox: Sandbox, path: Path, ledger: Path) -> asyncio.subprocess.Process:
    """`bulk apply` as a real process (for signals and kill -9), against `sandbox`."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulk", "apply", "--input", str(path), "--ledger", str(ledger),
        "--rate", "1000", "--burst", "50", "--concurrency", "8", "-q",
        cwd=ROOT, env={**os.environ, **env_for(sandbox)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def wait_for_rows(ledger: Path, status: str, at_least: int) -> None:
    """Poll the ledger of a running process (real time, bounded to 30 s)."""
    for _ in range(600):
        try:  # read-only: fails (no file, no table yet) until the job has started
            with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
                found = db.execute(
                    "SELECT COUNT(*) FROM rows WHERE status = ?", (status,)).fetchone()[0]
        except sqlite3.OperationalError:
            found = 0
        if found >= at_least:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job never recorded {at_least} {status} rows")


def on_records(sandbox: Sandbox) -> list[JournalEntry]:
    """The sandbox's journal without lists: the requests on records, in order.

    Leaves out the job's preflight (a one-item list before the first row, issue 7), so a
    test can count what the rows themselves sent.
    """
    return [entry for entry in sandbox.stats.journal
            if len(entry.path.rstrip("/").rsplit("/", 1)[-1]) == 32]


@asynccontextmanager
async def not_http_peer() -> AsyncIterator[int]:
    """A loopback peer that answers something that is not HTTP; yields its port. aiohttp's
    own error for it quotes the URL and holds the request's headers (the token among them)."""

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    peer = await asyncio.start_server(not_http, "127.0.0.1", 0)
    try:
        yield peer.sockets[0].getsockname()[1]
    finally:
        peer.close()
        await peer.wait_closed()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """A small aiohttp app of a test's own on loopback (a stand-in the sandbox cannot play);
    yields its port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


def interleaved(lanes: list[list[Any]], seed: int) -> list[Any]:
    """The lanes' items mixed at random, each lane's in its own order (several rows per
    record, spread through a file)."""
    lanes = [list(lane) for lane in lanes]
    rng = random.Random(seed)
    mixed: list[Any] = []
    while lanes:
        lane = rng.choice(lanes)
        mixed.append(lane.pop(0))
        if not lane:
            lanes.remove(lane)
    return mixed
