"""The contract for runs: starts, commits, inputs, closing, reads, atomic transactions."""

from __future__ import annotations

import anyio
import pytest

from ...engine import ActivityTake, Runs, StartStep
from ...errors import (
    ConflictError,
    IdempotencyError,
    RunFinishedError,
    RunNotFoundError,
    SignalBufferFullError,
    StoreError,
)
from ...history import events as ev
from ...history.failure import Failure
from ...stores import NewActivity, NewRun, Plan, StartRequest, Store, TaskChange, Tx
from ._common import ManualClock, StoreFactory, count_runs, history_types, names, schedule, start_run

__all__ = [
    "test_each_open_child_keeps_its_parent_close_policy_and_follows_it_at_the_close",
    "test_a_new_run_takes_over_a_closed_runs_id_once",
    "test_purge_takes_only_old_finished_runs",
    "test_signal_with_start_makes_one_run_with_every_signal",
    "test_time_limits_close_the_run_and_delay_its_first_task",
    "test_a_closing_step_with_inputs_waiting_is_refused_and_the_inputs_recorded",
    "test_a_run_deciding_again_whether_to_close_refuses_signals_until_its_next_step",
    "test_a_lapsed_lease_does_not_hide_signals_but_keeps_their_order",
    "test_a_signal_recorded_during_a_task_fails_its_completion",
    "test_a_start_stores_the_runs_first_step_with_it",
    "test_a_transaction_that_raises_changes_nothing",
    "test_cancel_racing_completion_records_one_outcome",
    "test_commit_is_all_or_nothing",
    "test_concurrent_starts_of_one_id_make_one_run",
    "test_only_another_owners_lapsed_lease_counts_as_a_death_and_a_commit_clears_the_count",
    "test_reads_runs_by_id_status_and_workflow",
    "test_a_history_reads_in_pages",
    "test_signals_during_a_step_follow_its_commands_and_the_task_stays_leased",
    "test_start_is_idempotent_by_id_and_key",
]


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
        assert await count_runs(store) == 1
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [first.run_id]


