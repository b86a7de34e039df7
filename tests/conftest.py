"""Project-wide test fixtures."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest

from tests.support.fixtures import sandbox, threaded_sandbox

__all__ = ["sandbox", "threaded_sandbox"]  # for every folder of tests


@pytest.fixture(autouse=True)
def _own_the_loop_of_sync_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give each synchronous test an event loop that is closed after it.

    looptime's plugin asks the policy for the current loop even in a sync test, which
    makes asyncio create one that nobody closes; with warnings as errors, that
    ResourceWarning would fail whichever test the garbage collector runs in.
    """
    if inspect.iscoroutinefunction(request.function):
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()
