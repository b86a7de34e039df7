"""`make mutants`: plant each bug of tests/mutants.py alone, run its tests, say caught or not.

    python -m tests.run_mutants                 # every mutant
    python -m tests.run_mutants NAME [NAME...]  # some of them
    python -m tests.run_mutants --list          # names and promises

The working tree is never patched: the tree (tracked and new files, as they are now) is
copied once into a temporary directory, each patch is written there and undone after its
tests, and the directory is removed at the end, so a crash or Ctrl-C leaves no bug behind.
First the guarding tests run once with nothing planted (they must pass, or "caught" would
mean nothing), then each mutant runs only its own tests (stopping at the first failure).

Exit 0 when every mutant is caught; 1 when one survives, errs (pytest could not run, or
timed out) or no longer applies (its `old` text is not in the file exactly once: the code
moved, and the table must follow it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[1]
#: One mutant's tests are a handful; a run this long means something hangs.
TIMEOUT = 600


def stale_reason(mutant: Mutant, root: Path = ROOT) -> str | None:
    """Why the patch cannot be applied to the tree at `root`; None when it can."""
    path = root / mutant.file
    if not path.is_file():
        return f"{mutant.file} does not exist"
    count = path.read_text(encoding="utf-8").count(mutant.old)
    if count != 1:
        where = "is no longer in" if count == 0 else f"occurs {count} times in"
        return f"its text {where} {mutant.file} (the code moved: update tests/mutants.py)"
    if mutant.old == mutant.new:
        return "its new text is the old one"
    for test in mutant.tests:
        file, _, name = test.partition("::")
        source = root / file
        if not source.is_file() or not re.search(
                rf"^(async )?def {re.escape(name.split('[')[0])}\(",
                source.read_text(encoding="utf-8"), re.M):
            return f"its test {test} does not exist"
    return None


#: What a copy leaves out when git cannot list the files (a tree unpacked from an archive).
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "build",
                                     "*.egg-info", "*.db", "*.db-*", "*.lock")


def copy_tree(destination: Path) -> None:
    """The files git would see (tracked and untracked, not ignored), as they are now."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, destination, symlinks=True, ignore=_NOT_SOURCE,
                        dirs_exist_ok=True)
        return
    for name in filter(None, listed):
        source = ROOT / name
        if not os.path.lexists(source):
            continue  # deleted in the working tree, not yet in git
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def pytest(copy: Path, tests: list[str]) -> tuple[int, str]:
    """Run these tests in the copy (its own bulk/ imported, not the working tree's)."""
    # COLUMNS: room in the short summary for why the test failed, not only its name.
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1",
           "COLUMNS": "400"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT} s"
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str:
    """The first failed test and why, from pytest's short summary (one line)."""
    found = re.search(r"^(?:FAILED|ERROR) (.+)$", output, re.M)
    if not found:
        return "?"
    line = found.group(1)
    return line if len(line) <= 220 else line[:217] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.run_mutants",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"no mutant named {', '.join(unknown)} (see --list)")
    chosen = [known[name] for name in args.names] or list(MUTANTS)
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name:42} {mutant.file:30} {mutant.promise}")
        return 0

    started = time.monotonic()
    results: dict[str, list[str]] = {"caught": [], "survived": [], "stale": [], "error": []}
    runnable = []
    for mutant in chosen:
        reason = stale_reason(mutant)
        if reason:
            results["stale"].append(mutant.name)
            print(f"STALE     {mutant.name}: {reason}", flush=True)
        else:
            runnable.append(mutant)

    with tempfile.TemporaryDirectory(prefix="bulk-mutants-") as temp:
        copy = Path(temp)
        copy_tree(copy)
        imported = subprocess.run(
            [sys.executable, "-c", "import bulk; print(bulk.__file__)"], cwd=copy,
            env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
        if not imported.stdout.strip().startswith(str(copy)):
            print(f"the copy's bulk/ is not what Python imports there: {imported.stdout}"
                  f"{imported.stderr}", file=sys.stderr)
            return 1
        guarding = list(dict.fromkeys(test for m in runnable for test in m.tests))
        if guarding:
            code, output = pytest(copy, guarding)
            if code != 0:
                print(output[-3000:], file=sys.stderr)
                print(f"the guarding tests fail with nothing planted (pytest exit {code}): "
                      "fix them first", file=sys.stderr)
                return 1
            print(f"baseline  {len(guarding)} guarding tests pass with nothing planted "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
        for mutant in runnable:
            path = copy / mutant.file
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(mutant.old, mutant.new, 1), encoding="utf-8")
            began = time.monotonic()
            try:
                code, output = pytest(copy, list(mutant.tests))
            finally:
                path.write_text(original, encoding="utf-8")
            took = f"({time.monotonic() - began:.1f} s)"
            if code == 1:
                results["caught"].append(mutant.name)
                print(f"caught    {mutant.name} {took}\n          by {first_failure(output)}",
                      flush=True)
            elif code == 0:
                results["survived"].append(mutant.name)
                print(f"SURVIVED  {mutant.name} {took}: {mutant.promise}", flush=True)
            else:
                results["error"].append(mutant.name)
                print(output[-2000:], file=sys.stderr)
                print(f"ERROR     {mutant.name} {took}: pytest exit {code}", flush=True)

    counts = ", ".join(f"{len(names)} {what}" for what, names in results.items())
    print(f"{len(chosen)} mutants: {counts} in {time.monotonic() - started:.0f} s")
    return 0 if len(results["caught"]) == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