async def test_commit_is_all_or_nothing(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        run_id = await start_run(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        good = [schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)]
        with pytest.raises(ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 5, good)  # stale expected seq
        broken = [*good, ev.TimerStarted(seq=9, at=0, duration=1.0)]  # a gap: refused mid-way
        with pytest.raises(StoreError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, broken)
        # Nothing of it stayed: no event, no activity task, no timer, the task still ours.
        assert await history_types(store, run_id) == ["WorkflowStarted"]
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
        run_id = await start_run(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        started = ev.WorkflowStarted(seq=1, at=clock.now, workflow="wf", workflow_id="child", input=b"[]")

        def body(tx: Tx) -> None:
            tx.apply(Plan(
                run_id, expect_seq=1, expect_owner="me",
                events=[schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)],
                activities=[NewActivity(2, "a", "q", b"[]", {"task_queue": "q"}, None)],
                timers=[(3, tx.now() + 60.0)], task=TaskChange("done"),
                runs=[NewRun("run-child", "wf", "child", [started], parent_run_id=run_id, parent_seq=2,
                             input_hash="h")],
            ))
            after = tx.run(run_id)  # a transaction reads its own writes
            assert after is not None
            assert (after.last_seq, after.task) == (3, None)
            assert tx.open_children(run_id) == ["run-child"]
            tx.apply(Plan(run_id, expect_seq=1, events=[ev.WorkflowTaskCompleted(seq=2, at=0)]))  # stale: refused

        with pytest.raises(ConflictError):
            await store.transact(body)
        assert await history_types(store, run_id) == ["WorkflowStarted"]
        assert (await store.get_run(run_id)).last_seq == 1
        with pytest.raises(RunNotFoundError):
            await store.get_run("child")
        assert await count_runs(store) == 1
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


async def test_a_signal_recorded_during_a_task_fails_its_completion(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        run_id = await start_run(store)
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
        assert await history_types(store, run_id) == ["WorkflowStarted", "SignalReceived", "WorkflowCompleted"]
        assert (await store.get_run("w")).status == "completed"


async def test_signals_during_a_step_follow_its_commands_and_the_task_stays_leased(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
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


async def test_a_closing_step_with_inputs_waiting_is_refused_and_the_inputs_recorded(
    store_factory: StoreFactory,
) -> None:
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
        assert names(history) == ["WorkflowStarted", "SignalReceived:late"]
        # Having seen it, the run may close.
        await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCompleted(seq=3, at=0, result=b"1")])
        assert (await store.get_run(run_id)).status == "completed"


async def test_a_run_deciding_again_whether_to_close_refuses_signals_until_its_next_step(
    store_factory: StoreFactory,
) -> None:
    """After a refused close, signal() is refused (nothing written) so the next close cannot be refused forever."""
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        record, _ = await runs.start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await runs.signal(run_id, "late", b"1")
        with pytest.raises(ConflictError):
            await runs.commit_workflow_task(run_id, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        with pytest.raises(SignalBufferFullError, match="deciding again whether to close") as caught:
            await runs.signal(run_id, "during the replay", b"2")
        assert caught.value.closing
        assert await history_types(store, run_id) == ["WorkflowStarted", "SignalReceived"]  # nothing written
        # It went on instead of closing: signals are taken again.
        assert await runs.commit_workflow_task(run_id, "me", 2, [ev.TimerStarted(seq=3, at=0, duration=60.0)]) == 3
        await runs.signal(run_id, "again", b"3")
        # Refused again, then handed back (a shutdown): the window ends with the lease.
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0) == [run_id]
        await runs.signal(run_id, "queued", b"4")
        with pytest.raises(ConflictError):
            await runs.commit_workflow_task(run_id, "me", 4, [ev.WorkflowCompleted(seq=5, at=0, result=b"1")])
        with pytest.raises(SignalBufferFullError):
            await runs.signal(run_id, "refused", b"5")
        await runs.release_leases("me")
        await runs.signal(run_id, "after the release", b"6")
        assert await store.claim_workflow_tasks("next", ["wf"], 10, 60.0) == [run_id]
        await runs.signal(run_id, "in the inbox", b"7")
        with pytest.raises(ConflictError):
            await runs.commit_workflow_task(run_id, "next", 6, [ev.WorkflowCompleted(seq=7, at=0, result=b"1")])
        # The close decided again, having seen every signal: it commits, and later signals find it closed.
        assert await runs.commit_workflow_task(
            run_id, "next", 7, [ev.WorkflowCompleted(seq=8, at=0, result=b"1")]) == 8
        with pytest.raises(RunFinishedError):
            await runs.signal(run_id, "too late", b"8")
        _, history = await store.load(run_id, 0)
        assert names(history) == [
            "WorkflowStarted", "SignalReceived:late", "TimerStarted", "SignalReceived:again", "SignalReceived:queued",
            "SignalReceived:after the release", "SignalReceived:in the inbox", "WorkflowCompleted"]


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
    store_factory: StoreFactory,
) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        record, _ = await runs.start(StartRequest("wf", "w", b"[]", "h"))
        run_id = record.run_id

        async def task() -> tuple[int, int]:
            found = (await store.load(run_id, 0))[0]
            return found.task_attempts, found.task_lapses  # deaths, lapses

        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        clock.now += 6.0  # my own lease lapsed (a stall): I claim it again, alive
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        assert await task() == (0, 0)
        clock.now += 6.0  # another worker takes it over: one lapse, no suspect yet, nobody blamed
        assert await store.claim_workflow_tasks("other", ["wf"], 10, 5.0, suspects=0) == [run_id]
        assert await task() == (0, 1)
        clock.now += 6.0  # a second lapse in a row: a suspect, taken one at a time
        assert await store.claim_workflow_tasks("third", ["wf"], 10, 5.0, suspects=0) == []
        assert await store.claim_workflow_tasks("third", ["wf"], 10, 5.0, suspects=1) == [run_id]
        assert await task() == (0, 2)
        # Its holder marks the step it runs alone; only the holder can.
        assert not await runs.mark_stepping(run_id, "other")
        assert await runs.mark_stepping(run_id, "third")
        clock.now += 6.0  # and dies during it: that death counts against this task
        assert await store.claim_workflow_tasks("fourth", ["wf"], 10, 5.0) == [run_id]
        assert await task() == (1, 3)
        clock.now += 6.0  # the mark went with that claim: a death without a marked step counts nothing
        assert await store.claim_workflow_tasks("fifth", ["wf"], 10, 5.0) == [run_id]
        assert await task() == (1, 4)
        # A step that fails (its worker alive) clears the mark too; the task stays a suspect.
        assert await runs.mark_stepping(run_id, "fifth")
        failure = Failure(type="E", message="boom", non_retryable=True)
        assert not await runs.fail_workflow_task(run_id, "fifth", failure, 0.0, 5, block=True)
        assert await store.claim_workflow_tasks("sixth", ["wf"], 10, 5.0, suspects=0) == []
        assert await store.claim_workflow_tasks("sixth", ["wf"], 10, 5.0) == [run_id]
        assert await task() == (1, 4)
        assert await runs.quarantine(run_id, "sixth", 2, 1.0, block=True) is None  # one death of two tolerated
        assert await runs.mark_stepping(run_id, "sixth")
        clock.now += 6.0
        assert await store.claim_workflow_tasks("seventh", ["wf"], 10, 5.0, fingerprint="f1") == [run_id]
        assert await task() == (2, 5)
        # The second death blocks the run, keeping one death: one more blocks it again.
        assert await runs.quarantine(run_id, "seventh", 2, 1.0, block=True, fingerprint="f1") == "blocked"
        blocked = await store.get_run(run_id)
        assert blocked.status == "running"
        assert blocked.task_failure is not None
        assert blocked.task_failure.failure.type == "WorkerDied"
        assert "workers died 2 times" in blocked.task_failure.failure.message
        assert await store.claim_workflow_tasks("eighth", ["wf"], 10, 5.0, fingerprint="f1") == []  # backed off
        assert await store.claim_workflow_tasks("eighth", ["wf"], 10, 5.0, fingerprint="f2") == [run_id]
        assert await task() == (1, 5)
        # A step commits with inputs that waited: the task stays leased, its counts start again.
        await runs.signal(run_id, "s", b"1")
        assert await runs.commit_workflow_task(run_id, "eighth", 1, [ev.WorkflowTaskCompleted(seq=2, at=0)]) == 3
        assert await task() == (0, 0)
        assert (await store.get_run(run_id)).task_failure is None
        # Without blocking, the quarantine fails the run.
        assert await runs.mark_stepping(run_id, "eighth")
        clock.now += 6.0
        await store.claim_workflow_tasks("ninth", ["wf"], 10, 5.0)
        assert await runs.quarantine(run_id, "ninth", 1, 1.0, block=False) == "failed"
        closed = await store.get_run(run_id)
        assert closed.status == "failed"
        assert closed.failure is not None
        assert closed.failure.type == "WorkerDied"


