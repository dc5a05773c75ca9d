"""Replay: recorded histories against current code, nondeterminism, patched()."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.runtime._instance import WorkflowInstance
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity
async def step(name: str) -> str:
    return f"did {name}"


@retold.workflow(name="pipeline")
async def pipeline_v1() -> list[str]:
    return [await retold.execute(step, "a"), await retold.execute(step, "b")]


@retold.workflow(name="pipeline")
async def pipeline_swapped() -> list[str]:
    return [await retold.execute(step, "b"), await retold.execute(step, "a")]


@retold.activity
async def other_step(name: str) -> str:
    return name


@retold.workflow(name="pipeline")
async def pipeline_other_activity() -> list[str]:
    return [await retold.execute(other_step, "a"), await retold.execute(step, "b")]


@retold.workflow(name="pipeline")
async def pipeline_shorter() -> list[str]:
    return [await retold.execute(step, "a")]


@retold.workflow(name="pipeline")
async def pipeline_patched() -> list[str]:
    out = [await retold.execute(step, "a")]
    if retold.patched("audit-step"):
        out.append(await retold.execute(step, "audit"))
    out.append(await retold.execute(step, "b"))
    return out


@retold.workflow(name="pipeline")
async def pipeline_unpatched_addition() -> list[str]:
    out = [await retold.execute(step, "a")]
    out.append(await retold.execute(step, "audit"))
    out.append(await retold.execute(step, "b"))
    return out


def replay(workflow: retold.Workflow[..., Any], history: Sequence[ev.Event]) -> list[ev.Event]:
    return WorkflowInstance(workflow, "run-under-test", JsonCodec()).apply(history)


async def record(make_engine: EngineFactory, workflow: retold.Workflow[..., Any]) -> retold.History:
    async with make_engine([workflow], [step, other_step]) as engine:
        run = await engine.start(workflow)
        await run.result(timeout=10)
        return await run.history()


async def test_same_code_replays_without_new_commands(make_engine: EngineFactory) -> None:
    history = await record(make_engine, pipeline_v1)
    assert replay(pipeline_v1, history) == []


async def test_swapped_activity_order_is_nondeterminism(make_engine: EngineFactory) -> None:
    history = await record(make_engine, pipeline_v1)
    with pytest.raises(retold.NondeterminismError) as info:
        replay(pipeline_swapped, history)
    err = info.value
    assert (err.workflow, err.run_id, err.seq) == ("pipeline", "run-under-test", 2)
    assert "ActivityScheduled(activity='step', input='[\"a\"]'" in err.recorded
    message = str(err)
    assert "workflow 'pipeline'" in message
    assert "run 'run-under-test'" in message
    assert "at event 2" in message


async def test_different_activity_is_nondeterminism(make_engine: EngineFactory) -> None:
    history = await record(make_engine, pipeline_v1)
    with pytest.raises(retold.NondeterminismError, match="activity='other_step'") as info:
        replay(pipeline_other_activity, history)
    assert info.value.seq == 2
    assert "activity='step'" in info.value.recorded


async def test_code_that_stops_early_is_nondeterminism(make_engine: EngineFactory) -> None:
    history = await record(make_engine, pipeline_v1)
    with pytest.raises(retold.NondeterminismError) as info:
        replay(pipeline_shorter, history)
    assert info.value.requested.startswith("WorkflowCompleted")
    assert "ActivityScheduled" in info.value.recorded


async def test_added_activity_without_patch_is_nondeterminism(make_engine: EngineFactory) -> None:
    history = await record(make_engine, pipeline_v1)
    with pytest.raises(retold.NondeterminismError):
        replay(pipeline_unpatched_addition, history)


async def test_patched_keeps_old_runs_on_the_old_path(make_engine: EngineFactory) -> None:
    old_history = await record(make_engine, pipeline_v1)
    assert replay(pipeline_patched, old_history) == []  # old run: patched() is False
    new_history = await record(make_engine, pipeline_patched)
    markers = [e for e in new_history if isinstance(e, ev.MarkerRecorded)]
    assert [(m.kind, m.name) for m in markers] == [("patch", "audit-step")]
    completed = [e for e in new_history if isinstance(e, ev.WorkflowCompleted)]
    assert completed[0].result == b'["did a","did audit","did b"]'
    assert replay(pipeline_patched, new_history) == []


async def test_patch_reached_after_deploy_mid_run() -> None:
    """A run that had not yet reached the patch point takes the new path."""
    history: list[ev.Event] = [
        ev.WorkflowStarted(seq=1, at=1.0, workflow="pipeline", workflow_id="w", input=b"[]"),
        ev.ActivityScheduled(seq=2, at=1.0, activity="step", input=b'["a"]', options={}),
    ]
    instance = WorkflowInstance(pipeline_patched, "r", JsonCodec())
    assert instance.apply(history) == []
    new = instance.apply([ev.ActivityCompleted(seq=3, at=2.0, scheduled=2, attempt=1, result=b'"did a"')])
    assert [type(c).__name__ for c in new] == ["MarkerRecorded", "ActivityScheduled"]
    assert [c.seq for c in new] == [4, 5]


async def test_result_for_a_command_never_issued_is_nondeterminism() -> None:
    history: list[ev.Event] = [
        ev.WorkflowStarted(seq=1, at=1.0, workflow="pipeline", workflow_id="w", input=b"[]"),
        ev.TimerFired(seq=2, at=2.0, started=7),
    ]
    with pytest.raises(retold.NondeterminismError, match="never asked for it"):
        replay(pipeline_v1, history)


@retold.workflow(name="deployable")
async def deployable_v1() -> str:
    await retold.execute(step, "a")
    await retold.wait_signal("go")
    return await retold.execute(step, "b")


@retold.workflow(name="deployable")
async def deployable_v2() -> str:
    await retold.execute(other_step, "a")
    await retold.wait_signal("go")
    return await retold.execute(step, "b")


async def test_nondeterminism_on_the_engine_fails_the_run_when_told_to(make_engine: EngineFactory) -> None:
    """With on_workflow_task_failure="fail", a deploy that breaks a running workflow fails it with the error."""
    async with make_engine([deployable_v1], [step]) as engine:
        run = await engine.start(deployable_v1.with_options(id="deployed"))
        while "ActivityCompleted" not in [e.type for e in await run.history()]:
            await anyio.sleep(0.02)
    async with make_engine([deployable_v2], [step, other_step], max_workflow_task_attempts=2,
                           workflow_task_retry_delay=0.05, on_workflow_task_failure="fail") as engine:
        handle = engine.get_handle("deployed")
        await handle.signal("go")
        with pytest.raises(retold.WorkflowFailedError, match="NondeterminismError") as info:
            await handle.result(timeout=20)
        history = await handle.history()
    cause = info.value.__cause__
    assert isinstance(cause, retold.ApplicationError)
    assert "diverged from its history at event 2" in cause.message
    assert "workflow task failed 2 times" in cause.message
    last = history[-1]
    assert isinstance(last, ev.WorkflowFailed)
    assert last.failure["workflow_task"] is True
    assert [e.type for e in history].count("ActivityScheduled") == 1  # nothing new was scheduled


@retold.workflow(name="grouped")
async def grouped_v1() -> str:
    await retold.execute(step, "a")
    await retold.wait_signal("go")
    return "done"


@retold.workflow(name="grouped")
async def grouped_extra_command() -> str:
    await asyncio.gather(retold.execute(step, "a"), retold.execute(step, "extra"))
    await retold.wait_signal("go")
    return "done"


async def test_an_extra_command_mid_history_is_nondeterminism(make_engine: EngineFactory) -> None:
    async with make_engine([grouped_v1], [step]) as engine:
        run = await engine.start(grouped_v1)
        # The activation after the activity asked for nothing (it waits for a
        # signal): its marker is recorded before the signals are sent.
        while "WorkflowTaskCompleted" not in [e.type for e in await run.history()]:
            await anyio.sleep(0.02)
        await run.signal("noise")  # buffered, asks for nothing
        await run.signal("go")
        await run.result(timeout=10)
        history = list(await run.history())
    types = [e.type for e in history]
    assert "WorkflowTaskCompleted" in types
    assert replay(grouped_v1, history) == []
    with pytest.raises(retold.NondeterminismError) as info:
        replay(grouped_extra_command, history)
    assert "extra" in info.value.requested
    assert info.value.seq == 3  # the live run's history goes on there with an input
    assert history[2].type in ("ActivityCompleted", "SignalReceived")


@retold.workflow
async def first_of_two() -> str:
    a = asyncio.ensure_future(retold.wait_signal("a"))
    b = asyncio.ensure_future(retold.wait_signal("b"))
    await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
    return "+".join(name for name, fut in (("a", a), ("b", b)) if fut.done())


async def test_inputs_that_arrive_together_are_delivered_together() -> None:
    started = ev.WorkflowStarted(seq=1, at=1.0, workflow="first_of_two", workflow_id="w", input=b"[]")
    sig_a = ev.SignalReceived(seq=2, at=2.0, name="a", input=b"1")
    sig_b = ev.SignalReceived(seq=3, at=2.0, name="b", input=b"2")

    together = WorkflowInstance(first_of_two, "r1", JsonCodec())
    [done] = together.apply([started, sig_a, sig_b])
    assert isinstance(done, ev.WorkflowCompleted)
    assert done.result == b'"a+b"'

    apart = WorkflowInstance(first_of_two, "r2", JsonCodec())
    [marker] = apart.apply([started])
    assert isinstance(marker, ev.WorkflowTaskCompleted)
    apart.committed(2)
    [done_a] = apart.apply([ev.SignalReceived(seq=3, at=2.0, name="a", input=b"1")])
    assert isinstance(done_a, ev.WorkflowCompleted)
    assert done_a.result == b'"a"'
    # Each history replays to its own answer: the grouping is in the history.
    history_apart = [started, marker, ev.SignalReceived(seq=3, at=2.0, name="a", input=b"1"), done_a]
    assert WorkflowInstance(first_of_two, "r2", JsonCodec()).apply(history_apart) == []
    assert WorkflowInstance(first_of_two, "r1", JsonCodec()).apply([started, sig_a, sig_b, done]) == []


@retold.workflow
async def wait_briefly() -> list[Any]:
    first = await retold.wait_signal("s", timeout=10)
    try:
        await retold.wait_signal("t")
    except asyncio.CancelledError:
        # A signal delivered together with the cancel is not lost.
        return [first, await retold.wait_signal("t", timeout=0)]
    return [first]


async def test_a_signal_arriving_with_its_timeout_or_a_cancel_is_not_lost() -> None:
    started = ev.WorkflowStarted(seq=1, at=1.0, workflow="wait_briefly", workflow_id="w", input=b"[]")
    instance = WorkflowInstance(wait_briefly, "r", JsonCodec())
    [timer] = instance.apply([started])
    assert isinstance(timer, ev.TimerStarted)
    instance.committed(2)
    # The timeout fired and the signal arrived before the code ran: it gets the signal.
    fired = ev.TimerFired(seq=3, at=11.0, started=2)
    signal = ev.SignalReceived(seq=4, at=11.0, name="s", input=b'"hello"')
    [marker] = instance.apply([fired, signal])
    assert isinstance(marker, ev.WorkflowTaskCompleted)  # now waiting for "t", no timer
    instance.committed(5)
    late = ev.SignalReceived(seq=6, at=12.0, name="t", input=b'"kept"')
    cancel = ev.CancelRequested(seq=7, at=12.0)
    commands = instance.apply([late, cancel])
    assert [type(c).__name__ for c in commands] == ["WorkflowCompleted"]
    assert commands[-1].result == b'["hello","kept"]'  # type: ignore[attr-defined]
