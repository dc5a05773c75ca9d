"""A failed run keeps its cause chain structured, and its message names the root cause."""

from __future__ import annotations

from datetime import timedelta

import anyio
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


# -- chains seen inside the workflow (issue 18, item 6) -----------------------------------

NEVER = retold.RetryPolicy(max_attempts=1)
# The first retry would come after the deadline: the failed attempt ends the activity at once.
RETRY_LATE = retold.RetryPolicy(initial_interval=timedelta(seconds=120), jitter=0)


def _chain(error: BaseException | None) -> list[str]:
    """``type: message`` of an error and each cause below it."""
    links = []
    while error is not None:
        if isinstance(error, retold.ApplicationError):
            links.append(f"{error.type}: {error.message}")
        else:
            links.append(type(error).__name__)
        error = error.__cause__
    return links


def _lookup(table: dict[str, str], key: str) -> str:
    try:
        return table[key]
    except KeyError as err:
        raise ValueError(f"no price for {key}") from err


@retold.activity(retry=NEVER)
async def price_of(item: str) -> str:
    return _lookup({}, item)


@retold.activity(retry=RETRY_LATE, schedule_to_close=timedelta(seconds=60))
async def price_until_deadline(item: str) -> str:
    return _lookup({}, item)


@retold.activity(retry=NEVER, start_to_close=timedelta(milliseconds=200))
async def hangs(item: str) -> str:
    await anyio.Event().wait()  # never set: the attempt runs out of time
    return item


@retold.workflow
async def sees_chains(item: str) -> list[list[str]]:
    seen = []
    for act in (price_of, price_until_deadline, hangs):
        try:
            await retold.execute(act, item)
        except retold.ActivityError as err:
            seen.append(_chain(err))
    return seen


@retold.workflow
async def failing_child(item: str) -> str:
    return _lookup({}, item)


@retold.workflow
async def sees_child_chain(item: str) -> list[str]:
    try:
        await retold.execute_child(failing_child, item)
    except retold.ChildWorkflowError as err:
        return _chain(err)
    return []


async def test_activity_errors_keep_their_causes_inside_the_workflow(make_engine: EngineFactory) -> None:
    async with make_engine([sees_chains], [price_of, price_until_deadline, hangs]) as engine:
        run = await engine.start(sees_chains.with_options(id="chains-1"), "tea")
        direct, deadline, timeout = await run.result(timeout=60)
    assert direct == ["ActivityError", "ValueError: no price for tea", "KeyError: 'tea'"]
    # A schedule-to-close timeout is caused by the last attempt's failure, chain and all.
    assert deadline == [
        "ActivityError", "TimeoutError: schedule_to_close timeout", "ValueError: no price for tea", "KeyError: 'tea'"
    ]
    assert timeout[:2] == ["ActivityError", "TimeoutError: start_to_close timeout"]
    assert len(timeout) == 3
    assert timeout[2].startswith("TimeoutError: activity attempt exceeded start_to_close")


async def test_a_failed_childs_caller_sees_its_error_with_its_cause(make_engine: EngineFactory) -> None:
    async with make_engine([sees_child_chain, failing_child]) as engine:
        run = await engine.start(sees_child_chain.with_options(id="chains-2"), "jam")
        chain = await run.result(timeout=60)
    assert chain == ["ChildWorkflowError", "ValueError: no price for jam", "KeyError: 'jam'"]
