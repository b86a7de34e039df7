"""Fixtures for report tests: the apply tests' real sandbox, and a ledger with every kind
of outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apply.conftest import sandbox, threaded_sandbox  # the same sandboxes
from tests.reporting.helpers import rich_ledger

__all__ = ["rich", "sandbox", "threaded_sandbox"]


@pytest.fixture
async def rich(tmp_path: Path) -> Path:
    return await rich_ledger(tmp_path)
