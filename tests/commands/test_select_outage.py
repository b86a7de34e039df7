"""`bulk select` meets an outage as `bulk apply` does: it opens the API through the same
builder (`api.open_api`), so the breaker holds it while the API is down (a probe at a time,
its attempts unspent), it goes on when the API is back, and it stops after the outage
limit, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk.engine.errors import SelectFailed
from bulk.engine.retry import RetryPolicy
from bulk.sandbox import Sandbox
from bulk.tallyfy.select_query import build_selection
from bulk.tallyfy.select_scan import Progress, SelectOptions, select
from bulk.tallyfy.targets import RUNS
from tests.commands.test_select import ids_of
from tests.support.helpers import config, connection_to
from tests.tallyfy.test_outage import DOWN, OutageClock


class DownAfterPage(Progress):
    """Takes the API down once `pages` pages are read (for `seconds`, or for good)."""

    def __init__(self, sandbox: Sandbox, clock: OutageClock, pages: int,
                 seconds: float | None) -> None:
        super().__init__(None)
        self.sandbox, self.clock, self.pages, self.seconds = sandbox, clock, pages, seconds
        self.failures_before = 0
        self.down_at = 0.0

    def page(self, summary, total_pages) -> None:
        if summary.pages == self.pages:
            self.failures_before = sum(self.sandbox.stats.faults.values())
            self.sandbox.faults = DOWN
            self.down_at = self.clock.now()
            if self.seconds is not None:
                self.clock.until = self.clock.now() + self.seconds


@pytest.fixture
async def sandbox():
    async with Sandbox(config(runs=450), host="127.0.0.1", port=0) as sandbox:
        yield sandbox


async def select_with_outage(sandbox, path, *, seconds, progress=None, **options):
    clock = progress.clock if progress else OutageClock(sandbox)
    progress = progress or DownAfterPage(sandbox, clock, pages=2, seconds=seconds)
    settings = {"rate": 10_000.0, "burst": 100, "backoff": RetryPolicy(base=0.01, cap=0.05)}
    settings.update(options)
    summary = await select(build_selection(RUNS), SelectOptions(output=path, **settings),
                           connection_to(sandbox), clock=clock, progress=progress)
    return summary, progress, clock


async def test_select_waits_out_a_30_s_outage_and_reads_every_page(sandbox, tmp_path):
    path = tmp_path / "all.csv"

    summary, progress, _ = await select_with_outage(sandbox, path, seconds=30)

    assert summary.pages == 5 and summary.selected == 450
    assert ids_of(path) == list(sandbox.store.runs)
    # The page that met the outage did not spend its 5 attempts on it: the breaker held
    # it, a probe at a time with growing waits, until the API answered again.
    failed_during = sum(sandbox.stats.faults.values()) - progress.failures_before
    assert 5 < failed_during <= 15, failed_during


async def test_select_stops_after_the_outage_limit_and_writes_nothing(sandbox, tmp_path):
    path = tmp_path / "all.csv"
    path.write_text("the previous file\n")

    progress = DownAfterPage(sandbox, OutageClock(sandbox), pages=2, seconds=None)
    with pytest.raises(SelectFailed) as failed:
        await select_with_outage(sandbox, path, seconds=None, progress=progress,
                                 outage_limit=60)

    assert progress.clock.now() - progress.down_at >= 60  # it waited the limit out

    # Worded as apply's aborted summary ("the API stayed unreachable for 1 min"), with
    # the last answer; a select has nothing to resume, so it does not say "resume".
    message = str(failed.value)
    assert message.startswith("the API stayed unreachable for 1 min (last: HTTP 5"), message
    assert "resume" not in message
    assert path.read_text() == "the previous file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["all.csv"]


def test_select_takes_the_outage_limit_from_the_option_table(tmp_path):
    from click.testing import CliRunner

    from bulk.cli import main

    result = CliRunner().invoke(main, ["select", "runs", "-o", str(tmp_path / "x.csv"),
                                       "--outage-limit", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--outage-limit'" in result.output
    assert "1 to 86400" in result.output
    assert list(tmp_path.iterdir()) == []


async def test_an_outage_while_the_member_list_is_read_is_one_line_not_a_traceback(sandbox):
    # `--owner EMAIL` reads the member list first, through the same builder and breaker:
    # an outage past the limit there is "the list could not be read" (select exits 1,
    # nothing written), not the breaker's StopJob escaping the command.
    from bulk.tallyfy.people import MembersUnavailable, directory_for

    sandbox.faults = DOWN
    options = SelectOptions(output=Path("unused.csv"), rate=10_000.0, burst=100,
                            backoff=RetryPolicy(base=0.01, cap=0.05), outage_limit=60)
    with pytest.raises(MembersUnavailable, match="member list: the API stayed unreachable"):
        await directory_for(connection_to(sandbox), options, OutageClock(sandbox))
