"""Terminate: a run closed at once from outside, without running its code."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

import retold
from retold.history import events as ev
from retold.stores.sql import _schema as t
from retold.testing import replay
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

STARTED = threading.Event()
RELEASE = threading.Event()
ENDED = threading.Event()


@retold.activity(start_to_close=60)
def slow(name: str) -> str:
    STARTED.set()
    try:
        RELEASE.wait(30)
        return f"slow {name}"
    finally:
        ENDED.set()


@retold.workflow
async def waits_on_slow() -> str:
    return await retold.execute(slow, "x")


@retold.workflow
async def sleeps_an_hour() -> str:
    await retold.sleep(3600)
    return "woke"


@retold.workflow
async def waits_for_go() -> str:
    await retold.wait_signal("go")
    return "went"


@retold.workflow
async def parent_of_waiter(child_id: str) -> str:
    try:
        return await retold.execute_child(waits_for_go.with_options(id=child_id))
    except retold.ChildWorkflowError as err:
        return str(err)
    except asyncio.CancelledError:
        return "cancelled"


async def wait_for(check: object, timeout: float = 20.0) -> None:
    assert callable(check)
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)


async def test_a_run_waiting_on_a_running_activity_is_closed_at_once(make_engine: EngineFactory) -> None:
    STARTED.clear()
    RELEASE.clear()
    ENDED.clear()
    async with make_engine([waits_on_slow], [slow], lease=0.6) as engine:
        run = await engine.start(waits_on_slow.with_options(id="slowpoke"))
        await anyio.to_thread.run_sync(STARTED.wait, 20)
        await run.terminate("stuck on slow")
        with pytest.raises(retold.WorkflowTerminatedError, match="was terminated: stuck on slow") as info:
            await run.result(timeout=5)
        RELEASE.set()  # the attempt ends now: its outcome must be refused
        await anyio.to_thread.run_sync(ENDED.wait, 20)
        described = await run.describe()
        with anyio.fail_after(20):  # the attempt is no longer the engine's
            while any(worker.running for worker in engine.activity_workers):
                await anyio.sleep(0.02)
        history = await run.history()
    cause = info.value.__cause__
    assert isinstance(cause, retold.ApplicationError)
    assert cause.type == "retold.WorkflowTerminatedError"
    assert described.status == "terminated"
    assert described.closed_at is not None
    assert [e.type for e in history] == ["WorkflowStarted", "ActivityScheduled", "WorkflowTerminated"]
    last = history[-1]
    assert isinstance(last, ev.WorkflowTerminated)
    assert last.reason == "stuck on slow"


async def test_its_timers_are_dropped_and_its_history_replays(make_engine: EngineFactory, tmp_path: Path) -> None:
    async with make_engine([sleeps_an_hour]) as engine:
        run = await engine.start(sleeps_an_hour.with_options(id="sleeper"))

        async def sleeping() -> bool:
            return "TimerStarted" in [e.type for e in await run.history()]

        await wait_for(sleeping)
        await run.terminate()
        history = await run.history()
        with pytest.raises(retold.RunFinishedError):
            await run.terminate("again")
        with pytest.raises(retold.RunFinishedError):
            await run.signal("late")
        with pytest.raises(retold.RunNotFoundError):
            await engine.get_handle("nobody").terminate()
    timers = sa.create_engine(f"sqlite:///{tmp_path / 'retold.db'}")
    with timers.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.timers)).scalar_one() == 0
    timers.dispose()
    last = history[-1]
    assert isinstance(last, ev.WorkflowTerminated)
    assert last.reason == ""
    result = replay(sleeps_an_hour, history)
    assert result.finished
    assert result.next_commands == ()
    # Inputs that reached the run just before it was terminated were never seen by its code.
    signalled = [*history[:-1], ev.SignalReceived(seq=last.seq, at=last.at, name="x", input=b"1"),
                 ev.WorkflowTerminated(seq=last.seq + 1, at=last.at)]
    assert replay(sleeps_an_hour, signalled).finished


async def _running_child(engine: retold.Engine, workflow_id: str) -> retold.RunHandle[Any]:
    """The handle of child ``workflow_id``, once it is running."""
    child = engine.get_handle(workflow_id)

    async def child_started() -> bool:
        try:
            return (await child.describe()).status == "running"
        except retold.RunNotFoundError:
            return False

    await wait_for(child_started)
    return child


async def test_the_parent_is_told_its_child_was_terminated(make_engine: EngineFactory) -> None:
    async with make_engine([parent_of_waiter, waits_for_go]) as engine:
        parent = await engine.start(parent_of_waiter, "kid-1")
        child = await _running_child(engine, "kid-1")
        await child.terminate("no longer needed")
        told = await parent.result(timeout=20)
    assert told == ("child workflow 'waits_for_go' (kid-1) was terminated: "
                    "retold.WorkflowTerminatedError: the run was terminated: no longer needed")


async def test_its_children_are_asked_to_cancel(make_engine: EngineFactory) -> None:
    async with make_engine([parent_of_waiter, waits_for_go]) as engine:
        parent = await engine.start(parent_of_waiter, "kid-2")
        child = await _running_child(engine, "kid-2")
        await parent.terminate("tear it all down")
        with pytest.raises(retold.WorkflowCancelledError):
            await child.result(timeout=20)
        assert (await parent.describe()).status == "terminated"
        events = [e.type for e in await child.history()]
    assert "CancelRequested" in events


async def test_a_client_without_workers_terminates_runs(make_engine: EngineFactory) -> None:
    async with make_engine([waits_for_go]) as worker:
        run = await worker.start(waits_for_go.with_options(id="remote"))
        async with make_engine([waits_for_go], run_workers=False) as client:
            await client.get_handle("remote").terminate("from the client")
        with pytest.raises(retold.WorkflowTerminatedError):
            await run.result(timeout=20)
        listed = [r.workflow_id for r in await worker.list_runs(status="terminated")]
    assert listed == ["remote"]
