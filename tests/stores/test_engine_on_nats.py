"""The engine's features end to end (tests/stores/test_engine_on_every_store.py) on NATS JetStream."""

from __future__ import annotations

import pytest

from tests.stores.test_engine_on_every_store import *  # noqa: F403 - the tests, collected again here


@pytest.fixture
def store_url(nats_url: str) -> str:
    # A snapshot every 40 log messages, so that the features run while the log is truncated under them.
    return f"{nats_url}&snapshot_every=40"
