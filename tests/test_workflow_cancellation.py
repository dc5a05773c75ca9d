"""Cancellation inside workflows (issue 18, items 4 and 5)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.history.failure import Failure
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


# -- item 4: cancelling an awaited activity or child from workflow code ---------------------

_CODEC = JsonCodec()


@retold.activity
async def slow_quote(item: str) -> int:
    await anyio.Event().wait()  # until cancelled
    return 0


@retold.workflow
async def quote_with_timeout(item: str) -> str:
    try:
        async with asyncio.timeout(60):
            quote = await retold.execute(slow_quote, item)
            return str(quote)
    except TimeoutError:
        return "no quote"


@retold.workflow
async def quote_with_wait_for(item: str) -> str:
    try:
        quote = await asyncio.wait_for(retold.execute(slow_quote, item), 60)
        return str(quote)
    except TimeoutError:
        return "no quote"


@retold.workflow
async def waits_for_signal() -> str:
    try:
        return str(await retold.wait_signal("go"))
    finally:
        await retold.execute(release, "child")


@retold.workflow
async def child_with_timeout() -> str:
    try:
        async with asyncio.timeout(60):
            return await retold.execute_child(waits_for_signal.with_options(id="kid"))
    except TimeoutError:
        return "child timed out"


def _start(workflow: Any, *args: object) -> ev.WorkflowStarted:
    return ev.WorkflowStarted(seq=1, at=0.0, workflow=workflow.name, workflow_id="w",
                              input=_CODEC.encode(list(args)))


def _types(events: list[ev.Event]) -> list[str]:
    return [e.type for e in events]


@pytest.mark.parametrize("workflow", [quote_with_timeout, quote_with_wait_for])
def test_a_timeout_around_an_activity_records_its_cancellation(workflow: retold.Workflow[..., str]) -> None:
    instance = WorkflowInstance(workflow, "r", _CODEC)
    history: list[ev.Event] = [_start(workflow, "tea")]
    history += instance.apply(history)
    assert sorted(_types(history)) == ["ActivityScheduled", "TimerStarted", "WorkflowStarted"]
    activity = next(e.seq for e in history if isinstance(e, ev.ActivityScheduled))
    timer = next(e.seq for e in history if isinstance(e, ev.TimerStarted))
    fired = ev.TimerFired(seq=4, at=60.0, started=timer)
    commands = instance.apply([fired])
    assert _types(commands) == ["ActivityCancelRequested", "WorkflowCompleted"]
    assert isinstance(commands[0], ev.ActivityCancelRequested)
    assert commands[0].scheduled == activity
    assert isinstance(commands[1], ev.WorkflowCompleted)
    assert _CODEC.decode(commands[1].result) == "no quote"
    # The activity's late result is ignored, and a replay agrees with the history.
    history += [fired, *commands]
    assert WorkflowInstance(workflow, "r", _CODEC).apply(history) == []


def test_a_timeout_around_a_child_waits_for_the_child_to_close() -> None:
    instance = WorkflowInstance(child_with_timeout, "r", _CODEC)
    history: list[ev.Event] = [_start(child_with_timeout)]
    history += instance.apply(history)
    assert sorted(_types(history)) == ["ChildWorkflowStarted", "TimerStarted", "WorkflowStarted"]
    started = next(e.seq for e in history if isinstance(e, ev.ChildWorkflowStarted))
    timer = next(e.seq for e in history if isinstance(e, ev.TimerStarted))
    fired = ev.TimerFired(seq=4, at=60.0, started=timer)
    commands = instance.apply([fired])
    # The child is asked to cancel; the parent keeps waiting until it has closed.
    assert _types(commands) == ["ChildWorkflowCancelRequested"]
    request = commands[0]
    assert isinstance(request, ev.ChildWorkflowCancelRequested)
    assert (request.started, request.workflow_id) == (started, "kid")
    assert not instance.finished
    history += [fired, *commands]
    closed = ev.ChildWorkflowFailed(seq=6, at=61.0, started=started, cancelled=True, failure=Failure(
        type="CancelledError", message="the run was cancelled", non_retryable=True))
    commands = instance.apply([closed])
    assert _types(commands) == ["WorkflowCompleted"]
    assert isinstance(commands[0], ev.WorkflowCompleted)
    assert _CODEC.decode(commands[0].result) == "child timed out"
    history += [closed, *commands]
    assert WorkflowInstance(child_with_timeout, "r", _CODEC).apply(history) == []


def test_cancelling_a_run_that_waits_for_a_child_cancels_the_child_first() -> None:
    @retold.workflow(name="parent_of_waiter")
    async def parent_of_waiter() -> str:
        return await retold.execute_child(waits_for_signal.with_options(id="kid"))

    instance = WorkflowInstance(parent_of_waiter, "r", _CODEC)
    history: list[ev.Event] = [_start(parent_of_waiter)]
    history += instance.apply(history)
    commands = instance.apply([ev.CancelRequested(seq=3, at=1.0, reason="stop")])
    assert _types(commands) == ["ChildWorkflowCancelRequested"]
    assert not instance.finished
    closed = ev.ChildWorkflowFailed(seq=5, at=2.0, started=2, cancelled=True, failure=Failure(
        type="CancelledError", message="the run was cancelled", non_retryable=True))
    assert _types(instance.apply([closed])) == ["WorkflowCancelled"]


# Observed by the test: the activity attempt started, and was cancelled by its worker.
_attempts: dict[str, anyio.Event] = {}


@retold.activity
async def pack_boxes(order: str) -> str:
    _attempts[f"{order}:started"].set()
    try:
        await anyio.Event().wait()
    except anyio.get_cancelled_exc_class():
        _attempts[f"{order}:cancelled"].set()
        raise
    return "packed"


@retold.workflow
async def cancels_its_activity(order: str) -> str:
    packing = asyncio.create_task(retold.execute(pack_boxes, order))
    await retold.wait_signal("stop")
    packing.cancel()
    try:
        return await packing
    except asyncio.CancelledError:
        return "stopped packing"


async def test_task_cancel_of_an_activity_stops_the_running_attempt(make_engine: EngineFactory) -> None:
    _attempts.update({"o-9:started": anyio.Event(), "o-9:cancelled": anyio.Event()})
    async with make_engine([cancels_its_activity], [pack_boxes], lease=1.0) as engine:
        run = await engine.start(cancels_its_activity.with_options(id="cancel-activity"), "o-9")
        with anyio.fail_after(60):
            await _attempts["o-9:started"].wait()
        await run.signal("stop")
        assert await run.result(timeout=60) == "stopped packing"
        with anyio.fail_after(60):
            await _attempts["o-9:cancelled"].wait()  # the worker cut the attempt off
        history = list(await run.history())
    scheduled = next(e for e in history if isinstance(e, ev.ActivityScheduled))
    requests = [e for e in history if isinstance(e, ev.ActivityCancelRequested)]
    assert [r.scheduled for r in requests] == [scheduled.seq]
    assert not [e for e in history if isinstance(e, ev.ActivityCompleted | ev.ActivityFailed)]


@retold.workflow
async def cancels_its_child() -> str:
    child = asyncio.create_task(retold.execute_child(waits_for_signal.with_options(id="kid-1")))
    await retold.wait_signal("stop")
    child.cancel()
    try:
        return await child
    except asyncio.CancelledError:
        return "child cancelled"


async def test_task_cancel_of_a_child_cancels_it_before_the_parent_goes_on(make_engine: EngineFactory) -> None:
    async with make_engine([cancels_its_child, waits_for_signal], [release]) as engine:
        run = await engine.start(cancels_its_child.with_options(id="cancel-child"))
        kid = engine.get_handle("kid-1")
        with anyio.fail_after(60):
            while "ChildWorkflowStarted" not in _types(list(await run.history())):
                await anyio.sleep(0.05)
        await run.signal("stop")
        assert await run.result(timeout=60) == "child cancelled"
        child = await kid.describe()
        parent = await run.describe()
        kid_history = _types(list(await kid.history()))
        history = _types(list(await run.history()))
    # The child was cancelled (its finally block ran its activity) and closed first.
    assert child.status == "cancelled"
    assert "CancelRequested" in kid_history
    assert "ActivityCompleted" in kid_history
    assert child.closed_at is not None
    assert parent.closed_at is not None
    assert child.closed_at <= parent.closed_at
    assert history.index("ChildWorkflowCancelRequested") < history.index("ChildWorkflowFailed")
    assert history[-1] == "WorkflowCompleted"


# -- the property runner: crash, resume and replay around cancellations ----------------------


@retold.activity
async def quick_quote(item: str) -> int:
    return len(item)


@retold.workflow
async def races_deadlines(item: str) -> str:
    """A child and an activity, each raced against a deadline or a signal."""
    seen = []
    try:
        async with asyncio.timeout(30):
            seen.append(await retold.execute_child(waits_for_signal.with_options(id=f"{item}-kid")))
    except TimeoutError:
        seen.append("child timed out")
    quote = asyncio.create_task(retold.execute(quick_quote, item))
    if await retold.wait_signal("cancel", bool, timeout=10):
        quote.cancel()
    try:
        seen.append(str(await quote))
    except asyncio.CancelledError:
        seen.append("quote cancelled")
    return ", ".join(seen)


def test_cancellations_are_deterministic_under_crashes_and_reordering() -> None:
    from retold.testing import assert_deterministic

    assert_deterministic(
        races_deadlines, args=("tea",), signals=[("cancel", True)],
        activities=[quick_quote, release], max_examples=40,
    )


# -- a thread's activity learns of its cancellation ------------------------------------------

_learned: dict[str, threading.Event] = {}
_flags: dict[str, bool] = {}


@retold.activity
def count_stock(shelf: str) -> str:
    """A plain `def` activity (it runs in a thread): it polls heartbeat() until told to stop."""
    deadline = time.monotonic() + 120  # the thread cannot be interrupted: never outlive the test
    while time.monotonic() < deadline:
        try:
            retold.heartbeat(shelf)
        except asyncio.CancelledError:
            _flags[shelf] = retold.activity_info().cancelled
            _learned[shelf].set()
            raise
        time.sleep(0.02)
    return "counted"


@retold.workflow
async def counts_with_a_deadline(shelf: str) -> str:
    try:
        return await asyncio.wait_for(retold.execute(count_stock, shelf), 1)
    except TimeoutError:
        return "gave up counting"


@pytest.mark.parametrize("lease", [1.0, 600.0])
async def test_a_thread_activity_cancelled_by_wait_for_learns_of_it(make_engine: EngineFactory, lease: float) -> None:
    # With a 600 s lease no renewal comes within the test: the engine that records the
    # cancel request stops its own running attempt at once.
    _learned["s-1"] = threading.Event()
    async with make_engine([counts_with_a_deadline], [count_stock], lease=lease) as engine:
        run = await engine.start(counts_with_a_deadline.with_options(id="count-1"), "s-1")
        assert await run.result(timeout=60) == "gave up counting"
        with anyio.fail_after(60):
            while not _learned["s-1"].is_set():  # heartbeat() raised inside the thread
                await anyio.sleep(0.05)
        history = list(await run.history())
    assert _flags["s-1"] is True  # and activity_info().cancelled said so
    scheduled = next(e for e in history if isinstance(e, ev.ActivityScheduled))
    assert [e.scheduled for e in history if isinstance(e, ev.ActivityCancelRequested)] == [scheduled.seq]
    assert not [e for e in history if isinstance(e, ev.ActivityCompleted | ev.ActivityFailed)]
    # The new events replay.
    from retold.testing import replay

    replay(counts_with_a_deadline, history)  # raises if they do not


@retold.workflow
async def waits_for_child_with_deadline(kid: str) -> str:
    try:
        return await asyncio.wait_for(retold.execute_child(waits_for_signal.with_options(id=kid)), 1)
    except TimeoutError:
        return "child timed out"


async def test_a_parent_that_wait_fors_a_child_ends_with_the_child_cancelled(make_engine: EngineFactory) -> None:
    # Regression test (passed before this branch): the child is closed, not left running.
    async with make_engine([waits_for_child_with_deadline, waits_for_signal], [release]) as engine:
        run = await engine.start(waits_for_child_with_deadline.with_options(id="wait-for-kid"), "kid-2")
        assert await run.result(timeout=60) == "child timed out"
        child = await engine.get_handle("kid-2").describe()
        history = list(await run.history())
    assert child.status == "cancelled"
    assert child.closed_at is not None
    names = _types(history)
    assert names.index("ChildWorkflowCancelRequested") < names.index("ChildWorkflowFailed") < names.index(
        "WorkflowCompleted")
    from retold.testing import replay

    replay(waits_for_child_with_deadline, history)
