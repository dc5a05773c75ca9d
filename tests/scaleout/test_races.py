"""Races between processes on PostgreSQL, each ending with exactly one outcome recorded.

Claims by two workers at once are in ``tests/stores/test_contract.py``
(``test_each_task_is_claimed_by_one_worker``) and in the chaos test.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import anyio
import orjson
import pytest

import retold
from retold.history import events as ev
from tests.scaleout._app import read_logs
from tests.scaleout.conftest import Spawn

pytestmark = pytest.mark.anyio

SPIN = 3_000_000  # a workflow activation of a few hundred milliseconds of pure computation


def client(url: str) -> retold.Engine:
    return retold.Engine(url, run_workers=False, poll_interval=0.2)


async def test_a_paused_worker_whose_lease_ran_out_cannot_record_its_result(
    postgres_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    paused = spawn("tests.scaleout._app:ONE_STEP", postgres_url, "--lease", "1.5").wait_ready()
    async with client(postgres_url) as engine:
        # The step (1 s) ends while the process is stopped (until the lease of 1.5 s ran
        # out and another worker began the step again): on SIGCONT it tries to record it.
        run = await engine.start("one_step", "paused", 1.0)
        with anyio.fail_after(20):
            while not any(line["ev"] == "start" for line in read_logs(tmp_path / "logs")):
                await anyio.sleep(0.02)
        paused.send(signal.SIGSTOP)
        try:
            other = spawn("tests.scaleout._app:ONE_STEP", postgres_url, "--lease", "1.5").wait_ready()
            with anyio.fail_after(20):
                while not any(line["pid"] == other.pid for line in read_logs(tmp_path / "logs")):
                    await anyio.sleep(0.05)
        finally:
            paused.send(signal.SIGCONT)
        assert await run.result(timeout=20) == other.pid
        with anyio.fail_after(10):
            while "outcome refused, the lease was lost" not in paused.stderr():
                await anyio.sleep(0.05)
        history = await run.history()
    completed = [e for e in history if isinstance(e, ev.ActivityCompleted)]
    assert [(orjson.loads(e.result), e.attempt) for e in completed] == [(other.pid, 2)]
    done = [(line["pid"], line["attempt"]) for line in read_logs(tmp_path / "logs") if line["ev"] == "done"]
    assert sorted(done) == sorted([(paused.pid, 1), (other.pid, 2)])  # both bodies ran; one result stands


async def test_signals_racing_completion_are_always_seen(postgres_url: str, spawn: Spawn) -> None:
    spawn("tests.scaleout._app:RACER", postgres_url).wait_ready()
    rng = random.Random(4)
    async with client(postgres_url) as engine:
        for i in range(6):
            run = await engine.start("racer", SPIN, id=f"signals-{i}")
            began = time.monotonic()
            accepted: list[str] = []
            for j, at in enumerate(sorted(rng.uniform(0, 1.2) for _ in range(3))):
                await anyio.sleep(max(0.0, began + at - time.monotonic()))
                try:
                    await run.signal("item", f"s{j}")
                    accepted.append(f"s{j}")
                except retold.RunFinishedError:
                    pass
            result = await run.result(timeout=30)
            history = await run.history()
            recorded = [orjson.loads(e.input) for e in history if isinstance(e, ev.SignalReceived)]
            # Every signal recorded before the completion was seen by the code that completed.
            assert recorded == accepted
            assert result == ",".join(recorded), f"run {i}: saw {result!r}, history has {recorded}"
            assert history[-1].type == "WorkflowCompleted"


async def test_cancel_racing_completion_records_one_outcome(postgres_url: str, spawn: Spawn) -> None:
    spawn("tests.scaleout._app:RACER", postgres_url).wait_ready()
    rng = random.Random(7)
    outcomes: set[str] = set()
    async with client(postgres_url) as engine:
        for i in range(6):
            run = await engine.start("racer", SPIN, id=f"cancel-{i}")
            await anyio.sleep(rng.uniform(0, 1.0))
            try:
                await run.cancel("race")
                cancelled = True
            except retold.RunFinishedError:
                cancelled = False
            if cancelled:
                with pytest.raises(retold.WorkflowCancelledError):
                    await run.result(timeout=30)
            else:
                assert await run.result(timeout=30) == ""
            terminal = [e.type for e in await run.history() if isinstance(e, ev.TERMINAL_TYPES)]
            assert terminal == ["WorkflowCancelled" if cancelled else "WorkflowCompleted"]
            outcomes.add(terminal[0])
    assert "WorkflowCancelled" in outcomes
