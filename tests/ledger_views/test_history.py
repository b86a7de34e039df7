"""A job's whole life: its first start, each stop (and how) and resume, total and active
time, in the ledger, `bulk status` (text and --json), the report and its chart."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bulk.cli import main
from bulk.engine.job import Job
from bulk.engine.ledger import Entry, Ledger
from bulk.sandbox import Faults
from tests.ledger_views.htmlparse import Page
from tests.support.helpers import env_for, rename_csv, run_ids, run_job, write_csv
from tests.tallyfy.test_outage import DOWN, run_with_outage


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)


class StopAfter:
    """An observer that presses Ctrl-C (the job's first interrupt) after `rows` rows."""

    def __init__(self, rows: int) -> None:
        self.rows, self.done = rows, 0
        self.job: Job | None = None

    def attach(self, job: Job) -> None:
        self.job = job

    def start(self, total: int) -> None:
        pass

    def advance(self, entry: Any) -> None:
        self.done += 1
        if self.done == self.rows and self.job is not None:
            self.job.interrupt("Ctrl-C")

    def skip(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


async def stopped_and_resumed(sandbox, tmp_path: Path) -> tuple[Path, Path]:
    """A job of 40 runs stopped by Ctrl-C after 10 rows, then resumed to its end."""
    from bulk.engine.clock import SkipClock
    from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
    from tests.support.helpers import connection_to

    ids = run_ids(sandbox, 38)
    rows = [[rid, f"Life {n}"] for n, rid in enumerate(ids)]
    rows += [["0" * 31 + "1", "Gone"], ["0" * 31 + "2", "Gone too"]]  # two 404s
    path = write_csv(tmp_path / "life.csv", ["id", "name"], rows)
    stop = StopAfter(10)
    prepared = prepare(ApplyOptions(input=path, rate=10_000.0, burst=100, concurrency=2),
                       connection_to(sandbox))
    try:
        first = await execute(prepared, clock=SkipClock(), observer=stop, on_job=stop.attach)
    finally:
        prepared.ledger.close()
    assert first.interrupted and first.stopped_by == "Ctrl-C"
    summary, _entries = await run_job(sandbox, path)
    assert summary.exit_code == 1 and summary.skipped >= 10
    return path, Path(f"{path}.ledger.db")


async def test_a_resumed_job_is_told_from_its_first_start(sandbox, tmp_path) -> None:
    _path, ledger = await stopped_and_resumed(sandbox, tmp_path)
    with sqlite3.connect(ledger) as db:
        runs = db.execute(
            "SELECT started_at, ended_at, how FROM sessions ORDER BY rowid").fetchall()
    assert [how for _start, _end, how in runs] == ["Ctrl-C", "finished"]
    first_start, first_end = runs[0][0], runs[0][1]
    assert first_start < first_end <= runs[1][0] < runs[1][1]

    lines = invoke(["status", str(ledger)]).stdout.splitlines()
    when = lambda stamp: datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")  # noqa: E731
    assert f"started:  {when(first_start)}" in lines
    assert f"stopped:  {when(first_end)} (Ctrl-C)" in lines
    assert f"resumed:  {when(runs[1][0])}" in lines
    assert f"ended:    {when(runs[1][1])} (finished)" in lines
    assert any(re.match(r"time:     [\d.]+s in all, [\d.]+s running \(2 runs\)$", line)
               for line in lines), lines

    found = json.loads(invoke(["status", str(ledger), "--json"]).stdout)
    assert found["first_start"] == first_start and found["resumes"] == 1
    assert [run["how"] for run in found["runs"]] == ["Ctrl-C", "finished"]
    assert found["active_seconds"] <= found["total_seconds"]
    assert found["counts"]["ok"] == 38 and found["counts"]["failed"] == 2

    out = tmp_path / "report.html"
    invoke(["report", str(ledger), "-o", str(out)])
    page = Page(out.read_text(encoding="utf-8"))
    header = out.read_text(encoding="utf-8").split("<main>")[0]
    assert f"{when(first_start)} → {when(runs[1][1])}" in header
    assert "stopped and resumed 1 time" in header
    job = page.text("job")
    assert f"started {when(first_start)}" in job
    assert f"first start {when(first_start)} {when(first_end)}" in job
    assert "to finish:" not in job  # it did finish
    assert f"resumed {when(runs[1][0])} {when(runs[1][1])}" in job and "finished" in job
    # The chart starts at the first start and knows where the job stopped and resumed.
    data = json.loads(next(s for s in page.scripts if s.lstrip().startswith("{")))
    stop, resume = data["runs"]
    assert stop[2] == "Ctrl-C" and resume[2] == "finished"
    assert 0 <= stop[0] < data["width"] and stop[1] <= resume[0]
    assert "1 stop (Ctrl-C)" in page.text("throughput")


async def test_each_way_of_stopping_is_named(sandbox, tmp_path) -> None:
    # An outage past its limit.
    path = rename_csv(tmp_path / "o.csv", run_ids(sandbox, 30), "Outage")
    summary, _entries, _ = await run_with_outage(sandbox, path, seconds=None, outage_limit=60)
    assert summary.exit_code == 3
    sandbox.faults = Faults()  # the API is back
    # Down at the start: the preflight stops the job before any row.
    down = rename_csv(tmp_path / "d.csv", run_ids(sandbox, 3), "Down")
    sandbox.faults = DOWN
    await run_job(sandbox, down)
    sandbox.faults = Faults()
    # Too many failures (--max-failures).
    stale = write_csv(tmp_path / "s.csv", ["id", "name"],
                      [[f"{n:032x}", "Stale"] for n in range(10)])
    await run_job(sandbox, stale, max_failures=3, concurrency=1)

    told = {}
    for name in ("o.csv", "s.csv", "d.csv"):
        found = json.loads(invoke(["status", str(tmp_path / f"{name}.ledger.db"),
                                   "--json"]).stdout)
        told[name] = found["runs"][-1]
        lines = invoke(["status", str(tmp_path / f"{name}.ledger.db")]).stdout.splitlines()
        assert any(line.startswith("          to finish: ") for line in lines), lines
    assert told["o.csv"]["how"] == "outage"
    assert told["o.csv"]["detail"].startswith("the API stayed unreachable")
    assert told["s.csv"]["how"] == "failure stop"
    assert told["s.csv"]["detail"].startswith("3 rows failed (--max-failures 3)")
    assert told["d.csv"]["how"] == "API unavailable"
    # The report of a job stopped and not yet resumed says how to finish it.
    out = tmp_path / "o.html"
    invoke(["report", str(tmp_path / "o.csv.ledger.db"), "-o", str(out)])
    job = Page(out.read_text(encoding="utf-8")).text("job")
    assert "outage: the API stayed unreachable for 1 min; run again to resume (to finish: " \
        "the API was unreachable too long; run the same command again once it answers)" in job


def test_a_run_that_never_wrote_its_end_is_a_crash_at_its_last_write(tmp_path) -> None:
    path = tmp_path / "crash.ledger.db"
    with Ledger(path) as book:
        book.claim({"input_sha256": "ab", "target": "runs", "org": "o"})
        book.begin_session()
        book.record(Entry(row=1, status="ok", record_id="a" * 32))
        book.commit()
        last = book.get(1).updated_at
        # ... killed here: no end_session.
    with Ledger(path) as book:
        book.begin_session()
        book.end_session("finished")
    with sqlite3.connect(path) as db:
        runs = db.execute("SELECT ended_at, how FROM sessions ORDER BY rowid").fetchall()
    assert runs[0] == (last, "crash") and runs[1][1] == "finished"
    lines = invoke(["status", str(path)]).stdout.splitlines()
    assert any(line.startswith("stopped:") and "(crash: killed or crashed" in line
               for line in lines), lines
    assert "          to finish: run the same command again (it settles any row left in " \
        "doubt)" not in lines  # the run after it finished


def test_a_ledger_from_before_runs_were_noted_still_reads_and_keeps_its_start(tmp_path) -> None:
    path = tmp_path / "old.ledger.db"
    with Ledger(path) as book:
        book.claim({"input_sha256": "ab", "target": "runs", "org": "o"})
        book.record(Entry(row=1, status="ok", record_id="a" * 32))
        book.set_meta(started_at="2026-01-02T03:04:05.000+00:00", finished_at="",
                      outcome="interrupted", rows="2")
    with sqlite3.connect(path) as db:  # as an older version wrote it: no sessions table
        db.execute("DROP TABLE sessions")
    lines = invoke(["status", str(path)]).stdout.splitlines()
    assert "started:  2026-01-02 03:04:05 UTC" in lines

    with Ledger(path) as book:  # resumed by this version
        book.begin_session()
        book.end_session("finished")
    found = json.loads(invoke(["status", str(path), "--json"]).stdout)
    assert found["first_start"] == "2026-01-02T03:04:05.000+00:00"
    assert [run["how"] for run in found["runs"]] == ["interrupt", "finished"]


def test_a_fresh_start_forgets_the_old_runs(tmp_path) -> None:
    path = tmp_path / "f.ledger.db"
    with Ledger(path) as book:
        book.claim({"input_sha256": "ab", "target": "runs", "org": "o"})
        book.begin_session()
        book.end_session("Ctrl-C")
        book.claim({"input_sha256": "cd", "target": "runs", "org": "o"}, fresh=True)
        book.begin_session()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*), MAX(how) FROM sessions").fetchone() == (1, None)


def test_the_end_of_a_job_with_failures_names_status_and_report(threaded_sandbox,
                                                                  tmp_path) -> None:
    ids = run_ids(threaded_sandbox, 3)
    path = write_csv(tmp_path / "f.csv", ["id", "name"],
                     [[ids[0], "A"], ["0" * 31 + "9", "Gone"], [ids[1], "B"]])

    result = invoke(["apply", "--input", str(path), "--rate", "1000"], env_for(threaded_sandbox))

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    ledger = f"{path}.ledger.db"
    assert lines[0].startswith("done: 3 rows: ok 2, unchanged 0, invalid 0, failed 1")
    assert lines[1] == (f"next: bulk status {ledger} (why rows failed, and what to do) · "
                        f"bulk report {ledger} (the same as a page)")
    assert len(lines) == 2


def test_each_cause_says_what_to_do_and_its_command_lists_just_those_rows(
        threaded_sandbox, tmp_path, monkeypatch) -> None:
    ids = run_ids(threaded_sandbox, 3)
    rows = [[ids[0], "A"], ["0" * 31 + "9", "Gone"], ["bad", "B"], [ids[1], "C"],
            ["0" * 31 + "8", "Gone too"]]
    path = write_csv(tmp_path / "c.csv", ["id", "name"], rows)
    invoke(["apply", "--input", str(path), "--rate", "1000"], env_for(threaded_sandbox))
    ledger = f"{path}.ledger.db"

    found = json.loads(invoke(["status", ledger, "--json"]).stdout)
    causes = {cause["status"]: cause for cause in found["causes"]}
    gone, bad = causes["failed"], causes["invalid"]
    assert gone["what_to_do"].startswith("the record is gone")
    assert gone["first_rows"] == [2, 5] and len(gone["commands"]) == 1
    assert bad["what_to_do"].startswith("the row itself is wrong")
    assert bad["commands"][1] == f"bulk apply --input invalid-{bad['key']}.csv --target runs"
    # The commands, as printed, write exactly those rows (a CSV that is a valid input).
    monkeypatch.chdir(tmp_path)
    for cause in (gone, bad):
        args = cause["commands"][0].split()[1:]
        assert invoke(args).exit_code == 0
        written = (tmp_path / args[-1]).read_text(encoding="utf-8").splitlines()
        assert [int(line.split(",")[0]) for line in written[1:]] == cause["first_rows"]
    text = invoke(["status", ledger]).stdout
    for cause in (gone, bad):
        assert f"what to do: {cause['what_to_do']}" in text
        assert cause["commands"][0] in text
