"""Cancellation inside workflows (issue 18, items 4 and 5)."""

from __future__ import annotations

import asyncio

import pytest

import retold
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.runtime._instance import WorkflowInstance
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity
async def release(order: str) -> str:
    return f"released {order}"


@retold.workflow
async def cleans_up(order: str) -> str:
    try:
        await retold.wait_signal("paid")
        return "paid"
    except asyncio.CancelledError:
        await retold.execute(release, order)
        raise


# -- item 5: a cancel that arrives before the workflow first runs --------------------------


async def test_cancel_before_the_first_run_reaches_the_try_block(make_engine: EngineFactory) -> None:
    async with make_engine([cleans_up], run_workers=False) as client:
        run = await client.start(cleans_up.with_options(id="early-cancel"), "o-1")
        await run.cancel("changed my mind")
        # Both inputs wait for the first workflow task: the code has not run yet.
        assert [e.type for e in await run.history()] == ["WorkflowStarted", "CancelRequested"]
    async with make_engine([cleans_up], [release]) as engine:
        run = engine.get_handle("early-cancel")
        with pytest.raises(retold.WorkflowCancelledError):
            await run.result(timeout=60)
        history = list(await run.history())
    # The except block ran: its cleanup activity was scheduled and completed.
    scheduled = [e for e in history if isinstance(e, ev.ActivityScheduled)]
    assert [e.activity for e in scheduled] == [release.name]
    assert any(isinstance(e, ev.ActivityCompleted) for e in history)
    assert history[-1].type == "WorkflowCancelled"


def test_cancel_in_the_first_activation_is_delivered_at_the_first_await() -> None:
    codec = JsonCodec()
    started = ev.WorkflowStarted(seq=1, at=0.0, workflow=cleans_up.name, workflow_id="w",
                                 input=codec.encode(["o-2"]))
    cancel = ev.CancelRequested(seq=2, at=0.0, reason="stop")
    commands = WorkflowInstance(cleans_up, "r", codec).apply([started, cancel])
    assert [type(c) for c in commands] == [ev.ActivityScheduled]
    # Replaying the same history with its command agrees (no NondeterminismError).
    again = WorkflowInstance(cleans_up, "r", codec).apply([started, cancel, *commands])
    assert again == []
