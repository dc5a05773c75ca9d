"""The contract for tasks: claims, leases, workers, activity outcomes, timers, what comes due."""

from __future__ import annotations

import functools

import anyio
import pytest

from ...engine import ActivityStep, ActivityTake, Runs
from ...errors import (
    LeaseLostError,
)
from ...history import events as ev
from ...history.failure import Failure
from ...stores import ActivityOutcome, Plan, Store, Tx
from ._common import ManualClock, StoreFactory, history_types, run_with_activity, schedule, start_run

__all__ = [
    "test_a_commit_after_the_lease_moved_on_is_refused",
    "test_a_due_timer_fires_once_whoever_looks",
    "test_a_reaped_worker_loses_its_leases_at_once_and_its_attempt_counts",
    "test_activity_task_ids_are_never_reused",
    "test_an_activity_death_counts_only_for_an_attempt_run_under_the_stepping_mark",
    "test_an_activity_whose_cancellation_the_run_waits_for_ends_with_its_attempt",
    "test_an_activity_step_run_again_forgets_what_an_undone_run_decided",
    "test_an_activity_outcome_commits_the_runs_next_step_with_it",
    "test_claims_take_only_hosted_activities_of_the_queue",
    "test_each_task_is_claimed_by_one_worker",
    "test_leases_expire_by_the_store_clock",
    "test_release_hands_back_every_lease_of_an_owner",
    "test_due_timers_and_overdue_tasks_are_found_by_a_read",
    "test_timers_fire_when_due",
    "test_what_comes_due_next",
]


async def test_leases_expire_by_the_store_clock(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await start_run(store)
        assert await store.claim_workflow_tasks("dead", ["wf"], 10, 5.0) == [run_id]
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == []
        clock.now += 5.1
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == [run_id]
        found = (await store.load(run_id, 1))[0]
        assert (found.task_lapses, found.task_attempts) == (1, 0)  # the dead owner ran no marked step
        await Runs(store).commit_workflow_task(run_id, "alive", 1, [schedule(2)])

        [task] = await store.claim_activity_tasks("dead", "q", ["a"], 10, 5.0)
        assert await store.claim_activity_tasks("alive", "q", ["a"], 10, 5.0) == []
        assert await store.renew_leases("dead", [task.id], 5.0) == set()
        clock.now += 5.1
        [again] = await store.claim_activity_tasks("alive", "q", ["a"], 10, 5.0)
        assert again.id == task.id
        assert (task.attempt, again.attempt) == (1, 2)  # the dead owner's attempt counted
        # The dead owner's late result is refused: the lease fences it out.
        assert not await Runs(store).finish_activity(task, "dead", ActivityOutcome("completed", result=b"1"))
        assert await store.renew_leases("dead", [task.id], 5.0) == {task.id}
        assert await Runs(store).finish_activity(again, "alive", ActivityOutcome("completed", result=b"2"))
        _, history = await store.load(run_id, 0)
        assert [e.result for e in history if isinstance(e, ev.ActivityCompleted)] == [b"2"]


async def test_an_activity_death_counts_only_for_an_attempt_run_under_the_stepping_mark(
    store_factory: StoreFactory,
) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        await run_with_activity(store, "w")
        [first] = await store.claim_activity_tasks("a", "q", ["a"], 10, 5.0)
        assert (first.attempt, first.suspect, first.deaths) == (1, False, 0)
        clock.now += 5.1  # "a" died: one lapse blames nobody (it may have died of something else)
        [second] = await store.claim_activity_tasks("b", "q", ["a"], 10, 5.0)
        assert (second.attempt, second.suspect, second.deaths) == (2, False, 0)
        clock.now += 5.1  # a second lapse in a row: a suspect
        [third] = await store.claim_activity_tasks("c", "q", ["a"], 10, 5.0)
        assert (third.attempt, third.suspect, third.deaths) == (3, True, 0)
        assert not await runs.mark_activity(third, "b")  # only the holder of that attempt marks it
        assert not await runs.mark_activity(second, "c")
        assert await runs.mark_activity(third, "c")
        clock.now += 5.1  # "c" died running the marked attempt: one death
        [fourth] = await store.claim_activity_tasks("d", "q", ["a"], 10, 5.0)
        assert (fourth.attempt, fourth.suspect, fourth.deaths) == (4, True, 1)
        clock.now += 5.1  # the mark went with that claim: "d" dies unmarked, no death
        [fifth] = await store.claim_activity_tasks("e", "q", ["a"], 10, 5.0)
        assert (fifth.attempt, fifth.deaths) == (5, 1)
        # An attempt that ends (here, a failure retried) clears the mark and the lapses; the deaths stay.
        assert await runs.mark_activity(fifth, "e")
        failure = Failure(type="E", message="boom")
        assert await runs.finish_activity(fifth, "e", ActivityOutcome("failed", failure=failure, retry_delay=1.0))
        clock.now += 1.5
        [sixth] = await store.claim_activity_tasks("f", "q", ["a"], 10, 5.0)
        assert (sixth.attempt, sixth.suspect, sixth.deaths) == (6, False, 1)


def _apply(plan: Plan, tx: Tx) -> None:
    tx.apply(plan)


async def test_an_activity_whose_cancellation_the_run_waits_for_ends_with_its_attempt(
    store_factory: StoreFactory,
) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        running = await run_with_activity(store, "running")
        waiting = await run_with_activity(store, "waiting")
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 1, 5.0)
        assert (task.run_id, task.cancel_requested) == (running, False)
        for run_id in (running, waiting):
            await store.transact(functools.partial(_apply, Plan(run_id, cancel_activities=[2])))
        # The running attempt's worker asks, beside its lease renewal, and learns of it.
        assert await store.cancel_requests([task.id, 999_999]) == {task.id}
        # Its end is final: a failure that would be retried is not.
        failure = Failure(type="CancelledError", message="cancelled", non_retryable=False)
        assert await runs.finish_activity(task, "me", ActivityOutcome("failed", failure=failure, retry_delay=1.0))
        assert (await history_types(store, running))[-1] == "ActivityFailed"
        # The task not started yet is claimed saying so; its end is recorded the same way.
        [other] = await store.claim_activity_tasks("you", "q", ["a"], 10, 5.0)
        assert (other.run_id, other.cancel_requested) == (waiting, True)
        assert await runs.finish_activity(other, "you", ActivityOutcome("failed", failure=failure, retry_delay=1.0))
        assert (await history_types(store, waiting))[-1] == "ActivityFailed"
        clock.now += 10.0
        assert await store.claim_activity_tasks("you", "q", ["a"], 10, 5.0) == []  # nothing left to retry


