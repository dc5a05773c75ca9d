"""Orderings asyncio derives from object identity are deterministic in workflow code.

asyncio keeps tasks in sets: ``TaskGroup`` cancels its children by iterating
one when a child fails, ``asyncio.wait`` returns two. With the default
identity hash those orders follow memory addresses, which differ between the
live run and its replay (another process, or the same one after other
allocations). On the workflow loop they follow creation order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import NondeterminismFound, assert_deterministic, replay

SLEEPERS = 8


@retold.activity
def note(what: str) -> str:
    return what


async def _sleeper(i: int, cancelled: list[int]) -> None:
    try:
        await asyncio.sleep(1000 + i)
    except asyncio.CancelledError:
        cancelled.append(i)
        raise


async def _fail_soon() -> None:
    await asyncio.sleep(1)
    raise ValueError("boom")


@retold.workflow
async def group_fails() -> list[int]:
    """A TaskGroup whose last child fails: its siblings are cancelled, their timers with them."""
    cancelled: list[int] = []
    try:
        async with asyncio.TaskGroup() as group:
            for i in range(SLEEPERS):
                group.create_task(_sleeper(i, cancelled))
            group.create_task(_fail_soon())
    except* ValueError:
        pass
    # An activity per cancelled child, in the order they were cancelled.
    for i in cancelled:
        await retold.execute(note, f"cancelled {i}")
    await retold.wait_signal("finish")
    return cancelled


@retold.workflow
async def wait_returns_sets() -> list[str]:
    """Iterates what asyncio.wait returns, without sorting."""

    async def named(name: str) -> str:
        await asyncio.sleep(1)
        return name

    tasks = [asyncio.ensure_future(named(f"t{i}")) for i in range(SLEEPERS)]
    done, pending = await asyncio.wait(tasks)
    assert not pending
    return [await retold.execute(note, task.result()) for task in done]


@retold.workflow
async def futures_made_directly() -> list[str]:
    """Iterates a set of futures built with ``asyncio.Future()``, not ``loop.create_future()``."""
    futures: list[asyncio.Future[str]] = [asyncio.Future() for _ in range(SLEEPERS)]
    for i, future in enumerate(futures):
        future.set_result(f"f{i}")
    done, _ = await asyncio.wait(futures)
    return [await retold.execute(note, future.result()) for future in done]


def _perturb(n: int) -> list[Any]:
    """Allocate objects of assorted sizes so the next replay gets other addresses."""
    return [bytearray(16 * (k % 13 + 1)) for k in range(n)] + [object() for _ in range(n)]


pytestmark = pytest.mark.anyio


async def test_a_failing_task_group_cancels_its_children_in_creation_order_and_replays() -> None:
    async with retold.Engine("memory://", workflows=[group_fails], activities=[note]) as engine:
        run = await engine.start(group_fails.with_options(id="tg"))
        await run.signal("finish", None)  # buffered until the run waits for it
        with anyio.fail_after(60):
            assert await run.result() == list(range(SLEEPERS))
        history = await run.history()
    cancelled = [e.started for e in history.events if isinstance(e, ev.TimerCancelled)]
    started = [e.seq for e in history.events if isinstance(e, ev.TimerStarted)]
    assert cancelled == started[:SLEEPERS]
    keep: list[Any] = []
    for n in range(1, 30):
        keep.append(_perturb(n * 7))
        assert replay(group_fails, history).finished


async def test_asyncio_wait_returns_sets_that_iterate_in_creation_order() -> None:
    async with retold.Engine("memory://", workflows=[wait_returns_sets], activities=[note]) as engine:
        run = await engine.start(wait_returns_sets.with_options(id="wait"))
        with anyio.fail_after(60):
            assert await run.result() == [f"t{i}" for i in range(SLEEPERS)]
        history = await run.history()
    keep: list[Any] = []
    for n in range(1, 30):
        keep.append(_perturb(n * 7))
        assert replay(wait_returns_sets, history).finished


def test_the_property_runner_covers_a_failing_task_group_across_crashes_and_processes() -> None:
    assert_deterministic(
        group_fails, signals=[("finish", None)], activities=[note], max_examples=25
    )


def test_futures_made_directly_still_hash_by_address_and_the_property_runner_says_so() -> None:
    """The documented limit: ``asyncio.Future()`` (and the future ``asyncio.gather`` returns)
    are not made by the loop, so a set of them follows memory addresses; the property
    runner's replays catch the code that iterates one."""
    with pytest.raises(NondeterminismFound, match="diverged from its history"):
        assert_deterministic(
            futures_made_directly, activities=[note], max_examples=25, failures=False, cross_process=False
        )
