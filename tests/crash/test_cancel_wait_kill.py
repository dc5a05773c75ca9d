"""A cancellation the workflow waits for survives a SIGKILL of the worker running the attempt.

The only worker hosting the activity (``_cancel_wait.py``) is killed with SIGKILL while an attempt runs;
then the workflow cancels its wait (``cancellation_type="wait_cancellation_completed"``): the request is
committed, the attempt is gone. A second worker claims the task and, the run waiting for its end, ends
it as cancelled without running the activity again; only then does the workflow's wait end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

import retold
from tests.crash._cancel_wait import slow
from tests.crash.conftest import spawn

pytestmark = pytest.mark.anyio


@retold.workflow(name="cw_flow")
async def flow() -> str:
    task = asyncio.ensure_future(retold.execute(slow))
    await retold.wait_signal("give-up", str)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await retold.sleep(0.01)
    return "gave up"


def worker(url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    return spawn("tests.crash._cancel_wait", url, folder, name)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_cancelled_attempt_of_a_dead_worker_ends_cancelled_on_the_next_one(
    url: str, tmp_path: Path,
) -> None:
    first = worker(url, tmp_path, "a")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with retold.Engine(url, workflows=[flow], poll_interval=0.05, lease=1.0) as engine:
            run = await engine.start(flow.with_options(id="cw"))
            with anyio.fail_after(60):
                while not (tmp_path / "started-a").exists():
                    assert first.poll() is None, (tmp_path / "stderr-a.txt").read_text()
                    await anyio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            await run.signal("give-up", "now")
            with anyio.fail_after(30):
                while "ActivityCancelRequested" not in [e.type for e in await run.history()]:
                    await anyio.sleep(0.05)
            assert "ActivityFailed" not in [e.type for e in await run.history()]  # waits for the attempt's end
            second = worker(url, tmp_path, "b")
            assert await run.result(timeout=60) == "gave up"
            history = await run.history()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    types = [e.type for e in history]
    tail = types[types.index("ActivityCancelRequested"):]
    assert [t for t in tail if t != "WorkflowTaskCompleted"][:3] == [
        "ActivityCancelRequested", "ActivityFailed", "TimerStarted"]
    failed = next(e for e in history if e.type == "ActivityFailed")
    assert failed.failure.type == "CancelledError"  # type: ignore[attr-defined]
    assert not (tmp_path / "started-b").exists()  # ended without running again
    assert first.returncode == -signal.SIGKILL