async def test_a_reaped_worker_loses_its_leases_at_once_and_its_attempt_counts(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        assert await store.register_worker("dead", "host-a", 111, "7") == []
        assert await store.register_worker("other-host", "host-b", 222, "8") == []
        assert await store.register_worker("alive", "host-a", 333, "9") == [("dead", 111, "7")]
        run_id = await start_run(store)
        assert await store.claim_workflow_tasks("dead", ["wf"], 10, 60.0) == [run_id]
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 60.0) == []
        assert await store.reap_worker("dead") == 1
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 60.0) == [run_id]  # no 60 s wait
        await Runs(store).commit_workflow_task(run_id, "alive", 1, [schedule(2)])
        [task] = await store.claim_activity_tasks("dead", "q", ["a"], 10, 60.0)
        assert await store.reap_worker("dead") == 1
        [again] = await store.claim_activity_tasks("alive", "q", ["a"], 10, 60.0)
        assert (again.id, again.attempt) == (task.id, 2)  # the dead attempt counted
        assert not await Runs(store).finish_activity(task, "dead", ActivityOutcome("completed", result=b"1"))
        assert await store.register_worker("alive", "host-a", 333, "9") == []  # "dead" is forgotten
        await store.unregister_worker("alive")
        assert await store.register_worker("next", "host-a", 444, "10") == []


