"""The quota belongs to the job: it is found, and a 429 never spends a row's attempts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bulk.engine.clock import SkipClock
from bulk.sandbox import Sandbox
from bulk.tallyfy.apply_job import ApplyOptions, execute, prepare
from tests.support.helpers import config, connection_to, rename_csv, run_ids, run_job


async def test_rows_refused_for_the_quota_do_not_spend_their_attempts(tmp_path: Path) -> None:
    # One virtual clock for both sides, a quota far below the pace asked, and a single
    # attempt per row: every 429 would otherwise end its row as failed.
    clock = SkipClock()
    async with Sandbox(config(rate_limit=2, burst=1, clock=clock.now), port=0) as sandbox:
        path = rename_csv(tmp_path / "rename.csv", run_ids(sandbox, 20), "Quota")

        # One worker: a SkipClock adds up every worker's sleeps, so with eight a read on
        # the wire would seem to age seconds (its age counts from when it left, issue 13)
        # and be read again; the quota's 429s come as well with one.
        summary, entries = await run_job(sandbox, path, clock=clock, concurrency=1,
                                         max_attempts=1)

        assert [e.status for e in entries] == ["ok"] * 20, [e.error for e in entries]
        assert sandbox.stats.rate_limited > 0
        assert summary.exit_code == 0


@pytest.mark.looptime
@pytest.mark.parametrize(("quota", "rate", "mode", "headers"), [
    (5, 1000.0, "sometimes", False), (20, "auto", "never", False),
    (5, 1000.0, "sometimes", True), (60, "auto", "always", True)])
async def test_a_job_through_the_sandbox_converges_to_its_hidden_quota(tmp_path, quota, rate,
                                                                       mode, headers):
    # The real path (execute, aiohttp, the sandbox over loopback) in looptime's fake loop
    # time, which the sandbox's quota reads too: a 60 s job at the quota, exactly.
    loop = asyncio.get_running_loop()
    rows = quota * 60 // 2  # a GET and a PUT a row
    sandbox_config = config(runs=rows, rate_limit=quota, retry_after=mode, clock=loop.time,
                            journal_size=rows * 2 + 1000, rate_headers=headers)
    async with Sandbox(sandbox_config, port=0) as sandbox:
        path = rename_csv(tmp_path / "rename.csv", run_ids(sandbox), "Quota")
        prepared = prepare(ApplyOptions(input=path, rate=rate), connection_to(sandbox))
        started = loop.time()
        try:
            summary = await execute(prepared)
        finally:
            prepared.ledger.close()
        elapsed = loop.time() - started
        stats = sandbox.stats

    assert summary.exit_code == 0
    accepted = stats.requests - stats.rate_limited
    assert elapsed >= 60 - 1  # the bucket starts with a second's worth
    assert accepted / elapsed >= (0.95 if headers else 0.9) * quota
    # Told the quota, the pacer never runs the bucket dry.
    assert stats.rate_limited <= (0 if headers else 0.05 * stats.requests)
    assert summary.rate_limited == stats.rate_limited


def test_rate_auto_on_the_command_line_and_in_a_job_file(threaded_sandbox, tmp_path):
    from tests.commands.test_cli import invoke
    from tests.support.helpers import env_for

    path = rename_csv(tmp_path / "r.csv", run_ids(threaded_sandbox, 3), "Auto")
    env = env_for(threaded_sandbox)
    assert invoke(["apply", "--input", str(path), "--rate", "auto", "-q"], env).exit_code == 0

    refused = invoke(["apply", "--input", str(path), "--rate", "fast"], env)
    assert refused.exit_code == 2
    assert "is not a number (expected 0.01 to 1000000 or auto)" in refused.stderr

    job = tmp_path / "job.toml"
    job.write_text('input = "r.csv"\nrate = "auto"\nfresh = true\n', encoding="utf-8")
    assert invoke(["apply", str(job), "-q"], env).exit_code == 0
    job.write_text('input = "r.csv"\nrate = "quick"\n', encoding="utf-8")
    wrong = invoke(["apply", str(job)], env)
    assert wrong.exit_code == 2 and "expected a number from 0.01 to 1000000 or auto" in wrong.stderr
