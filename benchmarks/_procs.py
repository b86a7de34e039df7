"""The benchmark's subprocesses: a sandbox to measure against, and measured clients.

Each runs in a process of its own, so the sandbox and the client under test each get a
core of their own instead of sharing one interpreter. Both are always stopped by the
context manager or the ``finally`` that started them, whatever goes wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

ROOT = Path(__file__).resolve().parents[1]
_EXPORT = re.compile(r"^export (TALLYFY_\w+)=(\S+)$")
LAUNCHER = Path(__file__).with_name("_launcher.py")


@dataclass
class Finished:
    """A client process that ran to its end."""

    returncode: int
    wall: float  # seconds, from its spawn to its exit
    max_rss_kib: int  # its peak resident set (ru_maxrss, KiB on Linux), exact
    floor_kib: int  # the launcher's own peak: max_rss_kib cannot read lower than this
    stdout: str
    stderr: str
    #: (seconds since start, RSS in bytes), every `sample_every` seconds, when asked for
    rss_samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def peak_mb(self) -> float:
        return self.max_rss_kib * 1024 / 1e6


def run_client(argv: list[str], env: dict[str, str], *, timeout: float,
               sample_every: float | None = None) -> Finished:
    """Run one client process to its end, through the small launcher (see _launcher.py)
    that times it and reads its exact peak RSS from ``wait4``."""
    with tempfile.TemporaryDirectory(prefix="bulk-bench-client-") as tmp:
        report, out_path, err_path = (Path(tmp) / name for name in ("report", "out", "err"))
        with open(out_path, "w") as out, open(err_path, "w") as err:
            # Its own session: the launcher and the client are killed together, if need be.
            launcher = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), str(report), *argv], cwd=ROOT,
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True)
        start = time.perf_counter()
        sampler = _RssSampler(launcher.pid, start, sample_every) if sample_every else None
        killer = threading.Timer(timeout, _kill_group, (launcher,))
        killer.start()
        try:
            launcher.wait()
        finally:
            killer.cancel()
            if sampler is not None:
                sampler.stop()
            _kill_group(launcher)  # a no-op unless interrupted or timed out
        if not report.exists():
            raise RuntimeError(f"{argv[:4]}...: no report (killed after {timeout:g} s?)\n"
                               f"{err_path.read_text()[-2000:]}")
        found = json.loads(report.read_text())
        return Finished(found["returncode"], found["wall"], found["max_rss_kib"],
                        found["launcher_hwm_kib"], out_path.read_text(), err_path.read_text(),
                        sampler.samples if sampler else [])


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill the launcher and its client, if the launcher has not ended (until it is reaped,
    its pid, hence its group id, cannot be anyone else's)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class _RssSampler(threading.Thread):
    """Polls the RSS of the launcher's child, to show how it evolves over a long run (the
    peak itself comes from wait4)."""

    def __init__(self, launcher_pid: int, start: float, every: float) -> None:
        super().__init__(daemon=True)
        self._launcher = psutil.Process(launcher_pid)
        self._start, self._every = start, every
        self._done = threading.Event()
        self.samples: list[tuple[float, int]] = []
        self.start()

    def run(self) -> None:
        client: psutil.Process | None = None
        while not self._done.wait(self._every):
            try:
                if client is None:
                    children = self._launcher.children()
                    if not children:
                        continue
                    client = children[0]
                rss = client.memory_info().rss
            except psutil.Error:  # it has just ended
                return
            self.samples.append((time.perf_counter() - self._start, rss))

    def stop(self) -> None:
        self._done.set()
        self.join()


class Sandbox:
    """``bulk sandbox`` in its own process, on a free loopback port."""

    def __init__(self, workdir: Path, *, runs: int, latency_ms: float, seed: int = 1,
                 extra: tuple[str, ...] = ()) -> None:
        self.argv = [sys.executable, "-m", "bulk", "sandbox", "--host", "127.0.0.1",
                     "--port", "0", "--runs", str(runs), "--templates", "10",
                     "--seed", str(seed), "--latency-ms", f"{latency_ms:g}", *extra]
        self.latency_ms = latency_ms
        self._log_path = workdir / f"sandbox-{latency_ms:g}ms.log"
        self._proc: subprocess.Popen[str] | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> Sandbox:
        with open(self._log_path, "w") as log:  # the child keeps its own copy
            self._proc = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            assert self._proc.stdout is not None
            for _ in range(3):
                found = _EXPORT.match(self._proc.stdout.readline().strip())
                if found is None:
                    raise RuntimeError(f"the sandbox did not start: {self._log_path.read_text()}")
                self.env[found.group(1)] = found.group(2)
            host = urlsplit(self.env["TALLYFY_BASE_URL"]).hostname
            if host != "127.0.0.1":
                raise RuntimeError(f"the sandbox listens on {host}, not on loopback")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    # -- looking inside ------------------------------------------------------------
    @property
    def root(self) -> str:
        return self.env["TALLYFY_BASE_URL"].removesuffix("/api")

    def client_env(self) -> dict[str, str]:
        """The environment of a client process: ours, plus where the sandbox is."""
        return {**os.environ, **self.env, "NO_PROXY": "127.0.0.1,localhost"}

    def _call(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root + path, method=method, data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self._call("/_sandbox/stats")

    def run_ids(self) -> list[str]:
        return [run["id"] for run in self._call("/_sandbox/org")["runs"]]

    def members(self) -> dict[str, tuple[list[Any], list[Any]]]:
        """Each run's users and groups, as the sandbox holds them now."""
        return {run["id"]: (run["users"], run["groups"])
                for run in self._call("/_sandbox/org")["runs"]}

    def settings(self, **values: Any) -> Any:
        """Change the sandbox's settings (a quota set anew starts with full buckets)."""
        return self._call("/_sandbox/settings", method="PUT", body=values)

    def reset_stats(self) -> None:
        self._call("/_sandbox/reset", method="POST")

    def journal(self) -> list[dict[str, Any]]:
        return self._call("/_sandbox/journal")["data"]

    def reset_data(self) -> None:
        """Restore every record as it was at start (undoes the SDK's member wipe)."""
        self._call("/_sandbox/reset?data=1", method="POST")

    def rss_mb(self) -> float:
        assert self._proc is not None
        return psutil.Process(self._proc.pid).memory_info().rss / 1e6