async def test_a_commit_after_the_lease_moved_on_is_refused(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await start_run(store)
        assert await store.claim_workflow_tasks("stalled", ["wf"], 10, 5.0) == [run_id]
        clock.now += 6
        assert await store.claim_workflow_tasks("next", ["wf"], 10, 5.0) == [run_id]
        # Same expected event number: only the lease tells the two apart.
        with pytest.raises(LeaseLostError, match="stalled lost its lease") as lost:
            await Runs(store).commit_workflow_task(run_id, "stalled", 1, [ev.TimerStarted(seq=2, at=0, duration=1)])
        assert lost.value.holder == "next"
        assert (await store.get_run(run_id)).last_seq == 1
        assert await Runs(store).commit_workflow_task(run_id, "next", 1, [schedule(2)]) == 2
        with pytest.raises(LeaseLostError, match="no longer pending"):
            await Runs(store).commit_workflow_task(run_id, "stalled", 2, [ev.TimerStarted(seq=3, at=0, duration=1)])
        assert await history_types(store, run_id) == ["WorkflowStarted", "ActivityScheduled"]


async def test_an_activity_outcome_commits_the_runs_next_step_with_it(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await run_with_activity(store, "w")
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 5.0)
        clock.now += 1
        outcome = ActivityOutcome("completed", result=b"7")
        seen_at = clock.now - 0.5  # when the engine fed the outcome to the run
        event = outcome.event(seq=3, at=seen_at, scheduled=task.seq, attempt=task.attempt)
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"q": 1})
        step = ActivityStep(run_id, 2, event, [schedule(4), ev.TimerStarted(seq=5, at=0, duration=60.0)], take)
        # A lost lease writes nothing, step or not.
        assert not await Runs(store).finish_activity(task, "someone-else", outcome, step)
        assert not step.stepped
        assert len(await history_types(store, run_id)) == 2
        assert await Runs(store).finish_activity(task, "me", outcome, step)
        assert step.stepped
        _, history = await store.load(run_id, 0)
        assert [e.type for e in history] == [
            "WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityScheduled", "TimerStarted"]
        assert history[2].at == seen_at  # the time the run saw, so a replay sees it too
        assert [(e.seq, e.result) for e in history if isinstance(e, ev.ActivityCompleted)] == [(3, b"7")]
        [leased] = take.taken  # the next activity came leased to its engine
        assert leased.seq == 4
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == []  # nothing left to process
        assert await store.claim_activity_tasks("other", "q", ["a"], 10, 5.0) == []

        # An input arrives between the engine's step and the outcome's commit:
        # the outcome is recorded alone, and the workflow task processes both.
        await Runs(store).signal("w", "go", b"1")
        late = ActivityOutcome("completed", result=b"8")
        stale = ActivityStep(run_id, 5, late.event(seq=6, at=clock.now, scheduled=4, attempt=1),
                             [ev.WorkflowCompleted(seq=7, at=0, result=b"null")])
        assert await Runs(store).finish_activity(leased, "me", late, stale)
        assert not stale.stepped
        run, pending = await store.load(run_id, 5)
        assert run.status == "running"
        assert [(e.type, e.seq) for e in pending] == [("SignalReceived", 6), ("ActivityCompleted", 7)]
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        clock.now += 60  # the step's timer was recorded too
        assert await Runs(store).fire_timers(10) == 1


async def test_timers_fire_when_due(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await start_run(store)
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=30.0)])
        assert await Runs(store).fire_timers(10) == 0
        assert await store.next_wakeup() == clock.now + 30.0
        assert await store.quiescence() == (False, clock.now + 30.0)
        clock.now += 30.0
        assert (await store.quiescence())[0]  # a timer is due
        assert await Runs(store).fire_timers(10) == 1
        assert await Runs(store).fire_timers(10) == 0
        _, history = await store.load(run_id, 2)
        assert [(type(e).__name__, getattr(e, "started", None)) for e in history] == [("TimerFired", 2)]
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]


async def test_due_timers_and_overdue_tasks_are_found_by_a_read(store_factory: StoreFactory) -> None:
    """``timers_due`` lists what ``fire_timers`` would take: due timers earliest first, and the tasks
    past their schedule-to-close deadline that no live lease holds; another process sees the same."""
    clock = ManualClock()
    start = clock.now
    async with store_factory(clock) as store:
        a, b = await start_run(store, "a"), await start_run(store, "b")
        assert sorted(await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)) == sorted([a, b])
        await Runs(store).commit_workflow_task(a, "me", 1, [
            ev.TimerStarted(seq=2, at=0, duration=20.0), ev.TimerStarted(seq=3, at=0, duration=10.0)])
        await Runs(store).commit_workflow_task(b, "me", 1, [
            ev.TimerStarted(seq=2, at=0, duration=12.0),
            ev.ActivityScheduled(seq=3, at=0, activity="a", input=b"[]",
                                 options={"task_queue": "q", "schedule_to_close": 15.0})])
        assert await store.timers_due(10) == ([], [])
    async with store_factory(clock) as store:  # another process
        clock.now = start + 12.0
        assert await store.timers_due(10) == ([(a, 3), (b, 2)], [])
        assert await store.timers_due(1) == ([(a, 3)], [])
        assert await store.timers_due(0) == ([], [])
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 5.0)  # leased until start + 17
        clock.now = start + 15.0
        assert await store.timers_due(10) == ([(a, 3), (b, 2)], [])  # overdue, but its attempt is running
        clock.now = start + 18.0
        assert await store.timers_due(10) == ([(a, 3), (b, 2)], [task.id])  # its lease ran out
        assert await store.timers_due(10) == ([(a, 3), (b, 2)], [task.id])  # a read: nothing was taken
        assert await Runs(store).fire_timers(10) == 3
        assert await store.timers_due(10) == ([], [])
        clock.now = start + 20.0
        assert await store.timers_due(10) == ([(a, 2)], [])
        await Runs(store).terminate(a, "done")  # its close cancels the timer
        assert await store.timers_due(10) == ([], [])
        assert await Runs(store).fire_timers(10) == 0
        assert (await history_types(store, a)).count("TimerFired") == 1


