"""The store contract (``retold.testing.store_contract``) on memory://, a SQLite file and PostgreSQL.

The tests themselves live in the package, so that a third-party store runs
the same ones (docs/design.md, "The stores, and the bar for one"). Every
call of ``store_factory`` within a test opens a store on the same data: the
same object for memory://, another connection to the same database for SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from retold.stores import Store
from retold.testing.store_contract import *  # noqa: F403 - the contract's tests, collected here
from retold.testing.store_contract import ManualClock
from tests.conftest import store_for


@pytest.fixture
def store_factory(store_url: str) -> Callable[[ManualClock], AbstractAsyncContextManager[Store]]:
    """Stores on ``store_url``'s data (the same memory store each time, for memory://)."""
    memory: list[Store] = []

    @asynccontextmanager
    async def factory(clock: ManualClock) -> AsyncIterator[Store]:
        if store_url.startswith("memory:"):
            if not memory:
                memory.append(store_for(store_url, clock))
            yield memory[0]
            return
        store = store_for(store_url, clock)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    return factory
