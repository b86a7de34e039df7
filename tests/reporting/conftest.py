"""Fixtures for report tests: a real sandbox, and a ledger with every kind of outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bulk.sandbox import Sandbox
from tests.apply.helpers import ThreadedSandbox, config
from tests.reporting.helpers import rich_ledger


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(config(), host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
def threaded_sandbox() -> Iterator[Sandbox]:
    with ThreadedSandbox(config()) as running:
        yield running


@pytest.fixture
async def rich(tmp_path: Path) -> Path:
    return await rich_ledger(tmp_path)