async def test_what_comes_due_next(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        assert await store.next_wakeup() is None
        assert await store.quiescence() == (False, None)
        run_id = await start_run(store)
        assert await store.quiescence() == (True, None)  # a workflow task is due
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        assert await store.next_wakeup() == clock.now + 5.0  # the lease's end
        assert await store.quiescence() == (True, None)  # a task is leased
        await Runs(store).commit_workflow_task(run_id, "me", 1, [
            ev.TimerStarted(seq=2, at=0, duration=50.0),
            ev.ActivityScheduled(seq=3, at=0, activity="a", input=b"[]",
                                 options={"task_queue": "q", "schedule_to_close": 20.0}),
        ])
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 10.0)
        assert await store.next_wakeup() == clock.now + 10.0
        outcome = ActivityOutcome("failed", failure=Failure(type="E", message="m"), retry_delay=3.0)
        assert await Runs(store).finish_activity(task, "me", outcome)
        assert await store.next_wakeup() == clock.now + 3.0  # the retry
        assert await store.quiescence() == (False, clock.now + 3.0)
        clock.now += 3.0
        [retried] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        assert (retried.id, retried.attempt) == (task.id, 2)
        await Runs(store).release_leases("me")
        assert await store.quiescence() == (True, None)  # handed back: due now
        clock.now += 17.0
        # Past its schedule-to-close deadline: it times out, and the run hears of it.
        assert await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0) == []
        assert await Runs(store).fire_timers(10) == 1
        _, history = await store.load(run_id, 3)
        assert [type(e).__name__ for e in history] == ["ActivityTimedOut"]


