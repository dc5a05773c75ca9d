"""Time limits are durable: a run timeout and a start delay survive a SIGKILL of the engine that set them.

A child process (``_limits.py``) starts a run with a run timeout and one with a start delay, then
kills itself with SIGKILL. A new engine on the same store, which never starts anything, must close
the first as timed out and run the second once its delay has passed, not before.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.crash._limits import later, sleeper

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_run_timeout_and_a_start_delay_survive_a_sigkill(shared_url: str) -> None:
    proc = await anyio.run_process([sys.executable, "-m", "tests.crash._limits", shared_url], cwd=ROOT, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    line = proc.stdout.decode().strip()
    assert line.startswith("started "), proc.stdout
    started_at = float(line.split()[1])
    async with retold.Engine(shared_url, workflows=[sleeper, later], poll_interval=0.05) as engine:
        with pytest.raises(retold.WorkflowTimedOutError, match="its run timeout passed"):
            await engine.get_handle("limited-sleeper").result(timeout=60)
        closed = await engine.get_handle("limited-sleeper").history()
        assert isinstance(closed.events[-1], ev.WorkflowTimedOut)
        assert closed.events[-1].at >= closed.events[0].at + 3 - 0.01
        assert closed.events[0].at <= started_at  # started by the killed process
        greeting = await engine.get_handle("limited-later").result(timeout=60)
        assert greeting.startswith("hello ada at ")
        history = await engine.get_handle("limited-later").history()
        first_step = history.events[1]
        assert first_step.at >= history.events[0].at + 3 - 0.01  # its code ran after the delay, not before
