"""The sandbox fixtures every folder of tests uses: a real sandbox on loopback (in the
test's loop, or in a thread of its own for tests that run `bulk` as a process)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bulk.sandbox import Sandbox
from tests.support.helpers import ThreadedSandbox, config


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(config(), host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
def threaded_sandbox() -> Iterator[Sandbox]:
    with ThreadedSandbox(config()) as running:
        yield running
