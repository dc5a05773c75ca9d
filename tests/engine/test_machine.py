"""The run state machine as a table of cases on hand-built states: no store, no engine, no clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from retold.engine import _machine as m
from retold.errors import ConflictError, IdempotencyError, LeaseLostError, RunFinishedError, SignalBufferFullError
from retold.history import events as ev
from retold.history.failure import BlockedTask, Failure
from retold.stores._plan import InboxItem, RunState, TaskChange, TaskState, WorkflowEntry, WorkflowTaskState
from retold.stores._protocol import ActivityOutcome, ActivityTask, RunRecord, StartRequest

NOW = 1000.0


def run(
    *, last: int = 3, status: str = "running", owner: str | None = "me", live: bool = True, attempts: int = 0,
    signals: int = 0, inbox: tuple[ev.Event, ...] = (), parent: tuple[str, int] | None = None, task: bool = True,
) -> RunState:
    record = RunRecord(run_id="r1", workflow_id="w1", workflow="flow", status=status,  # type: ignore[arg-type]
                       created_at=0.0, closed_at=None, last_seq=last, result=None, failure=None,
                       parent_run_id=parent[0] if parent else None, next_run_id=None)
    return RunState(
        record, parent[1] if parent else None,
        WorkflowTaskState(owner, live, attempts, signals) if task else None,
        tuple(InboxItem(i + 1, e) for i, e in enumerate(inbox)),
    )


def signal(name: str = "s") -> ev.SignalReceived:
    return ev.SignalReceived(seq=0, at=NOW, name=name, input=b"1")


def scheduled(seq: int, **options: Any) -> ev.ActivityScheduled:
    return ev.ActivityScheduled(seq=seq, at=0.0, activity="a", input=b"[]", options=options)


# -- a step's commands -----------------------------------------------------------------------


def test_commands_are_appended_with_their_effects_and_the_task_is_done() -> None:
    commands = [scheduled(4, schedule_to_close=30.0, task_queue="q"), ev.TimerStarted(seq=5, at=0, duration=60.0),
                ev.TimerCancelled(seq=6, at=0, started=2), ev.ActivityCancelRequested(seq=7, at=0, scheduled=1)]
    d = m.commit(run(), "me", 3, commands, NOW)
    p = d.plan
    assert (p.expect_seq, p.expect_owner, p.last_seq) == (3, "me", 7)
    assert [(a.seq, a.queue, a.deadline, a.owner) for a in p.activities] == [(4, "q", NOW + 30.0, None)]
    assert (p.timers, p.drop_timers, p.drop_activities) == ([(5, NOW + 60.0)], [2], [1])
    assert p.task == TaskChange("done")
    assert p.close is None
    assert not d.deliveries


def test_inputs_that_waited_follow_the_commands_and_the_task_stays_with_its_owner() -> None:
    d = m.commit(run(inbox=(signal(), ev.CancelRequested(seq=0, at=NOW))), "me", 3, [scheduled(4)], NOW)
    assert [(e.seq, e.type) for e in d.plan.events] == [(4, "ActivityScheduled"), (5, "SignalReceived"),
                                                        (6, "CancelRequested")]
    assert d.plan.task == TaskChange("keep", signals=1)
    assert d.plan.inbox_taken == 2


def test_a_closing_step_over_waiting_inputs_is_refused_and_records_them() -> None:
    d = m.commit(run(inbox=(signal(),)), "me", 3, [ev.WorkflowCompleted(seq=4, at=0, result=b"1")], NOW)
    assert d.refused
    assert [(e.seq, e.type) for e in d.plan.events] == [(4, "SignalReceived")]
    assert d.plan.close is None
    # The run decides again having seen them; signals are refused until it has (else it may never close).
    assert d.plan.task == TaskChange("none", add_signals=m.CLOSING)


def test_a_run_deciding_again_whether_to_close_refuses_signals_until_its_next_step() -> None:
    closing = run(signals=m.CLOSING + 1)
    with pytest.raises(SignalBufferFullError, match="deciding again whether to close") as caught:
        m.deliver(closing, signal(), NOW, max_signals=10_000)
    assert caught.value.closing
    # Other inputs still wait in the inbox; a refused close again does not add CLOSING twice.
    cancel = m.deliver(closing, ev.CancelRequested(seq=0, at=NOW), NOW, max_signals=10_000)
    assert cancel is not None
    assert cancel.inbox
    again = m.commit(run(signals=m.CLOSING, inbox=(ev.CancelRequested(seq=0, at=NOW),)), "me", 3,
                     [ev.WorkflowCompleted(seq=4, at=0, result=b"1")], NOW)
    assert again.refused
    assert again.plan.task is None
    # Its next step sets the count afresh (or ends the task): signals are taken again.
    assert m.commit(closing, "me", 3, [scheduled(4)], NOW).plan.task == TaskChange("done")
    assert m.commit(closing, "me", 3, [ev.WorkflowCompleted(seq=4, at=0, result=b"1")], NOW).closed
    # A holder letting go, or a failed task handed back: whoever takes it next replays; signals come again.
    released = m.release(closing)
    assert released is not None
    assert released.task == TaskChange("none", add_signals=-m.CLOSING)
    failed = m.workflow_task_failed(closing, "me", FAILURE, 1.0, 3, NOW)
    assert failed is not None
    assert failed.plan.task is not None
    assert failed.plan.task.add_signals == -m.CLOSING
    assert m.release(run()) is None


@pytest.mark.parametrize(("state", "error"), [
    (run(owner="other"), LeaseLostError), (run(task=False), LeaseLostError),
    (run(last=4), ConflictError), (run(status="completed"), ConflictError),
])
def test_a_stale_step_is_refused(state: RunState, error: type[Exception]) -> None:
    with pytest.raises(error):
        m.commit(state, "me", 3, [scheduled(4)], NOW)


def test_a_run_closes_tells_its_parent_and_its_children() -> None:
    lookups = m.Lookups(children=("c1", "c2"))
    failed = ev.WorkflowFailed(seq=4, at=0, failure=Failure(type="", message="x"))
    d = m.commit(run(parent=("p1", 7)), "me", 3, [failed], NOW, lookups=lookups)
    assert d.closed
    assert d.plan.close is not None
    assert d.plan.close.status == "failed"
    targets = [(target, type(e).__name__) for target, e in d.deliveries]
    assert targets == [("c1", "ParentClosed"), ("c2", "ParentClosed"), ("p1", "ChildWorkflowFailed")]
    outcome = d.deliveries[-1][1]
    assert isinstance(outcome, ev.ChildWorkflowFailed)
    assert outcome.started == 7
    assert not outcome.cancelled


def test_continue_as_new_opens_the_next_run_and_tells_no_one() -> None:
    cmd = ev.WorkflowContinuedAsNew(seq=4, at=0, new_run_id="r2", input=b"[1]")
    d = m.commit(run(parent=("p1", 7)), "me", 3, [cmd], NOW, lookups=m.Lookups(children=("c1",)))
    [new] = d.plan.runs
    assert (new.run_id, new.entry, new.parent_run_id, new.parent_seq) == ("r2", "current", "p1", 7)
    started = new.events[0]
    assert isinstance(started, ev.WorkflowStarted)
    assert started.continued_from == "r1"
    assert d.plan.close is not None
    assert d.plan.close.next_run_id == "r2"
    assert not d.deliveries


def test_a_child_whose_id_is_taken_fails_at_once_in_the_parent() -> None:
    child = ev.ChildWorkflowStarted(seq=4, at=0, workflow="kid", workflow_id="k", run_id="kr", input=b"[]")
    d = m.commit(run(), "me", 3, [child], NOW, lookups=m.Lookups(taken=frozenset({"k"})))
    assert not d.plan.runs
    assert [e.type for e in d.plan.events] == ["ChildWorkflowStarted", "ChildWorkflowFailed"]
    assert d.plan.task == TaskChange("keep")  # the owner goes on with the failure


def test_a_signal_to_another_workflow_is_delivered_and_resolved_in_the_same_step() -> None:
    cmds = [ev.ExternalSignalRequested(seq=4, at=0, workflow_id="t", name="n", input=b"1"),
            ev.ExternalSignalRequested(seq=5, at=0, workflow_id="gone", name="n", input=b"1")]
    target = run(owner=None)
    closed = run(status="completed")
    d = m.commit(run(), "me", 3, cmds, NOW, lookups=m.Lookups(targets={"t": target, "gone": closed}))
    assert [(t, type(e).__name__) for t, e in d.deliveries] == [("r1", "SignalReceived")]
    resolved = [e for e in d.plan.events if isinstance(e, ev.ExternalSignalResolved)]
    assert [(e.requested, e.failure is None) for e in resolved] == [(4, True), (5, False)]


def test_activities_come_leased_to_the_engine_that_has_slots_for_them() -> None:
    take = m.ActivityTake("me", 5.0, frozenset({"a"}), {"default": 1})
    d = m.commit(run(), "me", 3, [scheduled(4), scheduled(5)], NOW, take=take)
    assert [(a.seq, a.owner) for a in d.plan.activities] == [(4, "me"), (5, None)]
    assert [a.seq for a in d.leased] == [4]
    assert take.slots == {"default": 1}


# -- inputs ---------------------------------------------------------------------------------------


def test_an_input_joins_the_history_of_an_idle_run_and_wakes_it() -> None:
    p = m.deliver(run(owner=None), signal(), NOW)
    assert p is not None
    assert [(e.seq, e.type) for e in p.events] == [(4, "SignalReceived")]
    assert p.task == TaskChange("wake", add_signals=1)
    assert p.expect_seq == 3


def test_an_input_waits_in_the_inbox_while_a_step_is_in_flight() -> None:
    p = m.deliver(run(), ev.CancelRequested(seq=0, at=NOW), NOW)
    assert p is not None
    assert not p.events
    assert [e.type for e in p.inbox] == ["CancelRequested"]


def test_an_input_for_a_run_whose_holder_died_is_recorded_at_once_unless_others_wait() -> None:
    lapsed = m.deliver(run(live=False), signal(), NOW)
    assert lapsed is not None
    assert lapsed.events
    assert not lapsed.inbox
    queued = m.deliver(run(live=False, inbox=(signal(),)), signal(), NOW)
    assert queued is not None
    assert queued.inbox
    assert not queued.events


def test_an_input_needs_the_inbox_read_only_when_the_holder_lease_ran_out() -> None:
    # Read for every signal, a long inbox made a flood quadratic: only a lapsed holder's run needs it.
    assert not m.inbox_needed(run())
    assert not m.inbox_needed(run(owner=None))
    assert not m.inbox_needed(run(task=False))
    assert not m.inbox_needed(None)
    assert m.inbox_needed(run(live=False))
    unread = replace(run(inbox=(signal(),)), inbox=None)
    waiting = m.deliver(unread, signal(), NOW)
    assert waiting is not None
    assert waiting.inbox


def test_a_closed_run_takes_no_input_and_a_full_buffer_no_signal() -> None:
    assert m.deliver(run(status="failed"), signal(), NOW) is None
    assert m.deliver(None, signal(), NOW) is None
    with pytest.raises(SignalBufferFullError):
        m.deliver(run(signals=5), signal(), NOW, max_signals=5)
    assert m.deliver(run(signals=5), ev.CancelRequested(seq=0, at=NOW), NOW, max_signals=5) is not None


# -- activity outcomes ----------------------------------------------------------------------------


def task_row(*, owner: str | None = "me", attempt: int = 1, deadline: float | None = None) -> TaskState:
    return TaskState(id=9, run_id="r1", workflow_id="w1", seq=4, activity="a", queue="q", input=b"[]", options={},
                     attempt=attempt, scheduled_at=0.0, deadline=deadline, owner=owner, last_failure=None)


CLAIMED = ActivityTask(id=9, run_id="r1", workflow_id="w1", seq=4, activity="a", queue="q", input=b"[]",
                       options={}, attempt=1, scheduled_at=0.0)
FAILED = ActivityOutcome("failed", failure=Failure(type="E", message="m"), retry_delay=10.0)


@pytest.mark.parametrize("row", [None, task_row(owner="other"), task_row(attempt=2)])
def test_an_outcome_of_an_attempt_no_longer_held_records_nothing(row: TaskState | None) -> None:
    assert m.activity_outcome(row, CLAIMED, "me", ActivityOutcome("completed", result=b"1"), NOW) is None


def test_a_retry_is_scheduled_or_times_out_at_the_deadline() -> None:
    found = m.activity_outcome(task_row(), CLAIMED, "me", FAILED, NOW)
    assert found is not None
    assert found[1] is None
    assert found[0].retry is not None
    assert (found[0].retry.attempt, found[0].retry.visible_at) == (2, NOW + 10.0)
    late = m.activity_outcome(task_row(deadline=NOW + 5.0), CLAIMED, "me", FAILED, NOW)
    assert late is not None
    assert isinstance(late[1], ev.ActivityTimedOut)
    assert late[1].failure == FAILED.failure
    assert late[0].drop_tasks == [9]


def test_a_step_run_ahead_commits_only_if_the_run_has_not_moved_and_nobody_holds_it() -> None:
    event = ev.ActivityCompleted(seq=4, at=NOW, scheduled=4, attempt=1, result=b"1")
    step = m.ActivityStep("r1", 3, event, [ev.WorkflowCompleted(seq=5, at=0, result=b"2")])
    assert m.stepped(run(owner="someone"), step, task_row(), NOW) is None
    assert m.stepped(run(owner=None, last=4), step, task_row(), NOW) is None
    d = m.stepped(run(owner=None), step, task_row(), NOW)
    assert d is not None
    assert d.closed
    assert d.plan.keep_first_at
    assert d.plan.task == TaskChange("done")


# -- failed workflow tasks, starts ----------------------------------------------------------------


def failed_task(attempts: int, *, since: float = NOW - 50, failed_by: tuple[str, ...] = ()) -> RunState:
    """A run whose workflow task (held by "me") has failed ``attempts`` times already."""
    state = run()
    assert state.task is not None
    failure = (BlockedTask(failure=Failure(type="E", message="boom"), attempts=attempts, since=since, retry_at=since)
               if attempts else None)
    return replace(state, task=replace(state.task, failure=failure, failed_by=failed_by))


FAILURE = Failure(type="E", message="boom")


def test_a_failed_workflow_task_backs_off_then_fails_the_run() -> None:
    first = m.workflow_task_failed(run(attempts=0, inbox=(signal(),)), "me", FAILURE, 1.0, 3, NOW)
    assert first is not None
    assert not first.closed
    assert first.plan.task == TaskChange("backoff", visible_at=NOW + 1.0, failure=BlockedTask(
        failure=FAILURE, attempts=1, since=NOW, retry_at=NOW + 1.0))
    assert [e.type for e in first.plan.events] == ["SignalReceived"]  # no step in flight any more
    third = m.workflow_task_failed(failed_task(2), "me", FAILURE, 1.0, 3, NOW)
    assert third is not None
    assert third.closed
    assert third.plan.close is not None
    assert third.plan.close.failure is not None
    assert third.plan.close.failure.workflow_task is True
    assert "failed 3 times" in third.plan.close.failure.message
    assert m.workflow_task_failed(run(owner="other"), "me", FAILURE, 1.0, 3, NOW) is None


def test_dead_workers_do_not_count_as_failed_attempts() -> None:
    # attempts (deaths, counted at claim) are the quarantine's; failures count on their own.
    d = m.workflow_task_failed(run(attempts=4), "me", FAILURE, 1.0, 3, NOW)
    assert d is not None
    assert not d.closed


@pytest.mark.parametrize(("before", "backoff"), [(0, 1.0), (1, 2.0), (5, 32.0), (6, 60.0), (10_000, 60.0)])
def test_a_blocked_run_stays_open_its_task_retried_with_capped_backoff(before: int, backoff: float) -> None:
    d = m.workflow_task_failed(failed_task(before), "me", FAILURE, 1.0, 3, NOW, block=True, fingerprint="f1")
    assert d is not None
    assert not d.closed
    assert d.plan.close is None
    assert d.plan.task == TaskChange("backoff", visible_at=NOW + backoff, failed_by=("f1",), failure=BlockedTask(
        failure=FAILURE, attempts=before + 1, since=NOW - 50 if before else NOW, retry_at=NOW + backoff,
        fingerprint="f1"))


def test_a_blocked_task_remembers_the_code_it_failed_on_most_recent_last() -> None:
    earlier = tuple(f"f{i}" for i in range(m.MAX_FAILED_BY))
    d = m.workflow_task_failed(failed_task(9, failed_by=earlier), "me", FAILURE, 1.0, 3, NOW, block=True,
                               fingerprint="f2")
    assert d is not None
    assert d.plan.task is not None
    assert d.plan.task.failed_by == (*(f for f in earlier if f != "f2"), "f2")
    d = m.workflow_task_failed(failed_task(1, failed_by=("a", "b")), "me", FAILURE, 1.0, 3, NOW, block=True)
    assert d is not None
    assert d.plan.task is not None
    assert d.plan.task.failed_by == ("a", "b")  # no fingerprint: nothing to add
    assert d.plan.task.failure is not None
    assert d.plan.task.failure.fingerprint is None
    assert "fingerprint" not in d.plan.task.failure.to_json()


def test_a_quarantined_task_fails_the_run_even_when_blocking() -> None:
    d = m.workflow_task_failed(run(), "me", FAILURE, 1.0, 3, NOW, final=True, block=True)
    assert d is not None
    assert d.closed
    assert d.plan.close is not None
    assert d.plan.close.failure == replace(FAILURE, workflow_task=True)


# -- terminate -------------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", [None, "someone"])
def test_terminate_closes_the_run_at_once_whoever_holds_its_task(owner: str | None) -> None:
    d = m.terminate(run(owner=owner, inbox=(signal(),)), "stuck", NOW)
    assert d is not None
    assert d.closed
    p = d.plan
    assert (p.expect_seq, p.expect_owner) == (3, None)
    assert [(e.seq, e.type) for e in p.events] == [(4, "SignalReceived"), (5, "WorkflowTerminated")]
    terminated = p.events[-1]
    assert isinstance(terminated, ev.WorkflowTerminated)
    assert terminated.reason == "stuck"
    assert p.inbox_taken == 1
    assert p.task == TaskChange("done")
    assert p.close is not None
    assert p.close.status == "terminated"
    assert p.close.failure is not None
    assert (p.close.failure.type, p.close.failure.message) == (
        "retold.WorkflowTerminatedError", "the run was terminated: stuck")


def test_terminate_tells_the_parent_and_the_children() -> None:
    d = m.terminate(run(parent=("p1", 7)), "", NOW, open_children=("c1",))
    assert d is not None
    assert [(target, type(e).__name__) for target, e in d.deliveries] == [("c1", "ParentClosed"),
                                                                          ("p1", "ChildWorkflowFailed")]
    told = d.deliveries[-1][1]
    assert isinstance(told, ev.ChildWorkflowFailed)
    assert (told.started, told.cancelled, told.failure.message) == (7, False, "the run was terminated")


@pytest.mark.parametrize("state", [None, run(status="completed"), run(status="terminated")])
def test_a_closed_run_is_not_terminated(state: RunState | None) -> None:
    assert m.terminate(state, "late", NOW) is None


def test_a_start_finds_its_run_or_refuses_a_mismatch() -> None:
    request = StartRequest("flow", "w1", b"[]", "h1", idempotency_key="k")
    entry = WorkflowEntry("w1", "flow", "h1", "k", "r1", "r1")
    assert m.existing(request, entry) == "r1"
    with pytest.raises(IdempotencyError, match="different input"):
        m.existing(StartRequest("flow", "w1", b"[2]", "h2"), entry)
    with pytest.raises(IdempotencyError, match="workflow 'flow', not 'other'"):
        m.existing(StartRequest("other", "w1", b"[]", "h1"), entry)
    d = m.start(request, NOW)
    [new] = d.plan.runs
    assert (new.entry, new.wake, new.idempotency_key, [e.type for e in new.events]) == (
        "new", True, "k", ["WorkflowStarted"])


def test_a_failed_attempt_is_retried_by_its_policy_or_ends_the_activity() -> None:
    import random
    from datetime import timedelta

    from retold.authoring._options import RetryPolicy

    policy = RetryPolicy(initial_interval=timedelta(seconds=2), jitter=0.0, max_attempts=3,
                         non_retryable_error_types=("ValueError",))
    rng = random.Random(1)
    boom = Failure(type="RuntimeError", message="boom")
    assert m.attempt_failed(policy, 1, boom, rng).retry_delay == 2.0
    assert m.attempt_failed(policy, 3, boom, rng) == ActivityOutcome("failed", failure=boom)  # the last attempt
    bad = Failure(type="builtins.ValueError", message="no")
    assert m.attempt_failed(policy, 1, bad, rng).retry_delay is None  # listed as not retryable
    flagged = replace(boom, non_retryable=True)
    assert m.attempt_failed(policy, 1, flagged, rng).retry_delay is None
    late = m.attempt_failed(policy, 3, boom, rng, timeout_kind="start_to_close")
    assert (late.kind, late.timeout_kind, late.failure) == ("timed_out", "start_to_close", boom)


def attempt(attempt: int, deaths: int, *, suspect: bool = True) -> ActivityTask:
    return ActivityTask(id=7, run_id="r1", workflow_id="w1", seq=4, activity="a", queue="q", input=b"[]",
                        options={}, attempt=attempt, scheduled_at=0.0, suspect=suspect, deaths=deaths)


def test_an_activity_fails_once_its_marked_attempts_killed_enough_workers() -> None:
    assert m.workers_died(attempt(9, 0), 3) is None  # lapses without a marked attempt blame nobody
    assert m.workers_died(attempt(9, 2), 3) is None  # two deaths of three tolerated
    died = m.workers_died(attempt(10, 3), 3)
    assert died is not None
    assert died.failure is not None
    assert died.failure.type == "WorkerDied"
    assert died.failure.non_retryable
    assert "died 3 times while running this activity (attempt 10)" in died.failure.message


def test_only_the_holder_of_an_attempt_marks_it() -> None:
    row = TaskState(id=7, run_id="r1", workflow_id="w1", seq=4, activity="a", queue="q", input=b"[]", options={},
                    attempt=3, scheduled_at=0.0, deadline=None, owner="me", last_failure=None)
    plan = m.activity_stepping_mark(row, attempt(3, 0), "me")
    assert plan is not None
    assert (plan.run_id, plan.stepping_task, plan.events, plan.task) == ("r1", 7, [], None)
    assert m.activity_stepping_mark(row, attempt(3, 0), "other") is None
    assert m.activity_stepping_mark(row, attempt(2, 0), "me") is None  # an older attempt
    assert m.activity_stepping_mark(None, attempt(3, 0), "me") is None  # gone


def test_only_the_holder_of_a_workflow_task_marks_its_step() -> None:
    plan = m.stepping_mark(run(), "me")
    assert plan is not None
    assert (plan.expect_owner, plan.task, plan.events) == ("me", TaskChange("stepping"), [])
    assert m.stepping_mark(run(owner="other"), "me") is None
    assert m.stepping_mark(run(status="completed"), "me") is None
    assert m.stepping_mark(None, "me") is None


def test_a_task_that_killed_enough_workers_is_blocked_keeping_all_but_one_death() -> None:
    assert m.workers_died_in_steps(run(attempts=2), "me", 3, 1.0, NOW, block=True) is None
    assert m.workers_died_in_steps(run(attempts=3, owner="other"), "me", 3, 1.0, NOW, block=True) is None
    d = m.workers_died_in_steps(run(attempts=3), "me", 3, 1.0, NOW, block=True, fingerprint="f1")
    assert d is not None
    assert not d.closed
    assert d.plan.task is not None
    assert (d.plan.task.kind, d.plan.task.attempts, d.plan.task.failed_by) == ("backoff", 2, ("f1",))
    assert d.plan.task.failure is not None
    assert d.plan.task.failure.failure.type == "WorkerDied"
    assert d.plan.task.failure.failure.message == "workers died 3 times while running this workflow task"


def test_a_task_that_killed_enough_workers_fails_the_run_when_not_blocking() -> None:
    d = m.workers_died_in_steps(run(attempts=3), "me", 3, 1.0, NOW, block=False)
    assert d is not None
    assert d.closed
    assert d.plan.close is not None
    assert d.plan.close.failure is not None
    assert d.plan.close.failure.type == "WorkerDied"
    assert d.plan.close.failure.workflow_task


# -- signal-with-start ------------------------------------------------------------------


def test_signal_with_start_starts_a_new_run_with_the_signal_in_the_same_plan() -> None:
    request = StartRequest("flow", "w1", b"[1]", "h1")
    decision, created = m.signal_with_start(request, None, None, signal("add"), NOW, run_id="r9")
    assert created
    (new,) = decision.plan.runs
    assert (new.run_id, new.entry, new.wake) == ("r9", "new", True)
    assert [type(e) for e in new.events] == [ev.WorkflowStarted, ev.SignalReceived]
    assert [e.seq for e in new.events] == [1, 2]
    assert new.events[1].name == "add"  # type: ignore[attr-defined]


def test_signal_with_start_signals_an_open_run_whatever_its_input() -> None:
    entry = WorkflowEntry("w1", "flow", "h1", None, "r1", "r1")
    request = StartRequest("flow", "w1", b"[2]", "other input")
    decision, created = m.signal_with_start(request, entry, run(owner=None), signal("add"), NOW)
    assert not created
    assert decision.plan.runs == []
    assert [(type(e), e.seq) for e in decision.plan.events] == [(ev.SignalReceived, 4)]
    assert decision.plan.task == TaskChange("wake", add_signals=1)
    # A step in flight: the signal waits in the inbox, as any signal.
    held, _ = m.signal_with_start(request, entry, run(owner="me"), signal("add"), NOW)
    assert held.plan.events == []
    assert len(held.plan.inbox) == 1


def test_signal_with_start_refuses_a_closed_run_another_workflow_and_a_full_buffer() -> None:
    entry = WorkflowEntry("w1", "flow", "h1", None, "r1", "r1")
    request = StartRequest("flow", "w1", b"[1]", "h1")
    with pytest.raises(RunFinishedError, match="completed"):
        m.signal_with_start(request, entry, run(status="completed", task=False), signal(), NOW)
    with pytest.raises(IdempotencyError, match="already used by a run of workflow 'flow', not 'other'"):
        m.signal_with_start(StartRequest("other", "w1", b"[1]", "h1"), entry, run(), signal(), NOW)
    with pytest.raises(SignalBufferFullError):
        m.signal_with_start(request, entry, run(signals=2), signal(), NOW, max_signals=2)
    with pytest.raises(ConflictError):  # the record's run was purged meanwhile: read again
        m.signal_with_start(request, entry, None, signal(), NOW)


# -- id reuse policy ----------------------------------------------------------------------

_REUSE_CASES = [
    # (policy, closed status, a new run?)
    *((None, s, False) for s in ("completed", "failed", "cancelled", "terminated")),
    *(("allow_duplicate", s, True) for s in ("completed", "failed", "cancelled", "terminated")),
    ("allow_duplicate_failed_only", "completed", False),
    *(("allow_duplicate_failed_only", s, True) for s in ("failed", "cancelled", "terminated")),
    *(("reject_duplicate", s, False) for s in ("completed", "failed", "cancelled", "terminated")),
]


@pytest.mark.parametrize(("policy", "status", "new"), _REUSE_CASES)
def test_a_start_on_a_closed_run_follows_its_id_reuse_policy(policy: str | None, status: str, new: bool) -> None:
    entry = WorkflowEntry("w1", "flow", "h1", None, "r1", "r1")
    request = StartRequest("flow", "w1", b"[]", "h1", id_reuse_policy=policy)
    closed = run(status=status, task=False)
    if new:
        assert m.existing(request, entry, closed) is None
        d = m.start(request, NOW, run_id="r2", replaces="r1")
        [made] = d.plan.runs
        assert (made.entry, made.replaces, made.run_id) == ("reuse", "r1", "r2")
    elif policy is None:
        assert m.existing(request, entry, closed) == "r1"  # today's behaviour: the same input finds the run
    else:
        with pytest.raises(IdempotencyError, match=f"{policy!r} refuses a new run after a {status} one"):
            m.existing(request, entry, closed)


@pytest.mark.parametrize("policy", ["allow_duplicate", "allow_duplicate_failed_only", "reject_duplicate"])
def test_an_open_run_is_the_start_whatever_the_policy(policy: str) -> None:
    entry = WorkflowEntry("w1", "flow", "h1", None, "r1", "r1")
    assert m.existing(StartRequest("flow", "w1", b"[]", "h1", id_reuse_policy=policy), entry, run()) == "r1"
    with pytest.raises(IdempotencyError, match="different input"):
        m.existing(StartRequest("flow", "w1", b"[2]", "h2", id_reuse_policy=policy), entry, run())


def test_signal_with_start_starts_after_a_closed_run_if_the_policy_allows() -> None:
    entry = WorkflowEntry("w1", "flow", "h1", None, "r1", "r1")
    closed = run(status="failed", task=False)
    request = StartRequest("flow", "w1", b"[]", "h2", id_reuse_policy="allow_duplicate_failed_only")
    decision, created = m.signal_with_start(request, entry, closed, signal(), NOW, run_id="r2")
    assert created
    [made] = decision.plan.runs
    assert (made.entry, made.replaces, [e.type for e in made.events]) == (
        "reuse", "r1", ["WorkflowStarted", "SignalReceived"])
    with pytest.raises(IdempotencyError, match="refuses"):
        m.signal_with_start(StartRequest("flow", "w1", b"[]", "h2", id_reuse_policy="reject_duplicate"),
                            entry, closed, signal(), NOW)


# -- time limits ------------------------------------------------------------------------------


def test_a_start_with_time_limits_sets_store_timers_and_hides_a_delayed_task() -> None:
    request = StartRequest("flow", "w1", b"[]", "h1", run_timeout=5.0, execution_timeout=60.0, start_delay=2.0)
    d = m.start(request, NOW, run_id="r9")
    [new] = d.plan.runs
    assert new.events[0].timeouts == {"run_timeout": 5.0, "execution_deadline": NOW + 60}  # type: ignore[attr-defined]
    [later] = d.then
    assert later.run_id == "r9"
    assert sorted(later.timers) == [(m.EXECUTION_TIMEOUT_TIMER, NOW + 60), (m.RUN_TIMEOUT_TIMER, NOW + 5)]
    assert later.task == TaskChange("backoff", visible_at=NOW + 2)
    assert m.start(StartRequest("flow", "w1", b"[]", "h1"), NOW).then == []


def test_a_time_limit_closes_the_run_with_its_inbox_first() -> None:
    state = run(owner="me", inbox=(signal("late"),), parent=("p1", 7))
    d = m.timed_out(state, m.EXECUTION_TIMEOUT_TIMER, NOW, open_children=["c1"])
    assert d is not None
    assert [(e.type, e.seq) for e in d.plan.events] == [("SignalReceived", 4), ("WorkflowTimedOut", 5)]
    assert d.plan.events[-1].kind == "execution"  # type: ignore[attr-defined]
    assert d.plan.close is not None
    assert d.plan.close.status == "timed_out"
    assert d.plan.close.failure == m.timed_out_failure("execution")
    assert [(rid, type(e).__name__) for rid, e in d.deliveries] == [("c1", "ParentClosed"),
                                                                    ("p1", "ChildWorkflowFailed")]
    assert m.timed_out(run(status="completed"), m.RUN_TIMEOUT_TIMER, NOW) is None


def test_continue_as_new_carries_the_execution_deadline_and_restarts_the_run_timeout() -> None:
    limits = {"run_timeout": 5.0, "execution_deadline": 2000.0}
    cmd = ev.WorkflowContinuedAsNew(seq=4, at=NOW, new_run_id="r2", input=b"[]", timeouts=limits)
    d = m.commit(run(), "me", 3, [cmd], NOW)
    [new] = d.plan.runs
    assert new.events[0].timeouts == limits  # type: ignore[attr-defined]
    [later] = d.then
    assert (later.run_id, sorted(later.timers)) == ("r2", [(m.EXECUTION_TIMEOUT_TIMER, 2000.0),
                                                           (m.RUN_TIMEOUT_TIMER, NOW + 5)])


def test_a_child_gets_its_time_limits() -> None:
    cmd = ev.ChildWorkflowStarted(seq=4, at=NOW, workflow="kid", workflow_id="k1", run_id="c1", input=b"[]",
                                  limits={"run_timeout": 3.0, "start_delay": 1.0})
    d = m.commit(run(), "me", 3, [cmd], NOW)
    [new] = d.plan.runs
    assert new.events[0].timeouts == {"run_timeout": 3.0}  # type: ignore[attr-defined]
    [later] = d.then
    assert (later.run_id, later.timers, later.task) == ("c1", [(m.RUN_TIMEOUT_TIMER, NOW + 3)],
                                                         TaskChange("backoff", visible_at=NOW + 1))


# -- updates ------------------------------------------------------------------------------------------


def accepted() -> ev.UpdateAccepted:
    return ev.UpdateAccepted(seq=0, at=NOW, update_id="u1", name="add", input=b"[1]")


def test_an_accepted_update_joins_the_history_of_the_state_its_validator_saw_and_wakes_the_run() -> None:
    for state in (run(owner=None), run(task=False), run(live=False)):
        p = m.accept_update(state, accepted(), 3)
        assert p is not None
        assert [(e.seq, e.type) for e in p.events] == [(4, "UpdateAccepted")]
        assert (p.expect_seq, p.task, p.inbox) == (3, TaskChange("wake"), [])


@pytest.mark.parametrize("state", [
    run(owner=None, last=4),  # an event since the validator ran
    run(),  # a step in flight: it would move the run
    run(live=False, inbox=(signal(),)),  # inputs wait first
])
def test_an_update_is_refused_when_the_run_is_not_in_the_state_its_validator_saw(state: RunState) -> None:
    with pytest.raises(ConflictError):
        m.accept_update(state, accepted(), 3)


def test_an_update_to_a_closed_or_unknown_run_is_not_accepted() -> None:
    assert m.accept_update(run(status="completed", owner=None), accepted(), 3) is None
    assert m.accept_update(None, accepted(), 3) is None


# -- parent-close policies ------------------------------------------------------------------


def child(policy: str | None, **kwargs: Any) -> RunState:
    state = run(parent=("p1", 7), **kwargs)
    return replace(state, record=replace(state.record, parent_close_policy=policy))


@pytest.mark.parametrize("policy", [None, "request_cancel"])
def test_a_child_asked_by_default_is_asked_to_cancel_when_its_parent_closes(policy: str | None) -> None:
    d = m.parent_closed(child(policy, owner=None), m.ParentClosed("parent run p1 completed"), NOW)
    assert d is not None
    assert not d.closed
    assert [(e.type, getattr(e, "reason", None)) for e in d.plan.events] == [
        ("CancelRequested", "parent run p1 completed")]


def test_a_child_to_terminate_is_closed_at_once_and_its_own_children_told() -> None:
    d = m.parent_closed(child("terminate", owner="someone"), m.ParentClosed("parent run p1 failed"), NOW,
                        open_children=("g1",))
    assert d is not None
    assert d.closed
    assert d.plan.close is not None
    assert d.plan.close.status == "terminated"
    assert d.plan.close.failure is not None
    assert d.plan.close.failure.message == "the run was terminated: parent run p1 failed"
    assert [(rid, type(e).__name__) for rid, e in d.deliveries] == [("g1", "ParentClosed"),
                                                                    ("p1", "ChildWorkflowFailed")]


def test_an_abandoned_child_runs_on_and_a_closed_child_is_left_alone() -> None:
    assert m.parent_closed(child("abandon"), m.ParentClosed("parent run p1 completed"), NOW) is None
    assert m.parent_closed(child("terminate", status="completed"), m.ParentClosed("x"), NOW) is None
    assert m.parent_closed(None, m.ParentClosed("x"), NOW) is None


def test_a_child_keeps_its_policy_when_started_and_when_it_continues_as_new() -> None:
    start = ev.ChildWorkflowStarted(seq=4, at=0, workflow="kid", workflow_id="k1", run_id="c1", input=b"[]",
                                    parent_close_policy="abandon")
    d = m.commit(run(), "me", 3, [start], NOW)
    (new,) = d.plan.runs
    assert (new.parent_run_id, new.parent_close_policy) == ("r1", "abandon")
    again = ev.WorkflowContinuedAsNew(seq=4, at=0, new_run_id="c2", input=b"[]")
    d = m.commit(child("terminate"), "me", 3, [again], NOW)
    (follow,) = d.plan.runs
    assert (follow.parent_run_id, follow.parent_close_policy) == ("p1", "terminate")
