"""The engine's features end to end on every store: memory://, a SQLite file, PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import anyio
import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity
async def double(x: int) -> int:
    return 2 * x


@retold.workflow
async def child(x: int) -> int:
    return await retold.execute(double, x)


@retold.workflow
async def countdown(n: int, total: int) -> int:
    if n > 0:
        retold.continue_as_new(n - 1, total + n)
    return total


@retold.workflow
async def everything(x: int) -> list[int]:
    progress = "started"
    retold.set_query_handler("progress", lambda: progress)
    doubled = await retold.execute(double, x)
    await asyncio.sleep(0.2)  # a durable timer
    progress = "waiting"
    extra = await retold.wait_signal("extra", int, timeout=timedelta(seconds=30))
    from_child = await retold.execute_child(child.with_options(id=f"{retold.info().workflow_id}-child"), doubled)
    return [doubled, extra or 0, from_child]


@retold.workflow
async def cancellable() -> str:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await retold.execute(double, 1)  # cleanup still runs activities
        raise
    return "not cancelled"


async def test_activities_timers_signals_children_continue_as_new(
    make_engine: EngineFactory, store_url: str
) -> None:
    async with make_engine([everything, child, countdown], [double], url=store_url) as engine:
        run = await engine.start(everything.with_options(id="all"), 5)
        with anyio.fail_after(10):
            while await run.query("progress") != "waiting":
                await anyio.sleep(0.02)
        await run.signal("extra", 7)
        assert await run.result(timeout=10) == [10, 7, 20]
        chain = await engine.start(countdown.with_options(id="chain"), 3, 0)
        assert await chain.result(timeout=10) == 6
        assert [d.status for d in await engine.list_runs(workflow="countdown")].count("continued") == 3
        types = [e.type for e in await run.history()]
        assert types.count("ActivityCompleted") == 1
        assert types[-1] == "WorkflowCompleted"


async def test_cancel(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([cancellable], [double], url=store_url) as engine:
        run = await engine.start(cancellable)
        with anyio.fail_after(10):  # cancel once it sleeps, not before its first step
            while "TimerStarted" not in [e.type for e in await run.history()]:
                await anyio.sleep(0.02)
        await run.cancel("enough")
        with pytest.raises(retold.WorkflowCancelledError):
            await run.result(timeout=10)
        types = [e.type for e in await run.history()]
        assert types[-3:] == ["ActivityScheduled", "ActivityCompleted", "WorkflowCancelled"]


async def test_list_runs_filters_by_id_prefix_and_start_time(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([countdown], [], url=store_url) as engine:
        for ident in ("team/ada", "team/bob", "Team/cy", "te%m_x"):
            await engine.start(countdown.with_options(id=ident), 0, 0)
        by_prefix = {
            prefix: [r.workflow_id for r in await engine.list_runs(id_prefix=prefix)]
            for prefix in ("team/", "Team", "te%", "te_")
        }
        assert by_prefix == {"team/": ["team/bob", "team/ada"], "Team": ["Team/cy"], "te%": ["te%m_x"], "te_": []}
        runs = await engine.list_runs()
        first, last = runs[-1], runs[0]
        assert [r.workflow_id for r in await engine.list_runs(id_prefix=last.run_id[:12])] == [last.workflow_id]
        # A run's own started_at is inside "after" and outside "before".
        after = await engine.list_runs(started_after=last.started_at)
        assert last.workflow_id in [r.workflow_id for r in after]
        assert first.workflow_id not in [r.workflow_id for r in after] or first.started_at == last.started_at
        before = await engine.list_runs(started_before=last.started_at)
        assert last.workflow_id not in [r.workflow_id for r in before]
        assert first.workflow_id in [r.workflow_id for r in before] or first.started_at == last.started_at