async def test_a_start_stores_the_runs_first_step_with_it(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        request = StartRequest("wf", "first", b"[1]", "h")
        started = ev.WorkflowStarted(seq=1, at=clock.now - 0.25, workflow="wf", workflow_id="first", input=b"[1]")
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"q": 1})
        step = StartStep("run-first", started, [schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)], take)
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
        assert await count_runs(store) == 1
        assert len(await history_types(store, "run-first")) == 3
        # A step that does not fit its request is refused before anything is written.
        wrong = StartStep("run-x", started, [])
        with pytest.raises(StoreError, match="does not fit"):
            await Runs(store).start(StartRequest("wf", "another", b"[2]", "h2"), wrong)
        assert await count_runs(store) == 1
        assert await store.claim_workflow_tasks("x", ["wf"], 10, 5.0) == []  # nothing left for a workflow task


async def test_cancel_racing_completion_records_one_outcome(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        # Cancel first: the completion computed without it is refused.
        run_id = await start_run(store, "cancel-first")
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).request_cancel("cancel-first", "stop")
        with pytest.raises(ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCancelled(seq=3, at=0)])
        # Completion first: the cancel is refused.
        other = await start_run(store, "complete-first")
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
        running = await start_run(store, "still-running")
        found = await store.closed_among([run_id, other, "nobody", running])
        assert found == {run_id: await store.get_run(run_id), other: await store.get_run(other), "nobody": None}


