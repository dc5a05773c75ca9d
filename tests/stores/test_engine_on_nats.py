"""The engine's features end to end (tests/stores/test_engine_on_every_store.py) on NATS JetStream."""

from __future__ import annotations

import pytest

from tests.stores.test_engine_on_every_store import *  # noqa: F403 - the tests, collected again here


@pytest.fixture
def store_url(nats_url: str) -> str:
    return nats_url
