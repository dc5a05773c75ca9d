"""The store contract (retold.testing.store_contract) on NATS JetStream: every test, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from retold.stores.nats import NatsStore
from retold.testing.store_contract import *  # noqa: F403 - the tests, collected by pytest
from retold.testing.store_contract import ManualClock, StoreFactory


@pytest.fixture
def store_factory(nats_url: str) -> StoreFactory:
    @asynccontextmanager
    async def factory(clock: ManualClock) -> AsyncIterator[NatsStore]:
        store = NatsStore(nats_url, clock=clock, lease_clock=clock)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    return factory
