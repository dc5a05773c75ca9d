"""The rules of failures: a failed activity attempt, dead workers, a failed workflow task, a termination."""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import replace

from ...authoring._options import RetryPolicy
from ...history import events as ev
from ...history.failure import BlockedTask, Failure
from ...stores._plan import (
    Plan,
    RunState,
    TaskChange,
    TaskRetry,
    TaskState,
    renumber,
)
from ...stores._protocol import ActivityOutcome, ActivityTask
from ._core import CLOSING, MAX_BACKOFF, MAX_FAILED_BY, Decision, ParentClosed, _close, _close_from_outside, deliver


def attempt_failed(
    retry: RetryPolicy, attempt: int, failure: Failure, rng: random.Random, *, timeout_kind: str = "",
) -> ActivityOutcome:
    """How a failed attempt ends the activity, or not: retried after the policy's delay, failed, or timed out.

    A failure that is not retryable (its own flag, the policy's
    ``non_retryable_error_types``, or the last of ``max_attempts``) ends the
    activity; if the attempt ran out of time (``timeout_kind``), as a timeout.
    """
    delay: float | None = None
    if not failure.non_retryable and retry.retries_error(failure.type, attempt):
        delay = retry.delay(attempt, rng)
    if delay is None and timeout_kind:
        return ActivityOutcome("timed_out", failure=failure, timeout_kind=timeout_kind)
    return ActivityOutcome("failed", failure=failure, retry_delay=delay)


def workers_died(task: ActivityTask, tolerated: int) -> ActivityOutcome | None:
    """An activity whose marked attempts killed ``tolerated`` workers fails for good; None: run the attempt.

    A death counts only for an attempt that ran alone in its process under
    the stepping mark (one claimed after its previous holder's lease ran
    out), so an activity is never blamed for a worker killed by something
    else; whatever its retry policy (unlimited included), one that keeps
    killing its workers stops. An attempt numbered past the policy's
    ``max_attempts`` (its previous holder died) is still run.
    """
    if task.deaths < max(tolerated, 1):
        return None
    message = f"workers died {task.deaths} times while running this activity (attempt {task.attempt})"
    return ActivityOutcome("failed", failure=Failure(type="WorkerDied", message=message, non_retryable=True))


def activity_stepping_mark(row: TaskState | None, task: ActivityTask, owner: str) -> Plan | None:
    """Mark the attempt of a suspect activity ``owner`` is about to run; None if that attempt is no longer its.

    Suspect attempts (claimed after their holder's lease ran out) run alone
    in their process: if this worker dies before the outcome is recorded,
    the next claim counts that death against this task (and no other).
    """
    if (
        row is None or row.owner != owner or row.run_id != task.run_id
        or row.seq != task.seq or row.attempt != task.attempt
    ):
        return None
    return Plan(row.run_id, stepping_task=row.id)


def activity_outcome(
    row: TaskState | None, task: ActivityTask, owner: str, outcome: ActivityOutcome, now: float,
) -> tuple[Plan, ev.Event | None] | None:
    """An attempt's outcome: None if that attempt is no longer ``owner``'s (nothing is recorded).

    Returns the task's plan (a retry, or the task removed) and, for a final
    outcome, the event to deliver to the run. An attempt of a task whose
    cancellation the run waits for is final: never retried. A retry that would end past
    the schedule-to-close deadline times the activity out, with the
    attempt's failure as the cause.
    """
    if (
        row is None or row.owner != owner or row.run_id != task.run_id
        or row.seq != task.seq or row.attempt != task.attempt
    ):
        return None
    if outcome.kind == "failed" and outcome.retry_delay is not None and not row.cancel_requested:
        if row.deadline is None or now + outcome.retry_delay < row.deadline:
            return Plan(row.run_id, retry=TaskRetry(row.id, row.attempt + 1, now + outcome.retry_delay,
                                                     outcome.failure)), None
        outcome = ActivityOutcome("timed_out", failure=outcome.failure, timeout_kind="schedule_to_close")
    event = outcome.event(seq=0, at=now, scheduled=row.seq, attempt=row.attempt)
    return Plan(row.run_id, drop_tasks=[row.id]), event


