"""The store contract: what every :class:`~retold.stores.Store` must do, checked through the protocol only.

These tests drive a store the way the engine does (through
``retold.engine._runs.Runs``, the store's claims and leases, and its reads)
and never look at how it keeps its data, so they run unchanged on
``memory://``, SQLite, PostgreSQL, and any store you write. Passing them is
the bar for a store.

To run them on your store, import them into a test module and define a
``store_factory`` fixture::

    # tests/test_my_store_contract.py
    import pytest
    from retold.testing.store_contract import *  # noqa: F403 - the tests, collected by pytest

    @pytest.fixture
    def store_factory(tmp_path):
        database = tmp_path / "my.db"

        def factory(clock):
            return open_my_store(database, clock=clock, lease_clock=clock)  # an async context manager

        return factory

``store_factory(clock)`` returns an async context manager that opens a
store and closes it. ``clock`` (a :class:`ManualClock`) must be the store's
clock and its lease clock: the tests move time by hand. Every call within
one test opens a store on the *same* data (as another process would; a
store that cannot be shared may return the same object each time). Tests
are async (anyio); the ``anyio_backend`` fixture picks the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from ..engine._machine import ActivityStep, ActivityTake, StartStep
from ..engine._runs import Runs
from ..errors import (
    ConflictError,
    IdempotencyError,
    LeaseLostError,
    RunFinishedError,
    RunNotFoundError,
    StoreError,
)
from ..history import events as ev
from ..stores import ActivityOutcome, StartRequest, Store, Tx
from ..stores._plan import NewActivity, NewRun, Plan, TaskChange

__all__ = [
    "ManualClock", "StoreFactory", "pytestmark",
    "test_a_closing_step_with_inputs_waiting_is_refused_and_the_inputs_recorded",
    "test_a_lapsed_lease_does_not_hide_signals_but_keeps_their_order",
    "test_only_another_owners_lapsed_lease_counts_as_a_death_and_a_commit_clears_the_count",
    "test_signals_during_a_step_follow_its_commands_and_the_task_stays_leased",
    "test_a_commit_after_the_lease_moved_on_is_refused",
    "test_a_due_timer_fires_once_whoever_looks",
    "test_a_reaped_worker_loses_its_leases_at_once_and_its_attempt_counts",
    "test_a_signal_recorded_during_a_task_fails_its_completion",
    "test_a_start_stores_the_runs_first_step_with_it",
    "test_a_transaction_that_raises_changes_nothing",
    "test_activity_task_ids_are_never_reused",
    "test_an_activity_outcome_commits_the_runs_next_step_with_it",
    "test_cancel_racing_completion_records_one_outcome",
    "test_claims_take_only_hosted_activities_of_the_queue",
    "test_commit_is_all_or_nothing",
    "test_concurrent_starts_of_one_id_make_one_run",
    "test_each_task_is_claimed_by_one_worker",
    "test_leases_expire_by_the_store_clock",
    "test_reads_runs_by_id_status_and_workflow",
    "test_release_hands_back_every_lease_of_an_owner",
    "test_start_is_idempotent_by_id_and_key",
    "test_timers_fire_when_due",
    "test_what_comes_due_next",
]

pytestmark = pytest.mark.anyio


class ManualClock:
    """A clock the tests move by hand (``clock.now += 5``)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


StoreFactory = Callable[[ManualClock], AbstractAsyncContextManager[Store]]


async def _started(store: Store, wid: str = "w") -> str:
    record, created = await Runs(store).start(StartRequest("wf", wid, b"[]", "h"))
    assert created
    return record.run_id


def _schedule(seq: int, queue: str = "q") -> ev.ActivityScheduled:
    return ev.ActivityScheduled(seq=seq, at=0, activity="a", input=b"[]", options={"task_queue": queue})


async def _run_with_activity(store: Store, wid: str) -> str:
    """A run whose first workflow task scheduled one activity of queue ``q``."""
    run_id = await _started(store, wid)
    assert await store.claim_workflow_tasks("setup", ["wf"], 1000, 5.0)
    await Runs(store).commit_workflow_task(run_id, "setup", 1, [_schedule(2)])
    return run_id


async def _types(store: Store, run_id: str, after: int = 0) -> list[str]:
    _, history = await store.load(run_id, after)
    return [e.type for e in history]


async def _count_runs(store: Store) -> int:
    return len(await store.list_runs(status=None, workflow=None, limit=10_000, offset=0))


