"""A workflow waiting for its activity's cancellation still waits after its worker is SIGKILLed.

The workflow (``cancellation_type="wait_cancellation_completed"``) gives up on an activity running in
another process; the request is committed and the attempt told, but it acknowledges only when the test
says. The workflow's worker is killed with SIGKILL meanwhile; another takes the run over, replays it and
(a signal makes it take a step) still waits: nothing after ``ActivityCancelRequested`` until the attempt
ends, then ``ActivityFailed`` (cancelled) and only then the workflow's next command.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

import retold
from tests.crash._cancel_wait_resume import flow
from tests.crash.conftest import spawn

pytestmark = pytest.mark.anyio


def worker(url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    return spawn("tests.crash._cancel_wait_resume", url, folder, name)


async def wait_file(path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    with anyio.fail_after(60):
        while not path.exists():
            for proc in procs:
                assert proc.poll() is None, proc.args
            await anyio.sleep(0.05)


async def events(run: retold.RunHandle[str]) -> list[str]:
    return [e.type for e in await run.history() if e.type != "WorkflowTaskCompleted"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_resumed_run_still_waits_for_the_cancelled_attempts_end(url: str, tmp_path: Path) -> None:
    act, first = worker(url, tmp_path, "act"), worker(url, tmp_path, "wf1")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with retold.Engine(url, run_workers=False) as client:
            run = await client.start(flow.with_options(id="cwr"))
            await wait_file(tmp_path / "started", [act, first])
            await run.signal("give-up", "now")
            await wait_file(tmp_path / "told", [act, first])  # the request is committed, the attempt told
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            assert (await events(run))[-2:] == ["SignalReceived", "ActivityCancelRequested"]
            second = worker(url, tmp_path, "wf2")
            # A signal the workflow does not wait for: the new worker replays the run and takes a step.
            await run.signal("poke", "now")
            with anyio.fail_after(60):
                while (await run.history())[-1].type != "WorkflowTaskCompleted" \
                        or (await events(run))[-1] != "SignalReceived":
                    assert second.poll() is None
                    await anyio.sleep(0.05)
            assert (await events(run))[-3:] == ["SignalReceived", "ActivityCancelRequested", "SignalReceived"]
            (tmp_path / "release").touch()  # the attempt acknowledges
            assert await run.result(timeout=60) == "gave up"
            history = await run.history()
    finally:
        for proc in (act, first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    types = [e.type for e in history if e.type != "WorkflowTaskCompleted"]
    tail = types[types.index("ActivityCancelRequested"):]
    assert tail[:4] == ["ActivityCancelRequested", "SignalReceived", "ActivityFailed", "TimerStarted"]
    failed = next(e for e in history if e.type == "ActivityFailed")
    assert failed.failure.type == "CancelledError"  # type: ignore[attr-defined]
    assert first.returncode == -signal.SIGKILL
