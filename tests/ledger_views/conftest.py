"""Fixtures for report tests: a ledger with every kind of outcome (the sandboxes come
from tests/support/fixtures.py, as everywhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ledger_views.helpers import rich_ledger


@pytest.fixture
async def rich(tmp_path: Path) -> Path:
    return await rich_ledger(tmp_path)
