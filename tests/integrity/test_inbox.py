"""The inbox at the store's level: inputs during a step wait, then follow its commands in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import retold
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import StartRequest
from retold.stores.sql import SqlStore
from tests.conftest import Clock

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def opened(url: str, clock: Clock) -> AsyncIterator[SqlStore]:
    store = SqlStore(url, clock=clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def names(events: list[ev.Event]) -> list[str]:
    return [f"{type(e).__name__}:{e.name}" if isinstance(e, ev.SignalReceived) else type(e).__name__
            for e in events]


async def test_signals_during_a_step_follow_its_commands_and_the_task_stays_leased(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0) == [run_id]
        await Runs(store).signal(run_id, "a", b"1")
        await Runs(store).signal(run_id, "b", b"2")
        _, history = await store.load(run_id, 0)
        assert names(history) == ["WorkflowStarted"]  # waiting in the inbox, not yet in the history
        last = await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=60.0)])
        assert last == 4
        _, history = await store.load(run_id, 0)
        assert names(history) == ["WorkflowStarted", "TimerStarted", "SignalReceived:a", "SignalReceived:b"]
        # Still ours: nobody else can claim it, and we go on with the next step.
        assert await store.claim_workflow_tasks("other", ["wf"], 10, 60.0) == []
        assert await Runs(store).commit_workflow_task(run_id, "me", 4, [ev.WorkflowTaskCompleted(seq=5, at=0)]) == 5


async def test_a_closing_step_with_inputs_waiting_is_refused_and_the_inputs_recorded(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await Runs(store).signal(run_id, "late", b"1")
        with pytest.raises(retold.ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        run = await store.get_run(run_id)
        assert run.status == "running"
        _, history = await store.load(run_id, 0)
        assert names(history) == ["WorkflowStarted", "SignalReceived:late"]
        # Having seen it, the run may close.
        await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCompleted(seq=3, at=0, result=b"1")])
        assert (await store.get_run(run_id)).status == "completed"


async def test_a_lapsed_lease_does_not_hide_signals_but_keeps_their_order(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        await store.claim_workflow_tasks("dead", ["wf"], 10, 5.0)
        await Runs(store).signal(run_id, "first", b"1")  # the holder is alive: the inbox
        clock.now += 6.0  # its lease runs out
        await Runs(store).signal(run_id, "second", b"2")  # behind "first", in the inbox too
        _, history = await store.load(run_id, 0)
        assert names(history) == ["WorkflowStarted"]
        assert await store.claim_workflow_tasks("next", ["wf"], 10, 5.0) == [run_id]
        last = await Runs(store).commit_workflow_task(run_id, "next", 1, [ev.WorkflowTaskCompleted(seq=2, at=0)])
        _, history = await store.load(run_id, 0)
        assert names(history) == ["WorkflowStarted", "WorkflowTaskCompleted", "SignalReceived:first",
                                  "SignalReceived:second"]
        assert last == 4
        # A holder whose lease ran out with nothing in the inbox: the signal is recorded at once.
        await Runs(store).commit_workflow_task(run_id, "next", 4, [ev.WorkflowTaskCompleted(seq=5, at=0)])
        await Runs(store).signal(run_id, "wake", b"3")
        assert await store.claim_workflow_tasks("gone", ["wf"], 10, 5.0) == [run_id]
        clock.now += 6.0
        await Runs(store).signal(run_id, "visible", b"4")
        _, history = await store.load(run_id, 5)
        assert names(history) == ["SignalReceived:wake", "SignalReceived:visible"]


async def test_only_another_owners_lapsed_lease_counts_as_a_death_and_a_commit_clears_the_count(
    store_url: str,
) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        clock.now += 6.0  # my own lease lapsed (a stall): I claim it again, alive
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        assert (await store.load(run_id, 0))[0].task_attempts == 0
        clock.now += 6.0  # now another worker takes it over: that one counts
        assert await store.claim_workflow_tasks("other", ["wf"], 10, 5.0) == [run_id]
        assert (await store.load(run_id, 0))[0].task_attempts == 1
        # A step commits with inputs that waited: the task stays leased, its count starts again.
        await Runs(store).signal(run_id, "s", b"1")
        assert await Runs(store).commit_workflow_task(run_id, "other", 1, [ev.WorkflowTaskCompleted(seq=2, at=0)]) == 3
        assert (await store.load(run_id, 0))[0].task_attempts == 0
