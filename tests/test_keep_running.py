"""The engine's loops survive a failure: logged by name, started again."""

from __future__ import annotations

import logging
from functools import partial

import pytest

from retold._wake import keep_running

pytestmark = pytest.mark.anyio


async def _flaky(calls: list[int], fails: int) -> None:
    calls.append(1)
    if len(calls) <= fails:
        raise RuntimeError("store hiccup")


async def test_a_failing_loop_given_as_a_partial_is_logged_by_its_name_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The engine passes its loops as partials (bound to the engine): a failure must not break the log line."""
    calls: list[int] = []
    with caplog.at_level(logging.ERROR, logger="test.loops"):
        await keep_running(partial(_flaky, calls, 2), 0.001, logging.getLogger("test.loops"), "engine")
    assert len(calls) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert all("retold engine loop _flaky failed" in m for m in messages), messages
