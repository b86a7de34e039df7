"""Installed from a wheel (not editable), `bulk demo` works from any directory.

This is the slowest test of the suite (a build, a fresh venv, the dependencies from
pip's cache or the registry, then the demo): about half a minute, hence its own timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What a build needs; copied so the build leaves nothing (build/, egg-info) in the tree.
SOURCES = ("pyproject.toml", "README.md", "bulk", "jobs", "sample_data")


def _run(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TALLYFY_", "PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.timeout(300)
def test_the_wheel_installs_and_runs_the_demo_from_anywhere(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, source / name)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
          "--disable-pip-version-check", "-w", str(wheels), str(source)], cwd=tmp_path)
    (wheel,) = wheels.glob("bulk-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
          "--disable-pip-version-check", str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bulk = str(venv / "bin" / "bulk")

    demo = _run([bulk, "demo", "--quiet"], cwd=elsewhere, timeout=120)

    assert "done: 40 rows: ok 40" in demo.stdout, demo.stdout
    assert "52 of 52 records kept every member" in demo.stdout
    # The report's page and vendored chart library shipped too.
    report = Path(demo.stdout.split("report (open it in a browser): ")[1].split()[0])
    assert "new uPlot" in report.read_text(encoding="utf-8")
    # The installed copy is the one running, not this checkout.
    where = _run([str(venv / "bin" / "python"), "-c", "import bulk; print(bulk.__file__)"],
                 cwd=elsewhere)
    assert where.stdout.startswith(str(venv))
    # The README's sandbox line works from here too.
    _run([bulk, "sandbox", "--data", "sample_data/org.json", "--export", "org.json"],
         cwd=elsewhere)
    assert (elsewhere / "org.json").stat().st_size > 1000