def workflow_task_failed(
    run: RunState, owner: str, failure: Failure, delay: float, max_attempts: int, now: float, *,
    final: bool = False, block: bool = False, fingerprint: str | None = None, open_children: Collection[str] = (),
) -> Decision | None:
    """A workflow task that failed (``run`` read with its inbox); None if ``owner`` no longer holds it.

    The task is handed back and retried after ``delay``, doubling per
    failed attempt (at most 60 s), and the run is *blocked*: the task keeps
    the failure (with its attempt count, since when, the next retry and the
    code ``fingerprint`` it failed on) until an attempt succeeds. With
    ``block`` that goes on until then (the code is fixed or rolled back);
    otherwise the run fails at ``max_attempts`` failed attempts. ``final``
    fails it at once.
    """
    task = run.task
    if task is None or task.owner != owner or not run.open:
        return None
    previous = task.failure
    attempts = (0 if previous is None else previous.attempts) + 1
    inbox = run.inbox or ()
    plan = Plan(run.run_id, expect_seq=run.last_seq, expect_owner=owner)
    # No step is in flight any more: what waited in the inbox joins the history.
    plan.events = renumber([item.event for item in inbox], run.last_seq + 1)
    if inbox:
        plan.inbox_taken = inbox[-1].id
    if not final and (block or attempts < max_attempts):
        backoff = min(delay * 2 ** min(attempts - 1, 16), MAX_BACKOFF)
        record = BlockedTask(failure=failure, attempts=attempts, since=now if previous is None else previous.since,
                             retry_at=now + backoff, fingerprint=fingerprint)
        failed_by = task.failed_by
        if fingerprint is not None:
            failed_by = (*(f for f in failed_by if f != fingerprint), fingerprint)[-MAX_FAILED_BY:]
        # Whoever takes the task next replays the run: signals may come again.
        plan.task = TaskChange("backoff", visible_at=now + backoff, failure=record, failed_by=failed_by,
                               add_signals=-CLOSING if task.signals >= CLOSING else 0)
        return Decision(plan)
    if not final:
        failure = replace(failure, message=f"workflow task failed {attempts} times: {failure.message}")
    failure = replace(failure, workflow_task=True)
    cmd = ev.WorkflowFailed(seq=run.last_seq + len(plan.events) + 1, at=now, failure=failure)
    plan.events.append(cmd)
    plan.task = TaskChange("done")
    decision = Decision(plan, closed=True, workflow_id=run.record.workflow_id)
    _close(run.record, run.parent_seq, cmd, now, open_children, plan, decision.deliveries)
    return decision




def stepping_mark(run: RunState | None, owner: str) -> Plan | None:
    """Mark the step of a suspect task that ``owner`` is about to run; None if ``owner`` no longer holds it.

    Written only for suspects (a previous holder's lease ran out), which run
    alone in their process: if this worker dies before the step commits,
    the next claim counts that death against this task (and no other).
    """
    task = run.task if run is not None else None
    if run is None or task is None or task.owner != owner or not run.open:
        return None
    return Plan(run.run_id, expect_owner=owner, task=TaskChange("stepping"))


def workers_died_in_steps(
    run: RunState, owner: str, tolerated: int, delay: float, now: float, *, block: bool,
    fingerprint: str | None = None, open_children: Collection[str] = (),
) -> Decision | None:
    """Quarantine a task whose marked steps killed ``tolerated`` workers; None: run its step.

    The run fails (``block=False``) or is blocked, with a ``WorkerDied``
    failure naming the count. A blocked task keeps all but one of its
    deaths: retried (after its backoff, or at once by other code), it runs
    alone under the stepping mark again, and one more death blocks it again.
    """
    task = run.task
    if task is None or task.owner != owner or not run.open or task.attempts < tolerated:
        return None
    failure = Failure(type="WorkerDied", message=f"workers died {task.attempts} times while running this workflow task",
                      non_retryable=True)
    decision = workflow_task_failed(run, owner, failure, delay, 1, now, final=not block, block=block,
                                    fingerprint=fingerprint, open_children=open_children)
    if decision is not None and decision.plan.task is not None and decision.plan.task.kind == "backoff":
        decision.plan.task = replace(decision.plan.task, attempts=tolerated - 1)
    return decision


def terminate(
    run: RunState | None, reason: str, now: float, *, open_children: Collection[str] = (),
) -> Decision | None:
    """Close a run at once, without running its code (``run`` read with its inbox); None if it is closed.

    Unlike a cancel, the run's code is not asked: ``WorkflowTerminated``
    closes it whoever holds its workflow task (that holder's commit is then
    refused). Inputs that waited in its inbox join the history before it.
    Its activity tasks and timers go with the close (a running attempt's
    outcome is refused); its parent is told the child failed, and its
    children are asked to cancel, as when a run fails.
    """
    if run is None or not run.open:
        return None
    return _close_from_outside(run, ev.WorkflowTerminated(seq=0, at=now, reason=reason), now, open_children)



def parent_closed(
    run: RunState | None, closed: ParentClosed, now: float, *, open_children: Collection[str] = (),
) -> Decision | None:
    """A child whose parent closed (``run`` read with its inbox): its parent-close policy decides; None: nothing.

    ``"request_cancel"`` (the default, and that of children started before
    the policy existed) gives it a cancel request; ``"terminate"`` closes it
    at once, as :func:`terminate` does (its own children follow their
    policies in turn); ``"abandon"`` leaves it running on its own (when it
    closes, its closed parent is not told).

    The policy is read from the child's run record (``RunRecord.parent_close_policy``,
    written when the child starts), not from the parent's history at its
    close: the close then reads only the runs it changes (no scan of a long
    history for ``ChildWorkflowStarted`` events), and a child that continued
    as new keeps its policy, though its new run has no ``ChildWorkflowStarted``
    in the parent's history.
    """
    if run is None or not run.open:
        return None
    policy = run.record.parent_close_policy or "request_cancel"
    if policy == "abandon":
        return None
    if policy == "terminate":
        return terminate(run, closed.reason, now, open_children=open_children)
    plan = deliver(run, ev.CancelRequested(seq=0, at=now, reason=closed.reason), now)
    return None if plan is None else Decision(plan)