# -- one store ---------------------------------------------------------------------------


async def test_start_is_idempotent_by_id_and_key(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        first, created = await Runs(store).start(StartRequest("wf", "order-1", b"[1]", "h1", "key-1"))
        assert created
        again, created = await Runs(store).start(StartRequest("wf", "order-1", b"[1]", "h1"))
        assert (again.run_id, created) == (first.run_id, False)
        by_key, created = await Runs(store).start(StartRequest("wf", "order-2", b"[1]", "h1", "key-1"))
        assert (by_key.run_id, created) == (first.run_id, False)
        with pytest.raises(IdempotencyError, match="different input"):
            await Runs(store).start(StartRequest("wf", "order-1", b"[2]", "h2"))
        with pytest.raises(IdempotencyError, match="workflow 'wf', not 'other'"):
            await Runs(store).start(StartRequest("other", "order-1", b"[1]", "h1"))
        assert await _count_runs(store) == 1
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [first.run_id]


async def test_commit_is_all_or_nothing(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await _started(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        good = [_schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)]
        with pytest.raises(ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 5, good)  # stale expected seq
        broken = [*good, ev.TimerStarted(seq=9, at=0, duration=1.0)]  # a gap: refused mid-way
        with pytest.raises(StoreError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, broken)
        # Nothing of it stayed: no event, no activity task, no timer, the task still ours.
        assert await _types(store, run_id) == ["WorkflowStarted"]
        assert (await store.get_run(run_id)).last_seq == 1
        assert await store.claim_activity_tasks("probe", "q", ["a"], 10, 5.0) == []
        assert await store.claim_workflow_tasks("probe", ["wf"], 10, 5.0) == []
        clock.now += 61
        assert await Runs(store).fire_timers(10) == 0
        assert await Runs(store).commit_workflow_task(run_id, "me", 1, good) == 3
        assert [t.seq for t in await store.claim_activity_tasks("probe", "q", ["a"], 10, 5.0)] == [2]
        assert await store.claim_workflow_tasks("probe", ["wf"], 10, 5.0) == []  # the task is done
        clock.now += 60
        assert await Runs(store).fire_timers(10) == 1


async def test_a_transaction_that_raises_changes_nothing(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await _started(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        started = ev.WorkflowStarted(seq=1, at=clock.now, workflow="wf", workflow_id="child", input=b"[]")

        def body(tx: Tx) -> None:
            tx.apply(Plan(
                run_id, expect_seq=1, expect_owner="me",
                events=[_schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)],
                activities=[NewActivity(2, "a", "q", b"[]", {"task_queue": "q"}, None)],
                timers=[(3, tx.now() + 60.0)], task=TaskChange("done"),
                runs=[NewRun("run-child", "wf", "child", [started], parent_run_id=run_id, parent_seq=2,
                             input_hash="h")],
            ))
            after = tx.run(run_id)  # a transaction reads its own writes
            assert after is not None and after.last_seq == 3 and after.task is None
            assert tx.open_children(run_id) == ["run-child"]
            tx.apply(Plan(run_id, expect_seq=1, events=[ev.WorkflowTaskCompleted(seq=2, at=0)]))  # stale: refused

        with pytest.raises(ConflictError):
            await store.transact(body)
        assert await _types(store, run_id) == ["WorkflowStarted"]
        assert (await store.get_run(run_id)).last_seq == 1
        with pytest.raises(RunNotFoundError):
            await store.get_run("child")
        assert await _count_runs(store) == 1
        assert await store.claim_activity_tasks("probe", "q", ["a"], 10, 5.0) == []
        assert await store.claim_workflow_tasks("probe", ["wf"], 10, 5.0) == []  # still leased to "me"

        def raises(tx: Tx) -> None:
            tx.apply(Plan(run_id, expect_seq=1, expect_owner="me", events=[ev.WorkflowTaskCompleted(seq=2, at=0)],
                          timers=[(9, tx.now() + 1.0)]))
            raise RuntimeError("the body failed after applying a plan")

        with pytest.raises(RuntimeError, match="body failed"):
            await store.transact(raises)
        assert (await store.get_run(run_id)).last_seq == 1
        clock.now += 61.0
        assert await Runs(store).fire_timers(10) == 0  # neither transaction left a timer
        assert await store.claim_workflow_tasks("probe", ["wf"], 10, 5.0) == [run_id]  # the task was never done
        # The transaction's own answer, and its reads, once it commits.
        assert await store.transact(lambda tx: tx.entry("w") is not None and tx.entry("child") is None)


async def test_leases_expire_by_the_store_clock(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await _started(store)
        assert await store.claim_workflow_tasks("dead", ["wf"], 10, 5.0) == [run_id]
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == []
        clock.now += 5.1
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == [run_id]
        assert (await store.load(run_id, 1))[0].task_attempts == 1  # the dead owner's attempt counted
        await Runs(store).commit_workflow_task(run_id, "alive", 1, [_schedule(2)])

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


async def test_a_reaped_worker_loses_its_leases_at_once_and_its_attempt_counts(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        assert await store.register_worker("dead", "host-a", 111, "7") == []
        assert await store.register_worker("other-host", "host-b", 222, "8") == []
        assert await store.register_worker("alive", "host-a", 333, "9") == [("dead", 111, "7")]
        run_id = await _started(store)
        assert await store.claim_workflow_tasks("dead", ["wf"], 10, 60.0) == [run_id]
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 60.0) == []
        assert await store.reap_worker("dead") == 1
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 60.0) == [run_id]  # no 60 s wait
        await Runs(store).commit_workflow_task(run_id, "alive", 1, [_schedule(2)])
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
        run_id = await _started(store)
        assert await store.claim_workflow_tasks("stalled", ["wf"], 10, 5.0) == [run_id]
        clock.now += 6
        assert await store.claim_workflow_tasks("next", ["wf"], 10, 5.0) == [run_id]
        # Same expected event number: only the lease tells the two apart.
        with pytest.raises(LeaseLostError, match="stalled lost its lease") as lost:
            await Runs(store).commit_workflow_task(run_id, "stalled", 1, [ev.TimerStarted(seq=2, at=0, duration=1)])
        assert lost.value.holder == "next"
        assert (await store.get_run(run_id)).last_seq == 1
        assert await Runs(store).commit_workflow_task(run_id, "next", 1, [_schedule(2)]) == 2
        with pytest.raises(LeaseLostError, match="no longer pending"):
            await Runs(store).commit_workflow_task(run_id, "stalled", 2, [ev.TimerStarted(seq=3, at=0, duration=1)])
        assert await _types(store, run_id) == ["WorkflowStarted", "ActivityScheduled"]


async def test_a_signal_recorded_during_a_task_fails_its_completion(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        run_id = await _started(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        await Runs(store).signal("w", "go", b"1")  # arrives while the task runs
        done = ev.WorkflowCompleted(seq=2, at=0, result=b"null")
        with pytest.raises(ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, [done])
        run, pending = await store.load(run_id, 1)
        assert run.status == "running"
        assert [e.type for e in pending] == ["SignalReceived"]
        # The task is still ours: processed again with the signal, it completes.
        assert await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCompleted(
            seq=3, at=0, result=b"null")]) == 3
        assert await _types(store, run_id) == ["WorkflowStarted", "SignalReceived", "WorkflowCompleted"]
        assert (await store.get_run("w")).status == "completed"


def _names(events: list[ev.Event]) -> list[str]:
    return [f"{type(e).__name__}:{e.name}" if isinstance(e, ev.SignalReceived) else type(e).__name__
            for e in events]


async def test_signals_during_a_step_follow_its_commands_and_the_task_stays_leased(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0) == [run_id]
        await Runs(store).signal(run_id, "a", b"1")
        await Runs(store).signal(run_id, "b", b"2")
        _, history = await store.load(run_id, 0)
        assert _names(history) == ["WorkflowStarted"]  # waiting in the inbox, not yet in the history
        last = await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=60.0)])
        assert last == 4
        _, history = await store.load(run_id, 0)
        assert _names(history) == ["WorkflowStarted", "TimerStarted", "SignalReceived:a", "SignalReceived:b"]
        # Still ours: nobody else can claim it, and we go on with the next step.
        assert await store.claim_workflow_tasks("other", ["wf"], 10, 60.0) == []
        assert await Runs(store).commit_workflow_task(run_id, "me", 4, [ev.WorkflowTaskCompleted(seq=5, at=0)]) == 5


