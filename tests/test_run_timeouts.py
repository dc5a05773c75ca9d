"""Run timeout, execution timeout (across continue-as-new) and start delay, on every store."""

from __future__ import annotations

import time

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import replay
from tests.conftest import EngineFactory

NO_PENDING = retold.PendingWork()

pytestmark = pytest.mark.anyio


@retold.workflow
async def sleeps_an_hour() -> str:
    await retold.sleep(3600)
    return "woke"


@retold.workflow
async def keeps_continuing(n: int) -> int:
    await retold.sleep(0.2)
    retold.continue_as_new(n + 1)


@retold.workflow
async def quick(name: str) -> str:
    got = await retold.wait_signal("go", str, timeout=0.01)
    return f"{name} {got}"


@retold.workflow
async def parent_of_sleeper() -> str:
    try:
        return await retold.execute_child(sleeps_an_hour.with_options(id="child-sleeper", run_timeout=0.3))
    except retold.ChildWorkflowError as err:
        return f"child: {err}"


async def test_a_run_timeout_closes_the_run_as_timed_out(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([sleeps_an_hour], url=store_url) as engine:
        run = await engine.start(sleeps_an_hour.with_options(id="sleeper", run_timeout=0.5))
        with pytest.raises(retold.WorkflowTimedOutError, match="timed out: its run timeout passed"):
            await run.result(timeout=30)
        description = await run.describe()
        assert description.status == "timed_out"
        history = await run.history()
        assert isinstance(history.events[-1], ev.WorkflowTimedOut)
        assert history.events[-1].kind == "run"
        started = history.events[0]
        assert isinstance(started, ev.WorkflowStarted)
        assert started.timeouts == {"run_timeout": 0.5}
        replay(sleeps_an_hour, history)
        assert [r.status for r in await engine.list_runs(status="timed_out")] == ["timed_out"]
        with pytest.raises(retold.RunFinishedError):
            await run.signal("late")


async def test_an_execution_timeout_spans_continue_as_new(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([keeps_continuing], url=store_url) as engine:
        # The chain outlives the run timeout: each run has its own (they last 0.2 s); the chain's deadline is one.
        flow = keeps_continuing.with_options(id="chain", execution_timeout=2.5, run_timeout=1.2)
        run = await engine.start(flow, 0)
        with pytest.raises(retold.WorkflowTimedOutError, match="its execution timeout passed"):
            await run.result(timeout=30)
        runs = await engine.list_runs(id_prefix="chain")
        assert len(runs) >= 3
        assert sorted({r.status for r in runs}) == ["continued", "timed_out"]
        deadlines = set()
        for description in runs:
            history = await engine.get_handle(description.run_id).history()
            started = history.events[0]
            assert isinstance(started, ev.WorkflowStarted)
            assert started.timeouts is not None
            deadlines.add(started.timeouts["execution_deadline"])
            replay(keeps_continuing, history)
        assert len(deadlines) == 1
        last = await engine.get_handle("chain").history()
        assert isinstance(last.events[-1], ev.WorkflowTimedOut)
        assert last.events[-1].kind == "execution"


async def test_a_start_delay_holds_the_first_step(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([quick], url=store_url) as engine:
        began = time.monotonic()
        run = await engine.start(quick.with_options(id="later", start_delay=1.0), "ada")
        await run.signal("go", "now")  # recorded at once, and the run still waits for its delay
        assert await run.result(timeout=30) == "ada now"
        assert time.monotonic() - began >= 1.0
        history = await run.history()
        assert [type(e) for e in history.events[:2]] == [ev.WorkflowStarted, ev.SignalReceived]
        # the first step came after the delay: its first command is at least a second after the start
        assert history.events[2].at - history.events[0].at >= 0.99


async def test_a_parent_sees_its_child_time_out(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([parent_of_sleeper, sleeps_an_hour], url=store_url) as engine:
        run = await engine.start(parent_of_sleeper.with_options(id="parent"))
        assert "timed out: its run timeout passed" in await run.result(timeout=30)
        assert (await engine.get_handle("child-sleeper").describe()).status == "timed_out"


async def test_bad_limits_are_refused(make_engine: EngineFactory) -> None:
    for bad in (0, -1, float("inf"), 4e9, "5"):
        with pytest.raises(retold.ConfigurationError, match="run_timeout must be a positive"):
            sleeps_an_hour.with_options(run_timeout=bad)  # type: ignore[arg-type]
    async with make_engine([sleeps_an_hour]) as engine:
        with pytest.raises(retold.ConfigurationError, match="start_delay must be a positive"):
            await engine.start("sleeps_an_hour", start_delay=-2)
        assert await engine.list_runs() == []


async def test_the_time_limit_shows_in_the_pending_work(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([sleeps_an_hour], url=store_url) as engine:
        run = await engine.start(sleeps_an_hour.with_options(id="shown", run_timeout=600, execution_timeout=900))
        with anyio.fail_after(20):
            while not ((await run.describe()).pending or NO_PENDING).timers:
                await anyio.sleep(0.02)
        pending = (await run.describe()).pending
        assert pending is not None
        assert [t.seq for t in pending.timers] == [2]  # the sleep, not the limits
        assert any(line.startswith("times out (run timeout) at ") for line in pending.waiting_for)
        assert any(line.startswith("times out (execution timeout) at ") for line in pending.waiting_for)