async def test_reads_runs_by_id_status_and_workflow(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        ids = []
        for i in range(3):
            ids.append(await start_run(store, f"r{i}"))
            clock.now += 1
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(ids[1], "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        assert [r.run_id for r in await store.list_runs(status=None, workflow=None, limit=10, offset=0)] == ids[::-1]
        assert [r.run_id for r in await store.list_runs(status=None, workflow=None, limit=1, offset=1)] == [ids[1]]
        assert [r.run_id for r in await store.list_runs(status="completed", workflow=None, limit=10,
                                                        offset=0)] == [ids[1]]
        assert await store.list_runs(status=None, workflow="other", limit=10, offset=0) == []
        by_prefix = await store.list_runs(status=None, workflow=None, limit=10, offset=0, id_prefix="r1")
        assert [r.run_id for r in by_prefix] == [ids[1]]
        start = clock.now - 3  # when the first run was created
        after = await store.list_runs(status=None, workflow=None, limit=10, offset=0, started_after=start + 1)
        assert [r.run_id for r in after] == [ids[2], ids[1]]
        before = await store.list_runs(status=None, workflow=None, limit=10, offset=0, started_before=start + 1)
        assert [r.run_id for r in before] == [ids[0]]
        record = await store.get_run("r1")
        assert (record.run_id, record.workflow_id, record.status, record.result) == (ids[1], "r1", "completed", b"1")
        assert record.closed_at is not None
        assert record.closed_at >= record.created_at
        with pytest.raises(RunNotFoundError):
            await store.get_run("nobody")


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
        assert await count_runs(a) == 1


async def test_purge_takes_only_old_finished_runs(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    day = 86_400.0
    async with store_factory(clock) as store:
        old_done, _ = await Runs(store).start(StartRequest("wf", "old-done", b"[]", "h", "key-1"))
        old_failed = await start_run(store, "old-failed")
        running = await start_run(store, "running")
        assert len(await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)) == 3
        await Runs(store).commit_workflow_task(old_done.run_id, "me", 1, [
            ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        await Runs(store).commit_workflow_task(old_failed, "me", 1, [
            ev.WorkflowFailed(seq=2, at=0, failure=Failure(type="E", message="no"))])
        await Runs(store).commit_workflow_task(running, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=99 * day)])
        clock.now += 20 * day
        recent = await start_run(store, "recent")
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await Runs(store).commit_workflow_task(recent, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        clock.now += 15 * day
        counted = await store.purge(clock.now - 30 * day, statuses=None, workflow=None, batch_size=1, dry_run=True)
        assert counted.dry_run
        assert await count_runs(store) == 4  # a dry run writes nothing
        report = await store.purge(clock.now - 30 * day, statuses=None, workflow=None, batch_size=1, dry_run=False)
        assert (report.runs, report.workflow_ids, report.events, report.dry_run) == (2, 2, 4, False)
        assert (counted.runs, counted.workflow_ids, counted.events) == (2, 2, 4)
        for gone in (old_done.run_id, old_failed, "old-done"):
            with pytest.raises(RunNotFoundError):
                await store.get_run(gone)
        with pytest.raises(RunNotFoundError):
            await store.load(old_failed, 0)
        assert {r.run_id for r in await store.list_runs(status=None, workflow=None, limit=10, offset=0)} == {
            running, recent}
        # The running run goes on; the freed id and key can be used again.
        await Runs(store).signal(running, "go", b"1")
        assert await history_types(store, running, 2) == ["SignalReceived"]
        again, created = await Runs(store).start(StartRequest("wf", "other-id", b"[]", "h", "key-1"))
        assert created
        assert again.run_id != old_done.run_id


async def test_a_history_reads_in_pages(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as store:
        run_id = await start_run(store)
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(
            run_id, "me", 1, [ev.TimerStarted(seq=n, at=0, duration=60.0) for n in range(2, 8)])
        _, every = await store.load(run_id, 0)
        assert [e.seq for e in every] == [1, 2, 3, 4, 5, 6, 7]
        _, page = await store.load(run_id, 0, 3)
        assert [e.seq for e in page] == [1, 2, 3]
        _, page = await store.load(run_id, 3, 3)
        assert [e.seq for e in page] == [4, 5, 6]
        _, page = await store.load(run_id, 6, 3)
        assert [e.seq for e in page] == [7]  # fewer than asked: the last page
        _, page = await store.load(run_id, 7, 3)
        assert page == []
        _, rest = await store.load(run_id, 4)
        assert [e.seq for e in rest] == [5, 6, 7]


async def test_signal_with_start_makes_one_run_with_every_signal(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as a, store_factory(ManualClock()) as b:
        created: list[bool] = []

        async def send(store: Store, i: int) -> None:
            _, made = await Runs(store).signal_with_start(StartRequest("wf", "sws", b"[]", "h"), "s", b"%d" % i)
            created.append(made)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(send, (a, b)[i % 2], i)
        assert created.count(True) == 1
        assert await count_runs(a) == 1
        run = await a.get_run("sws")
        _, history = await a.load(run.run_id, 0)
        assert history[0].type == "WorkflowStarted"
        assert history[1].type == "SignalReceived"  # the start and its signal, in one plan
        assert sorted(e.input for e in history if isinstance(e, ev.SignalReceived)) == [b"%d" % i for i in range(8)]


async def test_a_new_run_takes_over_a_closed_runs_id_once(store_factory: StoreFactory) -> None:
    async with store_factory(ManualClock()) as a, store_factory(ManualClock()) as b:
        first, _ = await Runs(a).start(StartRequest("wf", "again", b"[1]", "h1"))
        await Runs(a).terminate("again", "done")
        results: list[tuple[str, bool]] = []

        async def start(store: Store) -> None:
            request = StartRequest("wf", "again", b"[2]", "h2", id_reuse_policy="allow_duplicate")
            record, made = await Runs(store).start(request)
            results.append((record.run_id, made))

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(start, (a, b)[i % 2])
        assert sum(made for _, made in results) == 1
        [new_run_id] = {run_id for run_id, _ in results}
        assert new_run_id != first.run_id
        assert (await a.get_run("again")).run_id == new_run_id
        assert (await a.get_run(first.run_id)).status == "terminated"
        # A plan that follows a run that is no longer the id's current one is refused, writing nothing.
        stale = NewRun("run-stale", "wf", "again", [ev.WorkflowStarted(seq=1, at=0, workflow="wf", workflow_id="again",
                                                                       input=b"[]")],
                       entry="reuse", replaces=first.run_id, input_hash="h3")
        with pytest.raises(ConflictError):
            await a.transact(lambda tx: tx.apply(Plan("run-stale", runs=[stale])))
        assert await count_runs(a) == 2


async def test_time_limits_close_the_run_and_delay_its_first_task(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        runs = Runs(store)
        limited, _ = await runs.start(StartRequest("wf", "limited", b"[]", "h", run_timeout=30.0,
                                                   execution_timeout=60.0))
        delayed, _ = await runs.start(StartRequest("wf", "delayed", b"[]", "h", start_delay=10.0))
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [limited.run_id]
        await runs.commit_workflow_task(limited.run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=3600.0)])
        assert await store.next_wakeup() == clock.now + 10.0  # the delayed task comes due first
        clock.now += 10.0
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [delayed.run_id]
        assert await runs.fire_timers(10) == 0
        clock.now += 20.0
        assert await runs.fire_timers(10) == 1
        assert (await store.get_run(limited.run_id)).status == "timed_out"
        assert (await history_types(store, limited.run_id))[-1] == "WorkflowTimedOut"
        clock.now += 3600.0
        assert await runs.fire_timers(10) == 0  # its own timer and its execution timeout went with it


async def test_each_open_child_keeps_its_parent_close_policy_and_follows_it_at_the_close(
    store_factory: StoreFactory,
) -> None:
    async with store_factory(ManualClock()) as store:
        runs = Runs(store)
        parent = await start_run(store, "parent")
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [parent]
        policies = {"terminate": "terminate", "abandon": "abandon", "default": None}
        await runs.commit_workflow_task(parent, "me", 1, [
            ev.ChildWorkflowStarted(seq=2 + i, at=0, workflow="child", workflow_id=f"c-{name}",
                                    run_id=f"run-c-{name}", input=b"[]", parent_close_policy=policy)
            for i, (name, policy) in enumerate(policies.items())])
        for name, policy in policies.items():
            record = await store.get_run(f"c-{name}")
            assert (record.parent_run_id, record.parent_close_policy) == (parent, policy)
        # A child's continue-as-new keeps its policy: the new run is its parent's child.
        assert sorted(await store.claim_workflow_tasks("me", ["child"], 10, 5.0)) == sorted(
            f"run-c-{name}" for name in policies)
        await runs.commit_workflow_task("run-c-abandon", "me", 1, [
            ev.WorkflowContinuedAsNew(seq=2, at=0, new_run_id="run-c-abandon-2", input=b"[]")])
        after = await store.get_run("c-abandon")
        assert (after.run_id, after.parent_run_id, after.parent_close_policy) == (
            "run-c-abandon-2", parent, "abandon")
        await runs.terminate("parent", "done")  # a close from outside applies the same policies
        assert (await store.get_run("c-terminate")).status == "terminated"
        assert (await history_types(store, "run-c-terminate"))[-1] == "WorkflowTerminated"
        assert (await store.get_run("c-abandon")).status == "running"
        assert (await store.get_run("c-default")).status == "running"
        # Only the default child was asked to cancel: its next step reads the request.
        assert await store.claim_workflow_tasks("me", ["child"], 10, 5.0) == ["run-c-abandon-2"]
        for run_id in ("run-c-abandon-2", "run-c-default"):
            await runs.commit_workflow_task(run_id, "me", await _last_seq(store, run_id), [
                ev.TimerStarted(seq=await _last_seq(store, run_id) + 1, at=0, duration=60.0)])
        assert "CancelRequested" in await history_types(store, "run-c-default")
        assert "CancelRequested" not in await history_types(store, "run-c-abandon-2")


async def _last_seq(store: Store, run_id: str) -> int:
    record, _ = await store.load(run_id, 0)
    return record.last_seq
