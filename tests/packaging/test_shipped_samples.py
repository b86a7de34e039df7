"""The sample data ships inside the package: the README's paths work from any directory."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bulk.cli import main
from bulk.samples import JOBS, ORG


def test_the_package_holds_the_jobs_and_the_sample_org() -> None:
    assert {job.stem for job in JOBS.glob("*.toml")} == {
        "mass-rename", "owner-reassignment", "migration-batch",
        "leaver-handover"}
    assert json.loads(ORG.read_text(encoding="utf-8"))["runs"]


def test_sandbox_data_sample_data_works_from_another_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["sandbox", "--data", "sample_data/org.json",
                                       "--export", "copy.json"])

    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "copy.json").read_text()) == json.loads(ORG.read_text())


def test_a_missing_data_file_that_is_no_sample_is_still_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["sandbox", "--data", "sample_data/nope.json"])

    assert result.exit_code != 0 and "nope.json" in result.output
