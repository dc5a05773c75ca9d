"""A query never changes the run: calls that would are refused with a clear error.

Whatever a handler raises reaches the caller as ``QueryError`` with the
handler's message; nothing internal (``continue_as_new``'s exception, an
un-awaited coroutine) leaks, and the run goes on as if it had not been asked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import assert_deterministic, replay

pytestmark = pytest.mark.anyio


@retold.activity
def note(what: str) -> str:
    return what


@retold.workflow
async def child() -> str:
    return "child"


def _declined() -> str:
    raise retold.ApplicationError("card declined", type="Declined")


@retold.workflow
async def queried() -> float:
    handlers: dict[str, Any] = {
        "random": lambda: retold.random(),
        "uuid4": lambda: str(retold.uuid4()),
        "patched": lambda: retold.patched("change"),
        "execute": lambda: retold.execute(note, "from a query"),
        "start_child": lambda: retold.start_child(child).workflow_id,
        "execute_child": lambda: retold.execute_child(child),
        "signal_workflow": lambda: retold.signal_workflow("elsewhere", "ping"),
        "wait_signal": lambda: retold.wait_signal("finish"),
        "sleep": lambda: retold.sleep(5),
        "continue_as_new": lambda: retold.continue_as_new(),
        "side_effect": lambda: retold.side_effect(lambda: 1),
        "set_query_handler": lambda: retold.set_query_handler("other", lambda: 1),
        "asyncio_sleep": lambda: asyncio.ensure_future(asyncio.sleep(5)),
        "create_task": lambda: asyncio.get_running_loop().create_task(asyncio.sleep(0)),
        "declined": _declined,
        "value_error": lambda: int("not a number"),
        "async": lambda: asyncio.sleep(0),
        "now": lambda: retold.now().isoformat(),
        "info": lambda: retold.info().workflow_id,
    }
    for name, handler in handlers.items():
        retold.set_query_handler(name, handler)
    await retold.wait_signal("finish")
    return retold.random()  # the run's first draw: queries took none


REFUSED = {
    "random": "retold.random() cannot be called in query handler 'random'",
    "uuid4": "retold.uuid4() cannot be called in query handler 'uuid4'",
    "patched": "retold.patched() cannot be called in query handler 'patched'",
    "execute": "retold.execute() cannot be called in query handler 'execute'",
    "start_child": "retold.start_child() cannot be called in query handler 'start_child'",
    "execute_child": "retold.execute_child() cannot be called in query handler 'execute_child'",
    "signal_workflow": "retold.signal_workflow() cannot be called in query handler 'signal_workflow'",
    "wait_signal": "retold.wait_signal() cannot be called in query handler 'wait_signal'",
    "sleep": "retold.sleep() cannot be called in query handler 'sleep'",
    "continue_as_new": "retold.continue_as_new() cannot be called in query handler 'continue_as_new'",
    "side_effect": "retold.side_effect() cannot be called in query handler 'side_effect'",
    "set_query_handler": "retold.set_query_handler() cannot be called in query handler",
    "asyncio_sleep": "asyncio.create_task() cannot be called in query handler 'asyncio_sleep'",
    "create_task": "asyncio.create_task() cannot be called in query handler 'create_task'",
    "declined": "query 'declined' handler raised Declined: card declined",
    "value_error": "query 'value_error' handler raised ValueError: invalid literal for int()",
    "async": "query 'async' handler returned an awaitable",
}


async def test_a_query_cannot_change_the_run_and_errors_reach_the_caller_as_query_errors() -> None:
    async with retold.Engine("memory://", workflows=[queried, child], activities=[note]) as engine:
        run = await engine.start(queried.with_options(id="q"))
        with anyio.fail_after(60):
            while not [e for e in (await run.history()).events if isinstance(e, ev.WorkflowTaskCompleted)]:
                await anyio.sleep(0.01)
        for name, message in REFUSED.items():
            with pytest.raises(retold.QueryError) as caught:
                await run.query(name)
            assert message in str(caught.value), (name, str(caught.value))
        assert "must not change it" in str(await _error(run, "random"))
        assert await run.query("info") == "q"
        assert isinstance(await run.query("now"), str)
        await run.signal("finish", None)
        with anyio.fail_after(60):
            value = await run.result()
        history = await run.history()
    kinds = {type(e).__name__ for e in history.events}
    assert kinds == {"WorkflowStarted", "WorkflowTaskCompleted", "SignalReceived", "WorkflowCompleted"}
    assert replay(queried, history).finished
    # The run's own draw is the first of its generator: no query consumed one.
    import random
    import uuid

    assert value == random.Random(uuid.uuid5(uuid.NAMESPACE_URL, history.run_id).int).random()


async def test_a_query_answered_by_replay_cannot_change_the_run_either(tmp_path: Path) -> None:
    """The same calls on a run no engine has in memory: the query replays it (a replica)."""
    url = f"sqlite:///{tmp_path / 'queries.db'}"
    async with retold.Engine(url, workflows=[queried, child], activities=[note]) as engine:
        run = await engine.start(queried.with_options(id="q"))
        with anyio.fail_after(60):
            while not [e for e in (await run.history()).events if isinstance(e, ev.WorkflowTaskCompleted)]:
                await anyio.sleep(0.01)
    # A client-only engine has no cached copy: every query replays the history.
    async with retold.Engine(url, workflows=[queried, child], activities=[note], run_workers=False) as client:
        run = client.get_handle("q")
        before = (await run.history()).events
        for name, message in REFUSED.items():
            with pytest.raises(retold.QueryError) as caught:
                await run.query(name)
            assert message in str(caught.value), (name, str(caught.value))
        assert await run.query("info") == "q"
        assert (await run.history()).events == before
    async with retold.Engine(url, workflows=[queried, child], activities=[note], poll_interval=0.05) as engine:
        run = engine.get_handle("q")
        await run.signal("finish", None)
        with anyio.fail_after(60):
            await run.result()
        history = await run.history()
    kinds = {type(e).__name__ for e in history.events}
    assert kinds == {"WorkflowStarted", "WorkflowTaskCompleted", "SignalReceived", "WorkflowCompleted"}
    assert replay(queried, history).finished


async def _error(run: Any, name: str) -> retold.QueryError:
    with pytest.raises(retold.QueryError) as caught:
        await run.query(name)
    return caught.value


def _open_quietly(gate: asyncio.Event) -> str:
    try:
        gate.set()
    except retold.QueryError:
        return "refused"  # the handler hides the refusal: the run must still not be changed
    return "set"


@retold.workflow
async def gated() -> str:
    """Waits on an asyncio.Event that a signal sets; two query handlers (wrongly) set it too."""
    gate = asyncio.Event()
    retold.set_query_handler("open", gate.set)
    retold.set_query_handler("open_quietly", lambda: _open_quietly(gate))

    async def opener() -> None:
        await retold.wait_signal("open")
        gate.set()

    task = asyncio.create_task(opener())
    await gate.wait()
    await task
    await retold.sleep(1)
    return "opened"


@pytest.mark.parametrize("query", ["open", "open_quietly"])
async def test_a_query_refused_halfway_through_a_change_leaves_the_run_as_its_history_says(
    query: str,
) -> None:
    """``Event.set()`` in a handler marks the event set, then is refused when it wakes the
    waiter: the cached run is left half changed. The engine drops it, so the run's next
    step replays from the history, which the query never touched."""
    async with retold.Engine("memory://", workflows=[gated]) as engine:
        run = await engine.start(gated.with_options(id=f"gated-{query}"))
        with anyio.fail_after(60):
            while not [e for e in (await run.history()).events if isinstance(e, ev.WorkflowTaskCompleted)]:
                await anyio.sleep(0.01)
        if query == "open":
            with pytest.raises(retold.QueryError, match="cannot be called in query handler 'open'"):
                await run.query(query)
        else:
            assert await run.query(query) == "refused"
        await run.signal("open", None)
        with anyio.fail_after(60):
            assert await run.result() == "opened"
        history = await run.history()
    assert [type(e).__name__ for e in history.events][-3:] == ["TimerStarted", "TimerFired", "WorkflowCompleted"]
    assert replay(gated, history).finished


def test_the_property_runner_drops_a_run_whose_query_was_refused_as_an_engine_does() -> None:
    """Queries asked between activations (live, after crashes, on resumed prefixes) that are
    refused halfway do not make the run look nondeterministic: the copy is replayed."""
    assert_deterministic(gated, signals=[("open", None)], queries=["open", "open_quietly"], max_examples=20)
