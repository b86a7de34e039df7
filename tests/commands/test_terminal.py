"""What the terminal shows: the bar at 80 columns, `bulk --help`, select's last line, and the
small texts that must name what exists."""

from __future__ import annotations

import io
import re
from pathlib import Path

from click.testing import CliRunner

from bulk.cli import main
from bulk.commands.select import select_command
from bulk.engine.ledger import Entry
from bulk.progress import MIN_BAR, TerminalProgress
from bulk.samples import JOBS
from tests.support.helpers import env_for

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _screens(stream: io.StringIO) -> list[str]:
    """Each state of the bar's line, as a terminal would show it."""
    return [line for line in re.split(r"[\r\n]", stream.getvalue()) if line.strip()]


def test_at_80_columns_the_bar_keeps_its_count_and_eta() -> None:
    clock, stream, sent = Clock(), io.StringIO(), {"requests": 0}
    bar = TerminalProgress(stream, now=clock, width=80)
    bar.watch(lambda: sent["requests"])
    bar.start(12_000)
    for n in range(3_000):  # every status in play: the longest postfix there is
        clock.t += 0.01
        sent["requests"] += 2
        status = ("ok", "failed", "invalid", "conflict", "unchanged", "in_doubt")[n % 6]
        bar.advance(Entry(row=n + 1, status=status))
    bar.skip(1_000)
    bar.advance(Entry(row=4_001, status="ok"))
    bar._bar.refresh()  # tqdm draws by wall-clock time; draw the line as it stands
    shown = _screens(stream)[-1]
    bar.close()  # the last line (the whole run's rate, no ETA) fits too

    assert all(len(line) <= 80 for line in _screens(stream))
    assert "4001/12000" in shown
    assert re.search(r"ETA \d\d:\d\d", shown), shown
    assert "req/s" in shown
    drawn = shown.split("|")[1]  # the bar itself, between its two edges
    assert len(drawn) >= MIN_BAR, shown


def test_a_wide_terminal_shows_every_count() -> None:
    clock, stream, sent = Clock(), io.StringIO(), {"requests": 0}
    bar = TerminalProgress(stream, now=clock, width=200)
    bar.watch(lambda: sent["requests"])
    bar.start(100)
    for n, status in enumerate(("ok", "failed", "invalid", "conflict", "unchanged")):
        clock.t += 1.0
        sent["requests"] += 2
        bar.advance(Entry(row=n + 1, status=status))
    bar._bar.refresh()  # the running line (a closed bar shows the overall rate, no ETA)

    last = _screens(stream)[-1]
    bar.close()
    for word in ("ok 1", "failed 1", "invalid 1", "conflict 1", "unchanged 1", "ETA"):
        assert word in last, last


def test_bulk_help_gives_each_command_its_whole_summary() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)

    assert result.exit_code == 0
    commands = result.output.split("Commands:", 1)[1]
    assert "..." not in commands
    flat = " ".join(commands.split())
    assert "Find runs, templates or tasks by filters and write them as a `bulk apply` input." \
        in flat
    assert "Write an input that puts back every record a job changed (and run it, with " \
           "--apply)." in flat
    assert all(len(line) <= 80 for line in result.output.splitlines())


def _select(sandbox, tmp_path: Path, limit: int) -> tuple[str, str]:
    out, err = io.StringIO(), FakeTerminal()
    code = select_command("runs", {"output": tmp_path / f"{limit}.csv", "limit": limit,
                                   "rate": 1000.0}, environ=env_for(sandbox), out=out, err=err)
    assert code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def test_select_says_when_limit_stopped_it_and_leaves_no_page_count(threaded_sandbox,
                                                                      tmp_path) -> None:
    out, err = _select(threaded_sandbox, tmp_path, 5)

    assert "selected 5 of 5 runs scanned | stopped at --limit 5" in out
    assert "page 1/1" in err  # it was shown while paging ...
    assert err.endswith("\r\x1b[K")  # ... and wiped for the summary line

    out, _ = _select(threaded_sandbox, tmp_path, 40)  # the sandbox holds 40: nothing left
    assert "selected 40 of 40 runs scanned | 1 pages" in out
    assert "--limit" not in out


def test_sandbox_help_names_job_files_that_exist() -> None:
    text = CliRunner().invoke(main, ["sandbox", "--help"]).output
    named = re.findall(r"jobs/([\w-]+\.toml)", text)

    assert named
    assert all((JOBS / name).is_file() for name in named), named


def test_demo_help_lists_every_demo_job() -> None:
    text = " ".join(CliRunner().invoke(main, ["demo", "--help"]).output.split())

    for job in JOBS.glob("*.toml"):
        assert job.stem in text


def test_the_readme_says_how_to_run_bulk_after_make_demo() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("make demo")
    near = readme[start:start + 1500]

    assert ".venv/bin/bulk" in near and ".venv/bin/activate" in near
