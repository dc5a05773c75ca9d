"""A failed run keeps its cause chain structured, and its message names the root cause."""

from __future__ import annotations

from datetime import timedelta

import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

ONCE = retold.RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10), jitter=0)


@retold.activity(retry=ONCE)
async def always_fails(order_id: str) -> str:
    raise ValueError(f"permanent trouble with {order_id}")


@retold.workflow
async def charge_order(order_id: str) -> str:
    return await retold.execute(always_fails, order_id)


@retold.workflow
async def wraps_failure(order_id: str) -> str:
    try:
        return await retold.execute(always_fails, order_id)
    except retold.ActivityError as err:
        raise RuntimeError("could not charge") from err


@retold.workflow
async def parent_of_failure(order_id: str) -> str:
    return await retold.execute_child(charge_order.with_options(id=f"{order_id}-child"), order_id)


async def test_activity_failure_keeps_its_cause_chain(make_engine: EngineFactory) -> None:
    async with make_engine([charge_order], [always_fails]) as engine:
        run = await engine.start(charge_order.with_options(id="causes-1"), "o-1")
        with pytest.raises(retold.WorkflowFailedError) as info:
            await run.result(timeout=60)
    error = info.value
    assert "ValueError: permanent trouble with o-1" in str(error)
    assert "activity 'always_fails'" in str(error)
    activity_error = error.cause
    assert isinstance(activity_error, retold.ActivityError)
    assert activity_error.__cause__ is activity_error.cause
    assert (activity_error.activity, activity_error.timed_out) == ("always_fails", False)
    assert activity_error.seq > 0
    root = activity_error.cause
    assert isinstance(root, retold.ApplicationError)
    assert (root.type, root.message) == ("ValueError", "permanent trouble with o-1")
    assert "raise ValueError" in root.details
    description = await run.describe()
    assert description.failure is not None
    assert "ValueError: permanent trouble with o-1" in description.failure


async def test_root_cause_is_named_when_the_workflow_wraps_it(make_engine: EngineFactory) -> None:
    async with make_engine([wraps_failure], [always_fails]) as engine:
        run = await engine.start(wraps_failure.with_options(id="causes-2"), "o-2")
        with pytest.raises(retold.WorkflowFailedError) as info:
            await run.result(timeout=60)
    message = str(info.value)
    assert "RuntimeError: could not charge" in message
    assert "ValueError: permanent trouble with o-2" in message
    top = info.value.cause
    assert isinstance(top, retold.ApplicationError)
    assert top.type == "RuntimeError"
    assert isinstance(top.cause, retold.ActivityError)
    assert isinstance(top.cause.cause, retold.ApplicationError)
    assert top.cause.cause.type == "ValueError"


async def test_child_failure_chain_reaches_the_activity(make_engine: EngineFactory) -> None:
    async with make_engine([parent_of_failure, charge_order], [always_fails]) as engine:
        run = await engine.start(parent_of_failure.with_options(id="causes-3"), "o-3")
        with pytest.raises(retold.WorkflowFailedError) as info:
            await run.result(timeout=60)
    assert "ValueError: permanent trouble with o-3" in str(info.value)
    child = info.value.cause
    assert isinstance(child, retold.ChildWorkflowError)
    assert child.workflow_id == "o-3-child"
    activity_error = child.cause
    assert isinstance(activity_error, retold.ActivityError)
    assert isinstance(activity_error.cause, retold.ApplicationError)
    assert activity_error.cause.message == "permanent trouble with o-3"
