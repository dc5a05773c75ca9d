"""Common slips get one clear error naming the mistake and the fix (issue 10)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import retold
from retold.history import events as ev
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

ran: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()


@retold.activity
async def greet(name: str) -> str:
    ran.append(name)
    return f"hello {name}"


async def plain_greet(name: str) -> str:
    return f"hello {name}"


@retold.workflow
async def calls_plain_function(name: str) -> str:
    fn: Any = plain_greet
    result: str = await retold.execute(fn, name)
    return result


@retold.workflow
async def forgets_await(name: str) -> str:
    retold.execute(greet, name)  # type: ignore[unused-coroutine]  # the slip: no await
    return "done"


@retold.workflow
async def returns_coroutine(name: str) -> Any:
    return retold.execute(greet, name)  # the slip: returned, not awaited


@retold.workflow
async def passes_coroutine(name: str) -> str:
    inner: Any = retold.execute(greet, name)
    return await retold.execute(greet, inner)  # the slip: an argument not awaited


@retold.workflow
async def forgets_sleep() -> str:
    retold.sleep(5)  # type: ignore[unused-coroutine]  # the slip: the timer never starts
    return "done"


@retold.workflow
async def awaits_later(name: str) -> str:
    pending = retold.execute(greet, name)  # kept for later: not a slip
    await retold.sleep(0.01)
    return await pending


def line_of(text: str) -> int:
    """The line of this file holding ``text``."""
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if text in line and "line_of(" not in line:
                return number
    raise AssertionError(text)


async def test_execute_of_a_plain_function_names_the_decorator(make_engine: EngineFactory) -> None:
    async with make_engine([calls_plain_function], [greet]) as engine:
        run = await engine.start(calls_plain_function.with_options(id="slip-plain-activity"), "ann")
        with pytest.raises(retold.WorkflowFailedError) as info:
            await run.result(timeout=60)
    message = str(info.value)
    assert "retold.execute() needs an activity, got 'plain_greet'" in message
    assert "decorate it with @retold.activity" in message
    assert "AttributeError" not in message


async def test_start_of_a_plain_function_says_not_a_workflow(make_engine: EngineFactory) -> None:
    async with make_engine([calls_plain_function], [greet]) as engine:
        fn: Any = plain_greet
        with pytest.raises(retold.ConfigurationError) as info:
            await engine.start(fn, "ann")
        assert await engine.list_runs() == []
    message = str(info.value)
    assert "engine.start() needs a workflow, got 'plain_greet', which is not one" in message
    assert "decorate it with @retold.workflow" in message
    assert "not registered" not in message


@pytest.mark.parametrize(
    ("workflow", "args", "slip", "expected"),
    [
        (forgets_await, ("ann",), "# the slip: no await",
         "retold.execute() at {where} was never awaited, so it never ran: add `await`"),
        (returns_coroutine, ("ann",), "return retold.execute(greet, name)",
         "workflow 'returns_coroutine' returned retold.execute() at {where} instead of its result: add `await`"),
        (passes_coroutine, ("ann",), "return await retold.execute(greet, inner)",
         "retold.execute() at {where}: argument 1 is an awaitable (coroutine), not a value: add `await`"),
        (forgets_sleep, (), "# the slip: the timer never starts",
         "retold.sleep() at {where} was never awaited, so it never ran: add `await`"),
    ],
)
async def test_a_forgotten_await_fails_the_workflow_task_naming_the_line(
    make_engine: EngineFactory, workflow: Any, args: tuple[Any, ...], slip: str, expected: str
) -> None:
    where = f"{__file__}:{line_of(slip)}"
    async with make_engine([workflow], [greet], max_workflow_task_attempts=1,
                           on_workflow_task_failure="fail") as engine:
        run = await engine.start(workflow.with_options(id=f"slip-await-{workflow.name}"), *args)
        with pytest.raises(retold.WorkflowFailedError) as info:
            await run.result(timeout=60)
        history = await run.history()
    assert expected.format(where=where) in str(info.value)
    assert not any(isinstance(e, ev.WorkflowCompleted) for e in history)
    assert ran == []


async def test_a_call_awaited_later_is_no_slip(make_engine: EngineFactory) -> None:
    async with make_engine([awaits_later], [greet]) as engine:
        run = await engine.start(awaits_later.with_options(id="slip-await-later"), "bo")
        assert await run.result(timeout=60) == "hello bo"


FAST = retold.RetryPolicy(initial_interval=0.01, maximum_interval=0.05, jitter=0)
attempts: list[int] = []


@retold.activity(retry=FAST, start_to_close=30)
async def fails_twice() -> int:
    attempts.append(retold.activity_info().attempt)
    if len(attempts) < 3:
        raise ConnectionError("try again")
    return len(attempts)


@retold.workflow
async def retries_fast() -> int:
    return await retold.execute(fails_twice.with_options(heartbeat_timeout=20))


async def test_durations_in_seconds_work_everywhere(make_engine: EngineFactory) -> None:
    attempts.clear()
    assert FAST.initial_interval == timedelta(milliseconds=10)
    assert FAST.maximum_interval == timedelta(milliseconds=50)
    assert fails_twice.options.start_to_close == timedelta(seconds=30)
    assert retold.ActivityOptions(schedule_to_close=2.5).schedule_to_close == timedelta(seconds=2.5)
    async with make_engine([retries_fast], [fails_twice]) as engine:
        run = await engine.start(retries_fast.with_options(id="slip-durations"))
        assert await run.result(timeout=60) == 3
        history = await run.history()
    scheduled = next(e for e in history if isinstance(e, ev.ActivityScheduled))
    assert scheduled.options["retry"]["initial_interval"] == 0.01
    assert scheduled.options["heartbeat_timeout"] == 20


def test_durations_of_other_types_are_refused_clearly() -> None:
    bad: Any = "1s"
    with pytest.raises(retold.ConfigurationError, match=r"RetryPolicy.initial_interval must be a timedelta "
                       r"or a number of seconds, got str '1s'"):
        retold.RetryPolicy(initial_interval=bad)
    with pytest.raises(retold.ConfigurationError, match=r"RetryPolicy\.maximum_interval must not be negative"):
        retold.RetryPolicy(maximum_interval=-1)
    with pytest.raises(retold.ConfigurationError, match="activity option start_to_close must be a timedelta"):
        retold.ActivityOptions(start_to_close=bad)
    with pytest.raises(retold.ConfigurationError, match="activity option heartbeat_timeout must be positive"):
        retold.activity(heartbeat_timeout=0)


@retold.workflow
async def sleeps_badly() -> str:
    bad: Any = "5"
    await retold.sleep(bad)
    return "slept"


async def test_sleep_refuses_a_string(make_engine: EngineFactory) -> None:
    async with make_engine([sleeps_badly]) as engine:
        run = await engine.start(sleeps_badly.with_options(id="slip-sleep"))
        with pytest.raises(retold.WorkflowFailedError,
                           match="sleep duration must be a timedelta or a number of seconds, got str '5'"):
            await run.result(timeout=60)


@retold.activity
async def later(delay: timedelta, policy: retold.RetryPolicy) -> timedelta:
    return delay + (policy.maximum_interval or timedelta(0))


@retold.workflow
async def plans(delay: timedelta, policy: retold.RetryPolicy) -> dict[str, timedelta]:
    total = await retold.execute(later, delay, policy)
    return {"total": total}


async def test_timedelta_and_retry_policy_travel_as_arguments_and_results(make_engine: EngineFactory) -> None:
    policy = retold.RetryPolicy(initial_interval=0.5, maximum_interval=timedelta(minutes=1), max_attempts=3)
    async with make_engine([plans], [later]) as engine:
        run = await engine.start(plans.with_options(id="slip-timedelta"), timedelta(hours=1), policy)
        assert await run.result(timeout=60) == {"total": timedelta(hours=1, minutes=1)}
    codec = retold.JsonCodec()
    assert codec.decode(codec.encode(timedelta(days=2, microseconds=5)), timedelta) == timedelta(days=2, microseconds=5)
    assert codec.encode(timedelta(seconds=90)) == b"90.0"
    assert codec.decode(codec.encode(policy), retold.RetryPolicy) == policy
    with pytest.raises(retold.PayloadError, match="expected a number of seconds"):
        codec.decode(b'"1 day"', timedelta)
