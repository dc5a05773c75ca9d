"""The same-process fast path.

A workflow-task commit leases the activities it schedules to its own engine
(no claim); an activity outcome for a run cached in the same engine commits
the run's next step with it (no workflow task, no load).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import retold
from retold.engine._runs import Runs
from retold.stores.sql import SqlStore
from retold.testing import replay
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

running = 0
peak = 0


@retold.activity
async def work(i: int) -> int:
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        await anyio.sleep(0.02)
    finally:
        running -= 1
    return i


@retold.workflow
async def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await retold.execute(work, i)
    return total


@retold.workflow
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(retold.execute(work, i) for i in range(n))))


class CountingRuns(Runs):
    """Counts the steps that came with a start or an activity outcome."""

    async def start(self, request: Any, step: Any = None, started: Any = None, hold: Any = None) -> Any:
        record = await super().start(request, step, started, hold)
        CountingStore.stepped_starts += bool(step is not None and step.stepped)
        return record

    async def first_step(self, run_id: str, commands: Any, take: Any = None) -> bool:
        applied = await super().first_step(run_id, commands, take)
        CountingStore.first_steps += applied
        return applied

    async def finish_activity(self, task: Any, owner: str, outcome: Any, step: Any = None) -> bool:
        if CountingStore.signal_during_finish is not None:
            await self.signal(CountingStore.signal_during_finish, "extra", b"5")
        recorded = await super().finish_activity(task, owner, outcome, step)
        CountingStore.offered += step is not None
        CountingStore.steps += bool(step is not None and step.stepped)
        return recorded


class CountingStore(SqlStore):
    """Counts the tasks handed out by claims and the loads (the slow path), and the steps."""

    claimed = 0
    workflow_tasks = 0
    loads = 0
    steps = 0
    offered = 0
    stepped_starts = 0
    first_steps = 0  # first steps of runs started without one, run by the engine that started them
    signal_during_finish: str | None = None  # a run to signal while an outcome is being recorded

    async def claim_activity_tasks(self, *args: Any, **kwargs: Any) -> Any:
        tasks = await super().claim_activity_tasks(*args, **kwargs)
        CountingStore.claimed += len(tasks)
        return tasks

    async def claim_workflow_tasks(self, *args: Any, **kwargs: Any) -> Any:
        runs = await super().claim_workflow_tasks(*args, **kwargs)
        CountingStore.workflow_tasks += len(runs)
        return runs

    async def load(self, run_id: str, after_seq: int, limit: int | None = None) -> Any:
        CountingStore.loads += 1
        return await super().load(run_id, after_seq, limit)

    @classmethod
    def reset(cls) -> None:
        cls.claimed = cls.workflow_tasks = cls.loads = cls.steps = cls.offered = cls.stepped_starts = 0
        cls.first_steps = 0
        cls.signal_during_finish = None


async def test_the_fast_path_keeps_the_concurrency_limit(make_engine: EngineFactory, tmp_path: Any) -> None:
    global peak
    peak = 0
    CountingStore.reset()
    store = CountingStore(f"sqlite:///{tmp_path / 'limit.db'}")
    async with make_engine([fan_out], [work], store=store, activity_concurrency=2) as engine:
        engine.runs = CountingRuns(store)  # counts the steps run ahead
        run = await engine.start(fan_out, 7)
        assert await run.result(timeout=20) == list(range(7))
    assert peak <= 2
    assert CountingStore.claimed == 5  # 2 came with the commit, the other 5 waited for a claim


async def test_an_outcome_commits_the_next_step_of_a_cached_run(make_engine: EngineFactory, tmp_path: Any) -> None:
    CountingStore.reset()
    store = CountingStore(f"sqlite:///{tmp_path / 'steps.db'}")
    async with make_engine([chain], [work], store=store, poll_interval=30) as engine:
        engine.runs = CountingRuns(store)  # counts the steps run ahead
        run = await engine.start(chain, 20)
        assert await run.result(timeout=20) == sum(range(20))
        # No workflow task at all: the start carried the first step, and each
        # of the 20 outcomes the next one; every activity came leased with it.
        assert (CountingStore.workflow_tasks, CountingStore.loads, CountingStore.claimed) == (0, 0, 0)
        assert (CountingStore.stepped_starts, CountingStore.steps) == (1, 20)
        history = await run.history()
    types = [e.type for e in history]
    assert types == ["WorkflowStarted", *["ActivityScheduled", "ActivityCompleted"] * 20, "WorkflowCompleted"]
    assert replay(chain, history).finished  # the history replays as recorded


@retold.workflow
async def chain_with_signals(n: int) -> int:
    total = 0
    extra: list[int] = []

    async def collect() -> None:
        while True:
            value = await retold.wait_signal("extra", int)
            assert value is not None  # None only on a timeout, and there is none
            extra.append(value)

    collector = asyncio.ensure_future(collect())
    for i in range(n):
        total += await retold.execute(work, i)
    collector.cancel()
    return total + sum(extra)


async def test_an_input_racing_the_outcome_sends_the_step_back_to_a_workflow_task(
    make_engine: EngineFactory, tmp_path: Any
) -> None:
    CountingStore.reset()
    store = CountingStore(f"sqlite:///{tmp_path / 'race.db'}")
    async with make_engine([chain_with_signals], [work], store=store) as engine:
        engine.runs = CountingRuns(store)  # counts the steps run ahead
        run = await engine.start(chain_with_signals.with_options(id="racy"), 3)
        CountingStore.signal_during_finish = "racy"  # every outcome now meets a signal recorded first
        assert await run.result(timeout=20) == sum(range(3)) + 5 * 3
        history = await run.history()
    assert (CountingStore.offered, CountingStore.steps) == (3, 0)  # each step was refused: the run had moved
    # Each signal came before the outcome it raced, and each was seen.
    kinds = [e.type for e in history if e.type in ("SignalReceived", "ActivityCompleted")]
    assert kinds == ["SignalReceived", "ActivityCompleted"] * 3
    assert replay(chain_with_signals, history).finished


async def test_a_start_steps_only_when_a_workflow_slot_is_free(
    make_engine: EngineFactory, tmp_path: Any
) -> None:
    CountingStore.reset()
    store = CountingStore(f"sqlite:///{tmp_path / 'starts.db'}")
    async with make_engine([chain], [work], store=store, workflow_concurrency=2) as engine:
        engine.runs = CountingRuns(store)  # counts the steps run ahead
        runs: list[retold.RunHandle[int]] = []

        async def start() -> None:
            runs.append(await engine.start(chain, 1))

        async with anyio.create_task_group() as tg:  # all six ask for a slot before any is written
            for _ in range(6):
                tg.start_soon(start)
        assert [await run.result(timeout=20) for run in runs] == [0] * 6
    # Two starts found a free slot; the other four had their first steps run
    # here as slots freed: no claim, no read.
    assert CountingStore.stepped_starts == 2
    assert CountingStore.first_steps == 4
    assert (CountingStore.workflow_tasks, CountingStore.loads) == (0, 0)


@retold.workflow
async def instant(name: str) -> str:
    return f"hello {name}"


async def test_a_run_that_ends_in_its_first_step_is_closed_by_its_start(
    make_engine: EngineFactory, tmp_path: Any
) -> None:
    CountingStore.reset()
    store = CountingStore(f"sqlite:///{tmp_path / 'instant.db'}")
    async with make_engine([instant], store=store) as engine:
        engine.runs = CountingRuns(store)  # counts the steps run ahead
        run = await engine.start(instant.with_options(id="once"), "ann")
        assert (await engine.store.get_run("once")).status == "completed"  # before any worker ran
        assert await run.result(timeout=5) == "hello ann"
        again = await engine.start(instant.with_options(id="once"), "ann")  # the same id: the same run
        assert (again.run_id, again.created) == (run.run_id, False)
        history = await run.history()
    assert [e.type for e in history] == ["WorkflowStarted", "WorkflowCompleted"]
    assert CountingStore.stepped_starts == 1


attempt_tasks: list[object] = []


def _current_task() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # trio
        import trio

        return trio.lowlevel.current_task()


@retold.activity
async def where(i: int) -> int:
    attempt_tasks.append(_current_task())  # kept: a task's id could be reused once it ends
    return i


@retold.workflow
async def where_chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await retold.execute(where, i)
    return total


async def test_a_runs_next_activity_runs_in_the_task_of_the_attempt_before(
    make_engine: EngineFactory, tmp_path: Any
) -> None:
    # The commit of an outcome with the run's next step leases the next
    # activity to this engine: it runs in the task that ran the attempt
    # before, once that one is done, not in a new task each.
    attempt_tasks.clear()
    CountingStore.reset()
    store = CountingStore(f"sqlite:///{tmp_path / 'handoff.db'}")
    async with make_engine([where_chain], [where], store=store, poll_interval=30) as engine:
        engine.runs = CountingRuns(store)
        run = await engine.start(where_chain, 5)
        assert await run.result(timeout=20) == sum(range(5))
    assert CountingStore.steps == 5  # every outcome went with the next step
    assert len(attempt_tasks) == 5
    assert all(task is attempt_tasks[0] for task in attempt_tasks)
    attempt_tasks.clear()
