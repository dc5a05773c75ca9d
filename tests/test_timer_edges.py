"""Two timer edges, decided and pinned: ``sleep(0)`` and a timer cancelled at once.

- ``retold.sleep(0)`` (and ``asyncio.sleep(0)``) records no timer: it lets the
  other ready tasks run, as in asyncio.
- A timer started and cancelled in the same activation records both
  ``TimerStarted`` and ``TimerCancelled``.

Live runs and replays agree on both.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import assert_deterministic, replay

pytestmark = pytest.mark.anyio


@retold.workflow
async def yields() -> list[str]:
    order: list[str] = []

    async def other() -> None:
        order.append("other ran")

    task = asyncio.ensure_future(other())
    await retold.sleep(0)  # lets `other` run, records nothing
    order.append("after sleep(0)")
    await asyncio.sleep(0)
    await task
    return order


@retold.workflow
async def cancelled_at_once() -> str:
    done = asyncio.get_running_loop().create_future()
    done.set_result("ready")
    # The deadline's timer is started, then cancelled when the await returns
    # at once: both events are recorded.
    value = await asyncio.wait_for(done, timeout=30)
    handle = asyncio.get_running_loop().call_later(60, lambda: None)
    handle.cancel()
    return str(value)


async def test_sleep_zero_records_no_timer_and_yields_and_replays() -> None:
    async with retold.Engine("memory://", workflows=[yields]) as engine:
        run = await engine.start(yields.with_options(id="yields"))
        with anyio.fail_after(60):
            assert await run.result() == ["other ran", "after sleep(0)"]
        history = await run.history()
    assert [type(e).__name__ for e in history.events] == ["WorkflowStarted", "WorkflowCompleted"]
    assert replay(yields, history).finished


async def test_a_timer_cancelled_in_the_activation_that_started_it_is_recorded_and_replays() -> None:
    async with retold.Engine("memory://", workflows=[cancelled_at_once]) as engine:
        run = await engine.start(cancelled_at_once.with_options(id="at-once"))
        with anyio.fail_after(60):
            assert await run.result() == "ready"
        history = await run.history()
    started = [e.seq for e in history.events if isinstance(e, ev.TimerStarted)]
    cancelled = [e.started for e in history.events if isinstance(e, ev.TimerCancelled)]
    assert len(started) == 2
    assert cancelled == started
    assert replay(cancelled_at_once, history).finished


def test_both_edges_are_deterministic_under_crashes() -> None:
    assert_deterministic(yields, max_examples=10)
    assert_deterministic(cancelled_at_once, max_examples=10)
