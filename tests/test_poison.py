"""Hostile workflow code fails its own workflow task, never the engine or the process.

``sys.exit()``, ``KeyboardInterrupt`` and ``GeneratorExit`` raised by workflow
code, and a step that never yields, each fail the poison run (after its
workflow-task attempts) with a message naming the cause, while a healthy
run on the same engine completes and the engine closes normally.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import anyio
import pytest

import retold
from retold.history.events import WorkflowFailed
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

FAST_FAILURE: dict[str, Any] = {
    "max_workflow_task_attempts": 2, "workflow_task_retry_delay": 0.05, "on_workflow_task_failure": "fail",
}


@retold.activity
async def echo(value: str) -> str:
    return value


@retold.workflow
async def healthy(n: int) -> str:
    first = await retold.execute(echo, f"a{n}")
    await retold.sleep(0.01)
    return first + await retold.execute(echo, f"b{n}")


@retold.workflow
async def exits(kind: str) -> str:
    await retold.execute(echo, "before")
    if kind == "sys.exit":
        sys.exit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    raise GeneratorExit  # misuse: a coroutine closing itself
    return "unreachable"


@pytest.mark.parametrize(("kind", "named"), [
    ("sys.exit", "SystemExit"), ("KeyboardInterrupt", "KeyboardInterrupt"), ("GeneratorExit", "GeneratorExit"),
])
async def test_base_exceptions_fail_the_workflow_task_not_the_engine(
    make_engine: EngineFactory, kind: str, named: str
) -> None:
    async with make_engine([exits, healthy], [echo], **FAST_FAILURE) as engine:
        poison = await engine.start(exits, kind)
        runs = [await engine.start(healthy, i) for i in range(5)]
        with pytest.raises(retold.WorkflowFailedError) as caught:
            await poison.result(timeout=30)
        for i, run in enumerate(runs):
            assert await run.result(timeout=30) == f"a{i}b{i}"
        # The engine still works after the poison run failed.
        assert await (await engine.start(healthy, 9)).result(timeout=30) == "a9b9"
        failed = (await poison.history())[-1]
    message = str(caught.value)
    assert f"workflow code raised {named}" in message
    assert "workflow task failed 2 times" in message
    assert isinstance(failed, WorkflowFailed)
    assert failed.failure["workflow_task"] is True
    assert failed.failure["type"] == named


STOP = False  # ends the loops of the stubborn workflow below, once its test is over


SPINNING = threading.Event()  # set by the workflow code when it starts spinning
SPINNERS: list[threading.Thread] = []  # the step threads it spun in


@retold.workflow
async def spins(stubborn: bool) -> str:
    await retold.execute(echo, "before")
    SPINNERS.append(threading.current_thread())
    SPINNING.set()
    if stubborn:  # swallows the interrupt: its thread is abandoned, the engine goes on
        while not STOP:
            try:
                while not STOP:
                    pass
            except BaseException:
                pass
        return "stopped"
    x = 0
    while True:
        x += 1


@pytest.mark.parametrize("stubborn", [False, True])
async def test_a_step_that_never_yields_is_interrupted_as_deadlocked(
    make_engine: EngineFactory, stubborn: bool
) -> None:
    global STOP
    STOP = False
    try:
        async with make_engine([spins, healthy], [echo], deadlock_timeout=0.5, **FAST_FAILURE) as engine:
            poison = await engine.start(spins, stubborn)
            runs = [await engine.start(healthy, i) for i in range(5)]
            with pytest.raises(retold.WorkflowFailedError) as caught:
                await poison.result(timeout=60)
            for i, run in enumerate(runs):
                assert await run.result(timeout=60) == f"a{i}b{i}"
            assert await (await engine.start(healthy, 9)).result(timeout=30) == "a9b9"
    finally:
        STOP = True
    message = str(caught.value)
    assert "deadlocked: the workflow code did not yield within 0.5 s" in message
    stack = message.split("it was stuck at:", 1)[1]
    assert stack.lstrip().startswith('File "' + __file__)  # from the workflow code's frame
    assert ", in spins\n" in stack
    assert ("while not STOP" in stack) if stubborn else ("while True" in stack or "x += 1" in stack)


async def test_the_engine_serves_other_runs_while_a_step_is_stuck(make_engine: EngineFactory) -> None:
    """A step stuck for its whole limit does not stop the engine's loop meanwhile."""
    async with make_engine([spins, healthy], [echo], deadlock_timeout=30, **FAST_FAILURE) as engine:
        SPINNING.clear()
        SPINNERS.clear()
        poison = await engine.start(spins, False)
        with anyio.fail_after(20):
            # Its activity ran and it spins now (on the fast path, before the
            # activity's outcome is even recorded, or in its workflow task).
            while not SPINNING.is_set():
                await anyio.sleep(0.02)
        # While it spins (the limit is 30 s), healthy runs go from start to finish.
        for i in range(3):
            assert await (await engine.start(healthy, i)).result(timeout=20) == f"a{i}b{i}"
        await poison.cancel()
    # The engine closed: its stuck step was interrupted, not left spinning for the life of the process.
    with anyio.fail_after(20):
        while any(t.is_alive() for t in SPINNERS):
            await anyio.sleep(0.02)


def test_deadlock_timeout_is_checked() -> None:
    with pytest.raises(retold.ConfigurationError, match="deadlock_timeout must be positive"):
        retold.Engine("memory://", deadlock_timeout=0)