async def test_a_closing_step_with_inputs_waiting_is_refused_and_the_inputs_recorded(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await Runs(store).signal(run_id, "late", b"1")
        with pytest.raises(ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        run = await store.get_run(run_id)
        assert run.status == "running"
        _, history = await store.load(run_id, 0)
        assert _names(history) == ["WorkflowStarted", "SignalReceived:late"]
        # Having seen it, the run may close.
        await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCompleted(seq=3, at=0, result=b"1")])
        assert (await store.get_run(run_id)).status == "completed"


async def test_a_lapsed_lease_does_not_hide_signals_but_keeps_their_order(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        await store.claim_workflow_tasks("dead", ["wf"], 10, 5.0)
        await Runs(store).signal(run_id, "first", b"1")  # the holder is alive: the inbox
        clock.now += 6.0  # its lease runs out
        await Runs(store).signal(run_id, "second", b"2")  # behind "first", in the inbox too
        _, history = await store.load(run_id, 0)
        assert _names(history) == ["WorkflowStarted"]
        assert await store.claim_workflow_tasks("next", ["wf"], 10, 5.0) == [run_id]
        last = await Runs(store).commit_workflow_task(run_id, "next", 1, [ev.WorkflowTaskCompleted(seq=2, at=0)])
        _, history = await store.load(run_id, 0)
        assert _names(history) == ["WorkflowStarted", "WorkflowTaskCompleted", "SignalReceived:first",
                                  "SignalReceived:second"]
        assert last == 4
        # A holder whose lease ran out with nothing in the inbox: the signal is recorded at once.
        await Runs(store).commit_workflow_task(run_id, "next", 4, [ev.WorkflowTaskCompleted(seq=5, at=0)])
        await Runs(store).signal(run_id, "wake", b"3")
        assert await store.claim_workflow_tasks("gone", ["wf"], 10, 5.0) == [run_id]
        clock.now += 6.0
        await Runs(store).signal(run_id, "visible", b"4")
        _, history = await store.load(run_id, 5)
        assert _names(history) == ["SignalReceived:wake", "SignalReceived:visible"]


async def test_only_another_owners_lapsed_lease_counts_as_a_death_and_a_commit_clears_the_count(
    store_factory: StoreFactory,
) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
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


async def test_an_activity_outcome_commits_the_runs_next_step_with_it(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await _run_with_activity(store, "w")
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 5.0)
        clock.now += 1
        outcome = ActivityOutcome("completed", result=b"7")
        seen_at = clock.now - 0.5  # when the engine fed the outcome to the run
        event = outcome.event(seq=3, at=seen_at, scheduled=task.seq, attempt=task.attempt)
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"q": 1})
        step = ActivityStep(run_id, 2, event, [_schedule(4), ev.TimerStarted(seq=5, at=0, duration=60.0)], take)
        # A lost lease writes nothing, step or not.
        assert not await Runs(store).finish_activity(task, "someone-else", outcome, step)
        assert not step.stepped
        assert len(await _types(store, run_id)) == 2
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


