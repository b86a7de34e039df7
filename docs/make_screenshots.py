"""Make the report screenshots of docs/ again: a resumed job and a dry run, for real.

Starts the sandbox (a quota, a few 5xx), runs a rename with `bulk apply`, stops it with
Ctrl-C (SIGINT) part way, resumes it, writes its report; then a dry run with failed,
invalid, conflict and repeated rows. Screenshots by headless Chromium, at 1,400 and 700
pixels wide. Run from the repository's root:

    .venv/bin/python docs/make_screenshots.py            # needs `chromium` on PATH

Prints what the terminal shows (the README quotes it); everything but the PNGs goes in
a temporary folder, removed at the end.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BULK = [sys.executable, "-m", "bulk"]
MISSING = ["0" * 31 + str(n) for n in range(1, 7)]  # well-formed ids of no run: 404s


def start_sandbox() -> tuple[subprocess.Popen[str], dict[str, str]]:
    sandbox = subprocess.Popen(
        [*BULK, "sandbox", "--runs", "600", "--rate-limit", "12", "--burst", "12",
         "--latency-ms", "30", "--fail-rate", "0.01", "--seed", "16"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    env = dict(os.environ)
    assert sandbox.stdout is not None
    for _ in range(3):  # export NAME=VALUE, three lines
        name, _, value = sandbox.stdout.readline().strip().removeprefix("export ").partition("=")
        env[name] = value.strip("'\"")
    return sandbox, env


def run_ids(env: dict[str, str], limit: int, work: Path) -> list[str]:
    out = work / "runs.csv"
    subprocess.run([*BULK, "select", "runs", "--limit", str(limit), "-o", str(out),
                    "--rate", "50"], cwd=ROOT, env=env, check=True, capture_output=True)
    with open(out, encoding="utf-8") as rows:
        return [row["run_id"] for row in csv.DictReader(rows)]


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([header, *rows])
    return path


def resumed_job(env: dict[str, str], ids: list[str], work: Path) -> Path:
    rows = [[rid, f"Q1 review {n:03d}"] for n, rid in enumerate(ids[:300])]
    rows[40:40] = [[MISSING[0], "Gone"], [MISSING[1], "Gone too"]]
    rows[150:150] = [["not-an-id", "x"], [MISSING[2], "Gone again"]]
    path = write(work / "q1-rename.csv", ["id", "name"], rows)
    ledger = work / "q1-rename.csv.ledger.db"
    # A little over the sandbox's quota: a few 429s and the pauses they impose.
    command = [*BULK, "apply", "--input", path.name, "--target", "runs", "--rate", "14", "-q"]
    first = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(14)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    print(first.communicate()[0], end="")
    time.sleep(8)  # the person reads the summary, then runs the same command again
    print(subprocess.run(command, cwd=work, env=env, stdout=subprocess.PIPE,
                         text=True).stdout, end="")
    return ledger


def dry_run(env: dict[str, str], ids: list[str], work: Path) -> Path:
    rows = [[rid, f"Handover {n:03d}", ""] for n, rid in enumerate(ids[300:420])]
    rows += [[ids[300], "Handover 000 (again)", ""]]  # a record named twice
    rows += [[ids[420 + n], "Handover x", "Not what it is called"] for n in range(4)]
    rows += [[rid, "Gone", ""] for rid in MISSING[3:6]]
    rows += [["12345", "x", ""], ["", "y", ""], ["zz" * 16, "z", ""]]
    path = write(work / "handover.csv", ["id", "name", "expect.name"], rows)
    done = subprocess.run([*BULK, "apply", "--input", path.name, "--target", "runs",
                           "--dry-run", "--rate", "20"], cwd=work, env=env,
                          stdout=subprocess.PIPE, text=True)
    print(done.stdout, end="")
    return work / "handover.csv.dry-run.ledger.db"


def shoot(html: Path, png: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "install chromium (apt-get install chromium)"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([
            browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
            f"--window-size={width},{height}", f"--screenshot={png}", html.as_uri(),
        ], check=True, capture_output=True, timeout=120)
    print(f"screenshot: {png.relative_to(ROOT)}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bulk-shots-"))
    sandbox, env = start_sandbox()
    try:
        ids = run_ids(env, 500, work)
        ledger = resumed_job(env, ids, work)
        plan = dry_run(env, ids, work)
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(30)
    print(subprocess.run([*BULK, "status", str(ledger.name)], cwd=work,
                         stdout=subprocess.PIPE, text=True).stdout, end="")
    for name, source in (("resumed-job", ledger), ("dry-run", plan)):
        html = work / f"{name}.report.html"
        subprocess.run([*BULK, "report", str(source.name), "-o", str(html)], cwd=work,
                       check=True, capture_output=True)
        shoot(html, DOCS / f"{name}-1400.png", 1400, 2400)
        if name == "resumed-job":
            shoot(html, DOCS / f"{name}-700.png", 700, 3000)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
