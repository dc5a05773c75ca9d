"""Updates (tests/test_updates.py) on NATS JetStream."""

from __future__ import annotations

import pytest

from tests.test_updates import *  # noqa: F403 - the tests, collected again here


@pytest.fixture
def store_url(nats_url: str) -> str:
    return nats_url
