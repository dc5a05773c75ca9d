"""Workflow code that reaches the outside world fails loudly, naming the call."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Callable

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


def _open() -> None:
    with open(__file__) as f:
        f.read()


def _socket() -> None:
    socket.socket().close()


def _subprocess() -> None:
    subprocess.run(["true"], check=False)


def _thread() -> None:
    threading.Thread(target=lambda: None).start()


def _sleep() -> None:
    time.sleep(0.01)


CALLS: dict[str, Callable[[], None]] = {
    "open": _open, "socket": _socket, "subprocess": _subprocess,
    "thread": _thread, "sleep": _sleep,
}


@retold.workflow
async def misbehave(call: str) -> str:
    if call == "executor":
        await asyncio.get_running_loop().run_in_executor(None, print)
    elif call == "to_thread":
        await asyncio.to_thread(print)
    elif call == "connection":
        await asyncio.open_connection("127.0.0.1", 9)
    else:
        CALLS[call]()
    return "escaped the sandbox"


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("open", "open() (file I/O)"),
        ("socket", "socket.socket() (network I/O)"),
        ("subprocess", "subprocess.Popen() (a subprocess)"),
        ("thread", "threading.Thread.start() (a thread)"),
        ("sleep", "time.sleep() (blocks the worker)"),
        ("executor", "loop.run_in_executor()"),
        ("to_thread", "loop.run_in_executor()"),
        ("connection", "loop.create_connection() (I/O)"),
    ],
)
async def test_outside_world_blocks_the_run_naming_the_call(
    make_engine: EngineFactory, call: str, named: str
) -> None:
    async with make_engine([misbehave], workflow_task_retry_delay=0.05) as engine:
        run = await engine.start(misbehave, call)
        with anyio.fail_after(20):
            while (described := await run.describe()).blocked is None:
                await anyio.sleep(0.02)
        history = await run.history()
    assert described.status == "blocked"
    assert described.blocked is not None
    assert described.blocked.type == "retold.errors.WorkflowSandboxError"
    assert f"workflow code must not call {named}" in described.blocked.message
    assert [e.type for e in history] == ["WorkflowStarted"]  # nothing else was recorded


async def test_outside_world_fails_the_run_when_told_to(make_engine: EngineFactory) -> None:
    async with make_engine([misbehave], max_workflow_task_attempts=2, workflow_task_retry_delay=0.05,
                           on_workflow_task_failure="fail") as engine:
        run = await engine.start(misbehave, "open")
        with pytest.raises(retold.WorkflowFailedError) as info:
            await run.result(timeout=20)
        history = await run.history()
    cause = info.value.__cause__
    assert isinstance(cause, retold.ApplicationError)
    assert cause.type == "retold.errors.WorkflowSandboxError"
    assert "workflow code must not call open() (file I/O)" in cause.message
    failed = history[-1]
    assert isinstance(failed, ev.WorkflowFailed)
    assert failed.failure["workflow_task"] is True
    assert len(history) == 2  # nothing else was recorded


async def test_the_same_calls_work_in_activities_and_the_host() -> None:
    """The guard is only up while workflow code runs."""
    for fn in CALLS.values():
        fn()


@retold.workflow
async def lazy_import() -> str:
    import json  # imports inside workflow code read files: allowed

    return json.dumps([1])


async def test_imports_inside_workflows_are_allowed(make_engine: EngineFactory) -> None:
    async with make_engine([lazy_import]) as engine:
        run = await engine.start(lazy_import)
        assert await run.result(timeout=10) == "[1]"