async def test_release_hands_back_every_lease_of_an_owner(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        await run_with_activity(store, "a")
        other = await start_run(store, "b")
        assert await store.claim_workflow_tasks("leaving", ["wf"], 10, 60.0) == [other]
        [task] = await store.claim_activity_tasks("leaving", "q", ["a"], 10, 60.0)
        await Runs(store).release_leases("leaving")
        assert await store.claim_workflow_tasks("staying", ["wf"], 10, 60.0) == [other]
        [again] = await store.claim_activity_tasks("staying", "q", ["a"], 10, 60.0)
        assert (again.id, again.attempt) == (task.id, 1)  # handed back, not lost: the attempt does not count


async def test_claims_take_only_hosted_activities_of_the_queue(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        run_id = await start_run(store)
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(run_id, "me", 1, [
            ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={"task_queue": "gpu"}),
            ev.ActivityScheduled(seq=3, at=0, activity="b", input=b"[]", options={"task_queue": "gpu"}),
            ev.ActivityScheduled(seq=4, at=0, activity="a", input=b"[]", options={}),
        ])
        assert await store.claim_activity_tasks("x", "cpu", ["a", "b"], 10, 5.0) == []
        assert [task.seq for task in await store.claim_activity_tasks("x", "gpu", ["a"], 10, 5.0)] == [2]
        assert [task.seq for task in await store.claim_activity_tasks("x", "default", ["a"], 10, 5.0)] == [4]
        assert await store.claim_workflow_tasks("x", ["other"], 10, 5.0) == []


async def test_activity_task_ids_are_never_reused(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await run_with_activity(store, "old")
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        # The newest task goes (its run is cancelled); the next one gets a new id.
        await Runs(store).request_cancel(run_id, "test")
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await Runs(store).commit_workflow_task(run_id, "me", 3, [ev.WorkflowCancelled(seq=4, at=0)])
        other = await run_with_activity(store, "new")
        [fresh] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        assert fresh.run_id == other
        assert fresh.id > task.id
        # The old attempt's outcome is refused: its task is gone.
        assert not await Runs(store).finish_activity(task, "me", ActivityOutcome("completed", result=b"1"))
        # Nor after the newest task's run closed and retention deleted every row of it.
        await Runs(store).request_cancel(other, "test")
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await Runs(store).commit_workflow_task(other, "me", 3, [ev.WorkflowCancelled(seq=4, at=0)])
        clock.now += 10
        report = await store.purge(clock.now, statuses=None, workflow=None, batch_size=10, dry_run=False)
        assert report.runs == 2
        third = await run_with_activity(store, "third")
        [newest] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        assert newest.run_id == third
        assert newest.id > fresh.id
        assert not await Runs(store).finish_activity(fresh, "me", ActivityOutcome("completed", result=b"2"))
        assert await history_types(store, third) == ["WorkflowStarted", "ActivityScheduled"]


class _UndoneError(Exception):
    """Raised by a test's transaction to have it undone."""


async def test_an_activity_step_run_again_forgets_what_an_undone_run_decided(store_factory: StoreFactory) -> None:
    """A store runs a transaction again after a refused write (NATS): a step the undone run applied, and
    the tasks it leased (their ids given back), must not be taken for committed when the rerun records the
    outcome alone."""
    async with store_factory(ManualClock()) as store:
        runs = Runs(store)
        run_id = await run_with_activity(store, "w")
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        outcome = ActivityOutcome("completed", result=b"7")
        take = ActivityTake("me", 60.0, frozenset({"a"}), {"q": 1})
        step = ActivityStep(run_id, 2, outcome.event(seq=3, at=0, scheduled=task.seq, attempt=task.attempt),
                            [schedule(4)], take)

        def undone(tx: Tx) -> None:
            assert runs.finish_in(tx, task, "me", outcome, step)
            assert step.stepped  # decided, then undone
            assert take.taken
            raise _UndoneError

        with pytest.raises(_UndoneError):
            await store.transact(undone)
        assert await history_types(store, run_id) == ["WorkflowStarted", "ActivityScheduled"]
        await runs.signal("w", "go", b"1")  # the run moves on meanwhile: the step no longer applies
        assert await runs.finish_activity(task, "me", outcome, step)
        assert not step.stepped
        assert take.taken == []  # no task to start: the ids the undone run handed out were never stored
        assert await history_types(store, run_id) == [
            "WorkflowStarted", "ActivityScheduled", "SignalReceived", "ActivityCompleted"]
        assert await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0) == []


async def test_each_task_is_claimed_by_one_worker(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as setup:
        for i in range(40):
            await run_with_activity(setup, f"w{i}")
        for i in range(40):
            await start_run(setup, f"fresh{i}")
        activity_claims: dict[str, list[int]] = {}
        workflow_claims: dict[str, list[str]] = {}

        async def claim(name: str) -> None:
            activity_claims[name], workflow_claims[name] = [], []
            async with store_factory(ManualClock()) as store:
                while True:
                    tasks = await store.claim_activity_tasks(name, "q", ["a"], 3, 60.0)
                    runs = await store.claim_workflow_tasks(name, ["wf"], 3, 60.0)
                    if not tasks and not runs:
                        return
                    activity_claims[name] += [task.id for task in tasks]
                    workflow_claims[name] += runs

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(claim, f"worker{i}")
    every_activity = [task for ids in activity_claims.values() for task in ids]
    every_run = [run for ids in workflow_claims.values() for run in ids]
    assert len(every_activity) == len(set(every_activity)) == 40
    assert len(every_run) == len(set(every_run)) == 40


async def test_a_due_timer_fires_once_whoever_looks(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as a, store_factory(clock) as b:
        run_ids = [await start_run(a, f"t{i}") for i in range(20)]
        await a.claim_workflow_tasks("me", ["wf"], 100, 5.0)
        for run_id in run_ids:
            await Runs(a).commit_workflow_task(run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=10.0)])
        clock.now += 10
        fired: list[int] = []

        async def fire(store: Store) -> None:
            for _ in range(5):
                fired.append(await Runs(store).fire_timers(3))

        async with anyio.create_task_group() as tg:
            for store in (a, b, a, b):
                tg.start_soon(fire, store)
        # Lookers that picked the same timers wait for each other and skip what
        # was fired meanwhile: some may be left for the next look, none fires twice.
        while more := await Runs(b).fire_timers(100):
            fired.append(more)
        assert sum(fired) == 20
        for run_id in run_ids:
            assert (await history_types(a, run_id)).count("TimerFired") == 1