async def test_a_start_stores_the_runs_first_step_with_it(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        request = StartRequest("wf", "first", b"[1]", "h")
        started = ev.WorkflowStarted(seq=1, at=clock.now - 0.25, workflow="wf", workflow_id="first", input=b"[1]")
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"q": 1})
        step = StartStep("run-first", started, [_schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)], take)
        record, created = await Runs(store).start(request, step)
        assert (record.run_id, record.last_seq, created, step.stepped) == ("run-first", 3, True, True)
        _, history = await store.load("run-first", 0)
        assert [e.type for e in history] == ["WorkflowStarted", "ActivityScheduled", "TimerStarted"]
        assert history[0].at == started.at
        assert [task.seq for task in take.taken] == [2]
        assert await store.claim_activity_tasks("other", "q", ["a"], 10, 5.0) == []  # leased to "me"
        # The same id again: the existing run, and nothing of the new step is written.
        again = StartStep("run-other", started, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        record, created = await Runs(store).start(request, again)
        assert (record.run_id, created, again.stepped) == ("run-first", False, False)
        assert await _count_runs(store) == 1
        assert len(await _types(store, "run-first")) == 3
        # A step that does not fit its request is refused before anything is written.
        wrong = StartStep("run-x", started, [])
        with pytest.raises(StoreError, match="does not fit"):
            await Runs(store).start(StartRequest("wf", "another", b"[2]", "h2"), wrong)
        assert await _count_runs(store) == 1
        assert await store.claim_workflow_tasks("x", ["wf"], 10, 5.0) == []  # nothing left for a workflow task


async def test_cancel_racing_completion_records_one_outcome(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        # Cancel first: the completion computed without it is refused.
        run_id = await _started(store, "cancel-first")
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).request_cancel("cancel-first", "stop")
        with pytest.raises(ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCancelled(seq=3, at=0)])
        # Completion first: the cancel is refused.
        other = await _started(store, "complete-first")
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(other, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        with pytest.raises(RunFinishedError):
            await Runs(store).request_cancel("complete-first", "too late")
        outcomes = {}
        for rid in (run_id, other):
            _, history = await store.load(rid, 0)
            outcomes[rid] = [e.type for e in history if isinstance(e, ev.TERMINAL_TYPES)]
        assert outcomes == {run_id: ["WorkflowCancelled"], other: ["WorkflowCompleted"]}
        assert [(await store.get_run(r)).status for r in (run_id, other)] == ["cancelled", "completed"]
        assert await store.closed_among([run_id, other, "nobody"]) == {run_id, other}


async def test_timers_fire_when_due(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await _started(store)
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


async def test_what_comes_due_next(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        assert await store.next_wakeup() is None
        assert await store.quiescence() == (False, None)
        run_id = await _started(store)
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
        outcome = ActivityOutcome("failed", failure={"type": "E", "message": "m"}, retry_delay=3.0)
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
        await _run_with_activity(store, "a")
        other = await _started(store, "b")
        assert await store.claim_workflow_tasks("leaving", ["wf"], 10, 60.0) == [other]
        [task] = await store.claim_activity_tasks("leaving", "q", ["a"], 10, 60.0)
        await Runs(store).release_leases("leaving")
        assert await store.claim_workflow_tasks("staying", ["wf"], 10, 60.0) == [other]
        [again] = await store.claim_activity_tasks("staying", "q", ["a"], 10, 60.0)
        assert (again.id, again.attempt) == (task.id, 1)  # handed back, not lost: the attempt does not count


async def test_claims_take_only_hosted_activities_of_the_queue(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        run_id = await _started(store)
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
    async with store_factory(ManualClock()) as store:
        run_id = await _run_with_activity(store, "old")
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        # The newest task goes (its run is cancelled); the next one gets a new id.
        await Runs(store).request_cancel(run_id, "test")
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await Runs(store).commit_workflow_task(run_id, "me", 3, [ev.WorkflowCancelled(seq=4, at=0)])
        other = await _run_with_activity(store, "new")
        [fresh] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        assert fresh.run_id == other
        assert fresh.id > task.id
        # The old attempt's outcome is refused: its task is gone.
        assert not await Runs(store).finish_activity(task, "me", ActivityOutcome("completed", result=b"1"))


async def test_reads_runs_by_id_status_and_workflow(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        ids = []
        for i in range(3):
            ids.append(await _started(store, f"r{i}"))
            clock.now += 1
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(ids[1], "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        assert [r.run_id for r in await store.list_runs(status=None, workflow=None, limit=10, offset=0)] == ids[::-1]
        assert [r.run_id for r in await store.list_runs(status=None, workflow=None, limit=1, offset=1)] == [ids[1]]
        assert [r.run_id for r in await store.list_runs(status="completed", workflow=None, limit=10,
                                                        offset=0)] == [ids[1]]
        assert await store.list_runs(status=None, workflow="other", limit=10, offset=0) == []
        record = await store.get_run("r1")
        assert (record.run_id, record.workflow_id, record.status, record.result) == (ids[1], "r1", "completed", b"1")
        assert record.closed_at is not None and record.closed_at >= record.created_at
        with pytest.raises(RunNotFoundError):
            await store.get_run("nobody")


# -- several stores on the same data (processes, machines) --------------------------------


async def test_concurrent_starts_of_one_id_make_one_run(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as a, store_factory(ManualClock()) as b:
        results: list[tuple[str, bool]] = []

        async def start(store: Store) -> None:
            record, created = await Runs(store).start(StartRequest("wf", "same", b"[]", "h"))
            results.append((record.run_id, created))

        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(start, (a, b)[i % 2])
        assert len({run_id for run_id, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        assert await _count_runs(a) == 1


async def test_each_task_is_claimed_by_one_worker(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as setup:
        for i in range(40):
            await _run_with_activity(setup, f"w{i}")
        for i in range(40):
            await _started(setup, f"fresh{i}")
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
        run_ids = [await _started(a, f"t{i}") for i in range(20)]
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
            assert (await _types(a, run_id)).count("TimerFired") == 1
