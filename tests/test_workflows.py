"""Workflows end to end on the engine: activities, timers, signals, queries."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity(retry=retold.RetryPolicy(max_attempts=5), start_to_close=timedelta(seconds=30))
async def charge(order_id: str, cents: int) -> str:
    return f"receipt:{order_id}:{cents}"


@retold.workflow
async def checkout(order_id: str, cents: int) -> str:
    status = "charging"
    retold.set_query_handler("status", lambda: status)
    receipt = await retold.execute(charge, order_id, cents)
    status = "waiting"
    approved = await retold.wait_signal("approve", timeout=timedelta(seconds=30))
    status = "sleeping"
    await asyncio.sleep(0.2)
    return receipt if approved else "refunded"


@retold.workflow
async def impatient_checkout(order_id: str) -> str:
    approved = await retold.wait_signal("approve", timeout=timedelta(seconds=0.2))
    return "approved" if approved else "refunded"


async def wait_for_status(run: retold.RunHandle[str], status: str) -> None:
    with anyio.fail_after(10):
        while await run.query("status") != status:
            await anyio.sleep(0.02)


async def test_the_checkout_from_the_issue(make_engine: EngineFactory) -> None:
    async with make_engine([checkout], [charge]) as engine:
        run = await engine.start(checkout.with_options(id="order-42"), "order-42", 500)
        await wait_for_status(run, "waiting")
        # A query replays the history: it can see "waiting" before the step that
        # started the signal's timeout is committed. Signal once it is.
        with anyio.fail_after(10):
            while "TimerStarted" not in [e.type for e in await run.history()]:
                await anyio.sleep(0.02)
        await run.signal("approve", True)
        assert await run.result(timeout=10) == "receipt:order-42:500"
        history = await run.history()
    types = [e.type for e in history]
    assert types == [
        "WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "TimerStarted",
        "SignalReceived", "TimerCancelled", "TimerStarted", "TimerFired", "WorkflowCompleted",
    ]
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    fired = history[7]
    started = history[6]
    assert isinstance(started, ev.TimerStarted)
    assert started.duration == pytest.approx(0.2)
    assert fired.at - started.at >= 0.19


async def test_signal_timeout_returns_none(make_engine: EngineFactory) -> None:
    async with make_engine([impatient_checkout]) as engine:
        run = await engine.start(impatient_checkout, "o-1")
        assert await run.result(timeout=10) == "refunded"
        types = [e.type for e in await run.history()]
    assert "TimerFired" in types
    assert "SignalReceived" not in types


@retold.workflow
async def collect_signals(count: int) -> list[str | None]:
    got: list[str | None] = []
    for _ in range(count):
        got.append(await retold.wait_signal("item", str))
    return got


async def test_signals_are_buffered_in_arrival_order(make_engine: EngineFactory) -> None:
    async with make_engine([collect_signals]) as engine:
        run = await engine.start(collect_signals, 5)
        for item in "abcde":  # sent before the workflow waits for most of them
            await run.signal("item", item)
        assert await run.result(timeout=10) == list("abcde")


@retold.workflow
async def sleeper(seconds: float) -> str:
    before = retold.now()
    await retold.sleep(timedelta(seconds=seconds))
    after = retold.now()
    return f"{(after - before).total_seconds():.1f}"


async def test_durable_sleep_moves_workflow_time(make_engine: EngineFactory) -> None:
    async with make_engine([sleeper]) as engine:
        run = await engine.start(sleeper, 0.3)
        assert float(await run.result(timeout=10)) >= 0.3


async def test_start_is_idempotent(make_engine: EngineFactory) -> None:
    async with make_engine([impatient_checkout]) as engine:
        first = await engine.start(impatient_checkout.with_options(id="same"), "o-1")
        again = await engine.start(impatient_checkout.with_options(id="same"), "o-1")
        assert first.run_id == again.run_id
        with pytest.raises(retold.IdempotencyError, match="different input"):
            await engine.start(impatient_checkout.with_options(id="same"), "o-2")
        keyed = await engine.start(impatient_checkout.with_options(idempotency_key="k1"), "o-3")
        keyed_again = await engine.start(impatient_checkout.with_options(idempotency_key="k1"), "o-3")
        assert keyed.run_id == keyed_again.run_id
        with pytest.raises(retold.IdempotencyError, match="idempotency key 'k1'"):
            await engine.start(impatient_checkout.with_options(idempotency_key="k1"), "o-4")
        runs = await engine.list_runs()
        assert len(runs) == 2


async def test_describe_and_list(make_engine: EngineFactory) -> None:
    async with make_engine([impatient_checkout]) as engine:
        run = await engine.start(impatient_checkout.with_options(id="described"), "o-1")
        description = await run.describe()
        assert description.workflow_id == "described"
        assert description.workflow == "impatient_checkout"
        assert isinstance(description.started_at, datetime)
        await run.result(timeout=10)
        done = await run.describe()
        assert done.status == "completed"
        assert done.closed_at is not None
        assert done.event_count == len(await run.history())
        assert [r.run_id for r in await engine.list_runs(status="completed")] == [run.run_id]
        assert await engine.list_runs(status="running") == []
        handle = engine.get_handle("described")
        assert await handle.result() == "refunded"


@retold.workflow
async def greeter(name: str) -> str:
    return f"hello {name}"


@retold.workflow
async def parent(names: list[str]) -> list[str]:
    handles = [retold.start_child(greeter, n) for n in names]
    direct = await retold.execute_child(greeter.with_options(id=f"{retold.info().workflow_id}-direct"), "direct")
    return [await h for h in handles] + [direct]


@retold.workflow
async def failing_child() -> str:
    raise ValueError("child broke")


@retold.workflow
async def parent_of_failure() -> str:
    try:
        await retold.execute_child(failing_child)
    except retold.ChildWorkflowError as err:
        return f"caught {err.__cause__}"
    return "no error"


async def test_child_workflows(make_engine: EngineFactory) -> None:
    async with make_engine([parent, greeter, failing_child, parent_of_failure]) as engine:
        run = await engine.start(parent.with_options(id="p"), ["a", "b"])
        assert await run.result(timeout=10) == ["hello a", "hello b", "hello direct"]
        children = await engine.list_runs(workflow="greeter")
        assert {c.parent_run_id for c in children} == {run.run_id}
        assert await engine.get_handle("p-direct").result() == "hello direct"
        bad = await engine.start(parent_of_failure)
        assert await bad.result(timeout=10) == "caught ValueError: child broke"


@retold.workflow
async def countdown(n: int, seen: list[int]) -> list[int]:
    seen = [*seen, n]
    if n > 0:
        retold.continue_as_new(n - 1, seen)
    return seen


async def test_continue_as_new(make_engine: EngineFactory) -> None:
    async with make_engine([countdown]) as engine:
        run = await engine.start(countdown.with_options(id="count"), 3, [])
        assert await run.result(timeout=10) == [3, 2, 1, 0]
        runs = await engine.list_runs(workflow="countdown", limit=10)
        assert sorted(r.status for r in runs) == ["completed", "continued", "continued", "continued"]
        latest = await run.describe()
        assert latest.status == "completed"
        assert latest.run_id != run.run_id
        first = (await engine.store.load(run.run_id or "", 0))[1]
        assert isinstance(first[-1], ev.WorkflowContinuedAsNew)


@retold.activity
async def cleanup(tag: str) -> str:
    return f"cleaned {tag}"


@retold.workflow
async def cancellable() -> str:
    try:
        await asyncio.sleep(3600)
    finally:
        await retold.execute(cleanup, "after-cancel")
    return "finished"


async def test_cancel_raises_at_the_await_and_cleanup_runs(make_engine: EngineFactory) -> None:
    async with make_engine([cancellable], [cleanup]) as engine:
        run = await engine.start(cancellable)
        with anyio.fail_after(10):
            while "TimerStarted" not in [e.type for e in await run.history()]:
                await anyio.sleep(0.02)
        await run.cancel("user asked")
        with pytest.raises(retold.WorkflowCancelledError):
            await run.result(timeout=10)
        history = await run.history()
    types = [e.type for e in history]
    assert types[-5:] == [
        "CancelRequested", "TimerCancelled", "ActivityScheduled", "ActivityCompleted", "WorkflowCancelled",
    ]
    completed = history[-2]
    assert isinstance(completed, ev.ActivityCompleted)
    assert completed.result == b'"cleaned after-cancel"'


@retold.workflow
async def swallow_cancel() -> str:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return "handled"
    return "slept"


async def test_workflow_may_handle_its_cancellation(make_engine: EngineFactory) -> None:
    async with make_engine([swallow_cancel]) as engine:
        run = await engine.start(swallow_cancel)
        with anyio.fail_after(10):  # cancel once it sleeps, not before its first step
            while "TimerStarted" not in [e.type for e in await run.history()]:
                await anyio.sleep(0.02)
        await run.cancel()
        assert await run.result(timeout=10) == "handled"


@retold.workflow
async def raises() -> str:
    raise KeyError("missing thing")


async def test_workflow_exception_fails_the_run(make_engine: EngineFactory) -> None:
    async with make_engine([raises]) as engine:
        run = await engine.start(raises)
        with pytest.raises(retold.WorkflowFailedError, match="missing thing") as info:
            await run.result(timeout=10)
        cause = info.value.__cause__
        assert isinstance(cause, retold.ApplicationError)
        assert cause.type == "KeyError"
        assert "raise KeyError" in cause.details
        last = (await run.history())[-1]
        assert isinstance(last, ev.WorkflowFailed)
        assert (await run.describe()).status == "failed"


async def test_memory_store(make_engine: EngineFactory) -> None:
    async with make_engine([greeter], url="memory://") as engine:
        run = await engine.start(greeter, "memory")
        assert await run.result(timeout=10) == "hello memory"
