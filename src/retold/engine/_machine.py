"""The run state machine: every rule of what happens to a run, and nothing else.

Pure: no I/O, no clock (``now`` is an argument), no store. Each function
takes a run's state (:class:`~retold.stores._plan.RunState`) and one input
(a step's commands, an activity outcome, an input event, a failed workflow
task, a start, a termination) and returns a :class:`Decision`: the :class:`Plan` a store
applies atomically, plus the inputs it gives other runs (a parent told its
child closed, children asked to cancel), which are decided in turn against
those runs' states (:func:`deliver`) in the same transaction.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, final

from ..authoring import ID_REUSE_POLICIES
from ..authoring._options import RetryPolicy
from ..errors import (
    TERMINATED_TYPE,
    TIMED_OUT_TYPE,
    ConfigurationError,
    ConflictError,
    IdempotencyError,
    LeaseLostError,
    RunFinishedError,
    SignalBufferFullError,
    StoreError,
)
from ..history import events as ev
from ..stores._plan import (
    Close,
    NewActivity,
    NewRun,
    Plan,
    RunState,
    TaskChange,
    TaskRetry,
    TaskState,
    WorkflowEntry,
    renumber,
)
from ..stores._protocol import ActivityOutcome, ActivityTask, RunRecord, StartRequest

__all__ = [
    "EXECUTION_TIMEOUT_TIMER", "NO_LOOKUPS", "RUN_TIMEOUT_TIMER", "TIMEOUT_KINDS", "ActivityStep", "ActivityTake",
    "Decision", "Lookups", "StartStep", "activity_outcome", "attempt_failed", "commit", "deliver", "existing",
    "release", "signal_with_start", "start", "start_timeouts", "stepped", "terminate", "terminated_failure",
    "timed_out", "timed_out_failure", "timeout_timers", "workers_died", "workflow_task_failed",
]

_STATUS: dict[type[ev.Event], Literal["completed", "failed", "cancelled", "continued", "terminated", "timed_out"]] = {
    ev.WorkflowCompleted: "completed", ev.WorkflowFailed: "failed",
    ev.WorkflowCancelled: "cancelled", ev.WorkflowContinuedAsNew: "continued",
    ev.WorkflowTerminated: "terminated", ev.WorkflowTimedOut: "timed_out",
}
# The store timers of a run's time limits, by the "event number" they are kept under
# (real timers are numbered by their TimerStarted event, from 2 on).
RUN_TIMEOUT_TIMER = 0
EXECUTION_TIMEOUT_TIMER = -1
TIMEOUT_KINDS = {RUN_TIMEOUT_TIMER: "run", EXECUTION_TIMEOUT_TIMER: "execution"}
_CANCELLED = {"type": "CancelledError", "message": "the run was cancelled", "details": "", "non_retryable": True}
MAX_BACKOFF = 60.0
MAX_FAILED_BY = 8  # code fingerprints a blocked task remembers it failed on


@final
@dataclass(slots=True)
class ActivityTake:
    """Activity tasks a step may lease at once to the engine that ran it (the same-process fast path).

    Up to ``slots[queue]`` tasks of the hosted ``activities`` are leased to
    ``owner``; ``taken`` lists them once the step is committed.
    """

    owner: str
    lease: float
    activities: frozenset[str]
    slots: dict[str, int]
    taken: list[ActivityTask] = field(default_factory=list)


@final
@dataclass(slots=True)
class ActivityStep:
    """A run's next step, run ahead by the engine that ran the activity, committed with its outcome.

    Applied only if the run is still at ``expected_seq`` and no worker holds
    its workflow task; ``stepped`` says whether it was. Otherwise the outcome
    is recorded alone and the run's workflow task sees it.
    """

    run_id: str
    expected_seq: int
    event: ev.Event
    commands: Sequence[ev.Event]
    take: ActivityTake | None = None
    stepped: bool = False

    @property
    def last_seq(self) -> int:
        """The run's last event number once the step is committed."""
        return self.expected_seq + 1 + len(self.commands)


@final
@dataclass(slots=True)
class StartStep:
    """A new run's first step, run ahead by the engine that starts it (``stepped`` once stored)."""

    run_id: str
    event: ev.Event
    commands: Sequence[ev.Event]
    take: ActivityTake | None = None
    stepped: bool = False

    @property
    def last_seq(self) -> int:
        """The run's last event number once the step is committed."""
        return 1 + len(self.commands)


@final
@dataclass(frozen=True, slots=True)
class Lookups:
    """What a step's commands need read from records other than its run's.

    ``taken``: the new children's workflow ids already in use; ``children``:
    the run's open children (read when it closes); ``targets``: the runs that
    its signals go to, by workflow id (None: no such workflow id).
    """

    taken: frozenset[str] = frozenset()
    children: tuple[str, ...] = ()
    targets: Mapping[str, RunState | None] = field(default_factory=dict)


NO_LOOKUPS = Lookups()


@final
@dataclass(slots=True)
class Decision:
    """A plan, the inputs it gives other runs, and what the caller is told."""

    plan: Plan
    deliveries: list[tuple[str, ev.Event]] = field(default_factory=list)
    refused: bool = False  # a step that would close the run over inputs that waited (they are recorded instead)
    closed: bool = False  # the run closed
    leased: list[NewActivity] = field(default_factory=list)  # tasks leased to the step's engine
    workflow_id: str = ""  # the run's (for the tasks leased)
    then: list[Plan] = field(default_factory=list)  # plans for runs this one creates, applied after it


def _close(
    record: RunRecord, parent_seq: int | None, cmd: ev.Event, now: float, open_children: Collection[str],
    plan: Plan, deliveries: list[tuple[str, ev.Event]], then: list[Plan] | None = None,
) -> None:
    """The effects of a closing event: the run's record, a continuation, its children and its parent."""
    run_id = record.run_id
    status = _STATUS[type(cmd)]
    failure: dict[str, Any] | None = None
    if isinstance(cmd, ev.WorkflowFailed):
        failure = cmd.failure
    elif isinstance(cmd, ev.WorkflowCancelled):
        failure = dict(_CANCELLED)
    elif isinstance(cmd, ev.WorkflowTerminated):
        failure = terminated_failure(cmd.reason)
    elif isinstance(cmd, ev.WorkflowTimedOut):
        failure = timed_out_failure(cmd.kind)
    plan.close = Close(
        status, result=cmd.result if isinstance(cmd, ev.WorkflowCompleted) else None, failure=failure,
        next_run_id=cmd.new_run_id if isinstance(cmd, ev.WorkflowContinuedAsNew) else None,
    )
    if isinstance(cmd, ev.WorkflowContinuedAsNew):
        plan.runs.append(NewRun(
            run_id=cmd.new_run_id, workflow=record.workflow, workflow_id=record.workflow_id,
            events=[ev.WorkflowStarted(
                seq=1, at=now, workflow=record.workflow, workflow_id=record.workflow_id, input=cmd.input,
                parent_run_id=record.parent_run_id, parent_seq=parent_seq, continued_from=run_id,
                headers=cmd.headers, timeouts=cmd.timeouts)],
            parent_run_id=record.parent_run_id, parent_seq=parent_seq, entry="current",
        ))
        later = _limits_plan(cmd.new_run_id, cmd.timeouts, None, now)
        if later is not None and then is not None:
            then.append(later)
        return
    # Children do not outlive their parent: ask the open ones to cancel.
    for child in open_children:
        deliveries.append((child, ev.CancelRequested(seq=0, at=now, reason=f"parent run {run_id} {status}")))
    if record.parent_run_id is not None and parent_seq is not None:
        outcome: ev.Event
        if isinstance(cmd, ev.WorkflowCompleted):
            outcome = ev.ChildWorkflowCompleted(seq=0, at=now, started=parent_seq, result=cmd.result)
        else:
            outcome = ev.ChildWorkflowFailed(seq=0, at=now, started=parent_seq, failure=failure or {},
                                             cancelled=status == "cancelled")
        deliveries.append((record.parent_run_id, outcome))


def _effects(
    record: RunRecord, parent_seq: int | None, commands: Sequence[ev.Event], now: float,
    take: ActivityTake | None, lookups: Lookups, plan: Plan, decision: Decision,
) -> list[ev.Event]:
    """Add the commands' effects to ``plan``; return inputs the run gives itself (a child refused)."""
    own: list[ev.Event] = []
    slots = dict(take.slots) if take is not None else {}
    for cmd in commands:
        match cmd:
            case ev.ActivityScheduled():
                stc = cmd.options.get("schedule_to_close")
                queue = cmd.options.get("task_queue", "default")
                task = NewActivity(cmd.seq, cmd.activity, queue, cmd.input, dict(cmd.options),
                                   deadline=None if stc is None else now + stc)
                if take is not None and slots.get(queue, 0) > 0 and cmd.activity in take.activities:
                    slots[queue] -= 1
                    task.owner, task.lease = take.owner, take.lease
                    decision.leased.append(task)
                plan.activities.append(task)
            case ev.TimerStarted():
                plan.timers.append((cmd.seq, now + cmd.duration))
            case ev.TimerCancelled():
                plan.drop_timers.append(cmd.started)
            case ev.ChildWorkflowStarted():
                if cmd.workflow_id in lookups.taken:
                    failure = {"type": "retold.IdempotencyError", "non_retryable": True, "details": "",
                               "message": f"workflow id {cmd.workflow_id!r} is already in use"}
                    own.append(ev.ChildWorkflowFailed(seq=0, at=now, started=cmd.seq, failure=failure))
                else:
                    limits = cmd.limits or {}
                    timeouts = _timeouts(limits.get("run_timeout"), limits.get("execution_timeout"), now)
                    plan.runs.append(NewRun(
                        run_id=cmd.run_id, workflow=cmd.workflow, workflow_id=cmd.workflow_id,
                        events=[ev.WorkflowStarted(seq=1, at=now, workflow=cmd.workflow,
                                                   workflow_id=cmd.workflow_id, input=cmd.input,
                                                   parent_run_id=record.run_id, parent_seq=cmd.seq,
                                                   headers=cmd.headers, timeouts=timeouts)],
                        parent_run_id=record.run_id, parent_seq=cmd.seq,
                    ))
                    later = _limits_plan(cmd.run_id, timeouts, limits.get("start_delay"), now)
                    if later is not None:
                        decision.then.append(later)
            case ev.ActivityCancelRequested():
                # Withdrawn: never claimed again; a running attempt's worker finds
                # its task gone (lease renewal) and stops it, its outcome refused.
                plan.drop_activities.append(cmd.scheduled)
            case ev.ExternalSignalRequested():
                # Delivered in this transaction; the sender learns at once
                # whether its target took it (an input after its commands).
                target = lookups.targets.get(cmd.workflow_id)
                refused: dict[str, Any] | None = None
                if target is None:
                    refused = {"type": "retold.RunNotFoundError", "non_retryable": True, "details": "",
                               "message": f"no run found for workflow id {cmd.workflow_id!r}"}
                elif not target.open:
                    refused = {"type": "retold.RunFinishedError", "non_retryable": True, "details": "",
                               "message": f"run {target.run_id} of workflow id {cmd.workflow_id!r} is "
                                          f"{target.record.status}: it takes no more signals"}
                else:
                    decision.deliveries.append((target.run_id, ev.SignalReceived(
                        seq=0, at=now, name=cmd.name, input=cmd.input)))
                own.append(ev.ExternalSignalResolved(seq=0, at=now, requested=cmd.seq, failure=refused))
            case ev.ChildWorkflowCancelRequested():
                decision.deliveries.append((cmd.run_id, ev.CancelRequested(
                    seq=0, at=now, reason=f"cancelled by its parent run {record.run_id}")))
            case _ if isinstance(cmd, ev.TERMINAL_TYPES):
                _close(record, parent_seq, cmd, now, lookups.children, plan, decision.deliveries, decision.then)
                decision.closed = True
    return own


def _check_numbers(commands: Sequence[ev.Event], first: int, what: str) -> None:
    for i, cmd in enumerate(commands):
        if cmd.seq != first + i:
            raise StoreError(f"{what}: command {cmd.type} numbered {cmd.seq}, expected {first + i}")


def _signals(events: Sequence[ev.Event]) -> int:
    return sum(1 for e in events if type(e) is ev.SignalReceived)


def commit(
    run: RunState, owner: str, expected: int, commands: Sequence[ev.Event], now: float, *,
    take: ActivityTake | None = None, lookups: Lookups = NO_LOOKUPS,
) -> Decision:
    """A workflow task's commands (``run`` read with its inbox).

    Inputs that waited in the inbox follow the commands, and the task stays
    leased to ``owner``, who goes on with them. A step that would close the
    run while inputs wait is refused: they are recorded instead.
    """
    holder = run.task.owner if run.task is not None else None
    if holder != owner:
        raise LeaseLostError(run.run_id, owner, holder)
    if not run.open or run.last_seq != expected:
        raise ConflictError(run.run_id, expected)
    _check_numbers(commands, expected + 1, f"run {run.run_id}")
    inbox = run.inbox or ()
    waiting = [item.event for item in inbox]
    plan = Plan(run.run_id, expect_seq=expected, expect_owner=owner)
    if inbox:
        plan.inbox_taken = inbox[-1].id
    if waiting and any(isinstance(cmd, ev.TERMINAL_TYPES) for cmd in commands):
        plan.events = renumber(waiting, expected + 1)
        return Decision(plan, refused=True)
    decision = Decision(plan, workflow_id=run.record.workflow_id)
    own = _effects(run.record, run.parent_seq, commands, now, take, lookups, plan, decision)
    moved = [*waiting, *own]
    plan.events = [*commands, *renumber(moved, expected + 1 + len(commands))]
    # Inputs came in during the step (or the step gave the run one): the task
    # stays with this owner, who processes them next; its attempts were not fatal.
    plan.task = TaskChange("keep", signals=_signals(waiting)) if moved else TaskChange("done")
    return decision


def deliver(run: RunState | None, event: ev.Event, now: float, *, max_signals: int | None = None) -> Plan | None:
    """An input for a run (``run`` read with its inbox); None if the run is closed (or unknown).

    While a step of the run is in flight (its workflow task is leased) the
    input waits in the inbox, and that step's commit appends it; so inputs
    at any rate never invalidate the step. Otherwise it joins the history at
    once and wakes the run. With ``max_signals``, a signal over that many
    unseen ones raises SignalBufferFullError.
    """
    if run is None or not run.open:
        return None
    task = run.task
    signal = 1 if type(event) is ev.SignalReceived else 0
    if signal and max_signals is not None and task is not None and task.signals + 1 > max_signals:
        raise SignalBufferFullError(run.run_id, max_signals)
    held = task is not None and task.owner is not None
    if held and task is not None and not task.live:
        # The holder's lease ran out (it died, or stalled): record at once,
        # unless inputs already wait in the inbox (order first).
        held = bool(run.inbox)
    if held:
        return Plan(run.run_id, inbox=[event], task=TaskChange("none", add_signals=signal))
    return Plan(run.run_id, expect_seq=run.last_seq, events=renumber([event], run.last_seq + 1),
                task=TaskChange("wake", add_signals=signal))


def attempt_failed(
    retry: RetryPolicy, attempt: int, failure: dict[str, Any], rng: random.Random, *, timeout_kind: str = "",
) -> ActivityOutcome:
    """How a failed attempt ends the activity, or not: retried after the policy's delay, failed, or timed out.

    A failure that is not retryable (its own flag, the policy's
    ``non_retryable_error_types``, or the last of ``max_attempts``) ends the
    activity; if the attempt ran out of time (``timeout_kind``), as a timeout.
    """
    delay: float | None = None
    if not failure.get("non_retryable") and retry.retries_error(failure["type"], attempt):
        delay = retry.delay(attempt, rng)
    if delay is None and timeout_kind:
        return ActivityOutcome("timed_out", failure=failure, timeout_kind=timeout_kind)
    return ActivityOutcome("failed", failure=failure, retry_delay=delay)


def workers_died(attempt: int, max_attempts: int, tolerated: int) -> ActivityOutcome | None:
    """An attempt numbered past the retry policy's last: the earlier ones killed their workers.

    Only a claim after a dead worker's lease ran out numbers an attempt past
    the policy's ``max_attempts``; ``tolerated`` such deaths are run again
    (at least once), then the activity fails for good. None: run the attempt.
    """
    if not max_attempts or attempt < max_attempts + tolerated:
        return None
    message = (f"workers died {attempt - max_attempts} times while running this activity "
               f"(attempt {attempt}, past its retry policy's max_attempts of {max_attempts})")
    return ActivityOutcome("failed", failure={"type": "WorkerDied", "message": message, "details": "",
                                              "non_retryable": True})


def activity_outcome(
    row: TaskState | None, task: ActivityTask, owner: str, outcome: ActivityOutcome, now: float,
) -> tuple[Plan, ev.Event | None] | None:
    """An attempt's outcome: None if that attempt is no longer ``owner``'s (nothing is recorded).

    Returns the task's plan (a retry, or the task removed) and, for a final
    outcome, the event to deliver to the run. A retry that would end past
    the schedule-to-close deadline times the activity out, with the
    attempt's failure as the cause.
    """
    if (
        row is None or row.owner != owner or row.run_id != task.run_id
        or row.seq != task.seq or row.attempt != task.attempt
    ):
        return None
    if outcome.kind == "failed" and outcome.retry_delay is not None:
        if row.deadline is None or now + outcome.retry_delay < row.deadline:
            return Plan(row.run_id, retry=TaskRetry(row.id, row.attempt + 1, now + outcome.retry_delay,
                                                     outcome.failure)), None
        outcome = ActivityOutcome("timed_out", failure=outcome.failure, timeout_kind="schedule_to_close")
    event = outcome.event(seq=0, at=now, scheduled=row.seq, attempt=row.attempt)
    return Plan(row.run_id, drop_tasks=[row.id]), event


def stepped(
    run: RunState | None, step: ActivityStep, row: TaskState, now: float, *,
    lookups: Lookups = NO_LOOKUPS,
) -> Decision | None:
    """The run's next step with the activity outcome that caused it; None if the run moved or is held."""
    if run is None or not run.open or run.last_seq != step.expected_seq:
        return None
    if run.task is not None and run.task.owner is not None:
        return None  # a worker is computing a step of this run: the outcome waits in its inbox
    event = step.event
    if event.seq != step.expected_seq + 1 or getattr(event, "scheduled", None) != row.seq:
        raise StoreError(f"activity step for run {step.run_id} is numbered wrongly")
    _check_numbers(step.commands, step.expected_seq + 2, f"activity step for run {step.run_id}")
    plan = Plan(run.run_id, expect_seq=step.expected_seq, keep_first_at=True)
    decision = Decision(plan, workflow_id=run.record.workflow_id)
    own = _effects(run.record, run.parent_seq, step.commands, now, step.take, lookups, plan, decision)
    plan.events = [event, *step.commands, *renumber(own, step.last_seq + 1)]
    # Every event is now seen: a pending workflow task (nobody holds it) is
    # spent; an input the step gave the run itself wakes it.
    plan.task = TaskChange("wake") if own else TaskChange("done")
    return decision


def workflow_task_failed(
    run: RunState, owner: str, failure: dict[str, Any], delay: float, max_attempts: int, now: float, *,
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
    previous = task.failure or {}
    attempts = int(previous.get("attempts", 0)) + 1
    inbox = run.inbox or ()
    plan = Plan(run.run_id, expect_seq=run.last_seq, expect_owner=owner)
    # No step is in flight any more: what waited in the inbox joins the history.
    plan.events = renumber([item.event for item in inbox], run.last_seq + 1)
    if inbox:
        plan.inbox_taken = inbox[-1].id
    if not final and (block or attempts < max_attempts):
        backoff = min(delay * 2 ** min(attempts - 1, 16), MAX_BACKOFF)
        record = {**failure, "attempts": attempts, "since": previous.get("since", now), "retry_at": now + backoff}
        failed_by = task.failed_by
        if fingerprint is not None:
            record["fingerprint"] = fingerprint
            failed_by = (*(f for f in failed_by if f != fingerprint), fingerprint)[-MAX_FAILED_BY:]
        plan.task = TaskChange("backoff", visible_at=now + backoff, failure=record, failed_by=failed_by)
        return Decision(plan)
    if not final:
        failure = {**failure, "message": f"workflow task failed {attempts} times: {failure['message']}"}
    failure = {**failure, "workflow_task": True}
    cmd = ev.WorkflowFailed(seq=run.last_seq + len(plan.events) + 1, at=now, failure=failure)
    plan.events.append(cmd)
    plan.task = TaskChange("done")
    decision = Decision(plan, closed=True)
    _close(run.record, run.parent_seq, cmd, now, open_children, plan, decision.deliveries)
    return decision


def terminated_failure(reason: str) -> dict[str, Any]:
    """The failure a terminated run records (and its parent is told)."""
    message = f"the run was terminated: {reason}" if reason else "the run was terminated"
    return {"type": TERMINATED_TYPE, "message": message, "details": "", "non_retryable": True}


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


def _close_from_outside(run: RunState, cmd: ev.Event, now: float, open_children: Collection[str]) -> Decision:
    """Close an open run with ``cmd`` (terminated, timed out) whoever holds its task; the inbox goes first."""
    inbox = run.inbox or ()
    plan = Plan(run.run_id, expect_seq=run.last_seq)
    plan.events = renumber([item.event for item in inbox], run.last_seq + 1)
    if inbox:
        plan.inbox_taken = inbox[-1].id
    cmd = replace(cmd, seq=run.last_seq + len(plan.events) + 1, at=now)
    plan.events.append(cmd)
    plan.task = TaskChange("done")
    decision = Decision(plan, closed=True)
    _close(run.record, run.parent_seq, cmd, now, open_children, plan, decision.deliveries)
    return decision


def timed_out_failure(kind: str) -> dict[str, Any]:
    """The failure a run closed by its time limit records (and its parent is told)."""
    return {"type": TIMED_OUT_TYPE, "message": f"the run timed out: its {kind} timeout passed", "details": "",
            "non_retryable": True}


def timeout_timers(timeouts: Mapping[str, float] | None, now: float) -> list[tuple[int, float]]:
    """The store timers that close a run started at ``now`` with these time limits."""
    if not timeouts:
        return []
    timers: list[tuple[int, float]] = []
    if timeouts.get("run_timeout") is not None:
        timers.append((RUN_TIMEOUT_TIMER, now + timeouts["run_timeout"]))
    if timeouts.get("execution_deadline") is not None:
        timers.append((EXECUTION_TIMEOUT_TIMER, timeouts["execution_deadline"]))
    return timers


def timed_out(
    run: RunState | None, timer: int, now: float, *, open_children: Collection[str] = (),
) -> Decision | None:
    """A run's time-limit timer fired (``run`` read with its inbox): it closes as timed out; None if closed.

    As a termination: the code is not run, ``WorkflowTimedOut`` (kind
    ``run`` or ``execution``) ends the history, its tasks and timers go, its
    parent sees the child fail and its children are asked to cancel.
    """
    if run is None or not run.open:
        return None
    return _close_from_outside(run, ev.WorkflowTimedOut(seq=0, at=now, kind=TIMEOUT_KINDS[timer]), now,
                               open_children)


def release(run: RunState) -> Plan | None:
    """A run whose task's holder is letting go: what waited in its inbox joins the history."""
    if not run.open or not run.inbox:
        return None
    plan = Plan(run.run_id, expect_seq=run.last_seq, events=renumber([i.event for i in run.inbox], run.last_seq + 1))
    plan.inbox_taken = run.inbox[-1].id
    return plan


_FAILED_ONLY = frozenset({"failed", "cancelled", "terminated", "timed_out"})


def start_timeouts(request: StartRequest, now: float) -> dict[str, float] | None:
    """The time limits a new run records in its WorkflowStarted (None: it has none)."""
    return _timeouts(request.run_timeout, request.execution_timeout, now)


def _timeouts(run_timeout: float | None, execution_timeout: float | None, now: float) -> dict[str, float] | None:
    timeouts: dict[str, float] = {}
    if run_timeout is not None:
        timeouts["run_timeout"] = run_timeout
    if execution_timeout is not None:
        timeouts["execution_deadline"] = now + execution_timeout
    return timeouts or None


def _limits_plan(run_id: str, timeouts: Mapping[str, float] | None, delay: float | None, now: float) -> Plan | None:
    """A new run's time limits as store timers and, for a delayed start, its first workflow task hidden until then."""
    limits = timeout_timers(timeouts, now)
    delayed = delay is not None and delay > 0
    if not (limits or delayed):
        return None
    later = Plan(run_id, timers=limits)
    if delay is not None and delayed:
        later.task = TaskChange("backoff", visible_at=now + delay)
    return later


def existing(request: StartRequest, entry: WorkflowEntry, current: RunState | None = None) -> str | None:
    """The run a start finds already there, or None: start a new run under the id (its id reuse policy).

    ``current`` is the id's current run (read when the request has a policy).
    With no policy (the default), or while the current run is open, or when
    the request's idempotency key found the record: the same workflow and
    input return the id's run, anything else raises IdempotencyError. Once
    the current run is closed, ``allow_duplicate`` starts a new run,
    ``allow_duplicate_failed_only`` too if the run failed, was cancelled,
    terminated or timed out (else IdempotencyError), and
    ``reject_duplicate`` raises IdempotencyError.
    """
    by_key = entry.idempotency_key is not None and entry.idempotency_key == request.idempotency_key
    what = f"idempotency key {request.idempotency_key!r}" if by_key else f"workflow id {entry.workflow_id!r}"
    policy = request.id_reuse_policy
    if policy is not None and policy not in ID_REUSE_POLICIES:
        raise ConfigurationError(f"id_reuse_policy must be one of {', '.join(ID_REUSE_POLICIES)}, not {policy!r}")
    if policy is not None and not by_key and current is not None and not current.open:
        status = current.record.status
        if policy == "allow_duplicate" or (policy == "allow_duplicate_failed_only" and status in _FAILED_ONLY):
            return None
        raise IdempotencyError(
            f"{what} is taken by run {current.run_id} ({status}), and the start's id_reuse_policy "
            f"{policy!r} refuses a new run after a {status} one")
    if entry.workflow != request.workflow:
        raise IdempotencyError(f"{what} is already used by a run of workflow {entry.workflow!r}, "
                               f"not {request.workflow!r}")
    if entry.input_hash != request.input_hash:
        raise IdempotencyError(f"{what} was already started with different input")
    return entry.first_run_id


def start(
    request: StartRequest, now: float, step: StartStep | None = None, *, lookups: Lookups = NO_LOOKUPS,
    run_id: str | None = None, replaces: str | None = None,
) -> Decision:
    """A new run (its id's record claimed), with its first step if the starting engine ran it ahead.

    Its run id is the step's, or ``run_id``, or a new random one. With
    ``replaces`` (the id's current run, closed), the id's record passes to
    the new run (see :func:`existing`).
    """
    run_id = step.run_id if step is not None else run_id or str(uuid.uuid4())
    new = NewRun(run_id=run_id, workflow=request.workflow, workflow_id=request.workflow_id, events=[],
                 input_hash=request.input_hash, idempotency_key=request.idempotency_key,
                 entry="new" if replaces is None else "reuse", replaces=replaces)
    plan = Plan(run_id, runs=[new])
    decision = Decision(plan, workflow_id=request.workflow_id)
    # The time limits the run records (run ahead: those its first step was run with).
    timeouts = getattr(step.event, "timeouts", None) if step is not None else start_timeouts(request, now)
    # The run's time limits are store timers; a delayed start's first
    # workflow task is hidden until the delay has passed.
    later = _limits_plan(run_id, timeouts, request.start_delay, now)
    if later is not None:
        decision.then.append(later)
    delayed = later is not None and later.task is not None
    if step is None:
        new.events = [ev.WorkflowStarted(seq=1, at=now, workflow=request.workflow,
                                         workflow_id=request.workflow_id, input=request.input,
                                         headers=request.headers, timeouts=timeouts)]
        return decision
    if delayed:
        raise StoreError(f"a delayed start of workflow id {request.workflow_id!r} cannot run its first step ahead")
    started = step.event
    if not (
        isinstance(started, ev.WorkflowStarted) and started.seq == 1
        and (started.workflow, started.workflow_id, started.input)
        == (request.workflow, request.workflow_id, request.input)
    ):
        raise StoreError(f"the first step of workflow id {request.workflow_id!r} does not fit its start")
    _check_numbers(step.commands, 2, f"the first step of workflow id {request.workflow_id!r}")
    record = RunRecord(run_id=run_id, workflow_id=request.workflow_id, workflow=request.workflow,
                       status="running", created_at=now, closed_at=None, last_seq=1, result=None, failure=None,
                       parent_run_id=None, next_run_id=None)
    own = _effects(record, None, step.commands, now, step.take, lookups, plan, decision)
    # The engine ran the first workflow task already: no task, unless the
    # step gave the run an input (a child refused at once).
    new.events = [started, *step.commands, *renumber(own, step.last_seq + 1)]
    new.wake = bool(own)
    return decision


def signal_with_start(
    request: StartRequest, entry: WorkflowEntry | None, run: RunState | None, signal: ev.Event, now: float, *,
    max_signals: int | None = None, run_id: str | None = None,
) -> tuple[Decision, bool]:
    """Signal the run of the request's workflow id, starting it first if there is none; True if started.

    ``entry`` is the id's (or key's) record and ``run`` its current run, read
    with its inbox. A new run's history is ``WorkflowStarted`` then the
    signal, in one plan. An open run gets the signal as :func:`deliver` gives
    it (its input is not compared: the signal is what is asked for). A
    workflow id used by another workflow raises IdempotencyError; a closed
    run raises RunFinishedError (nothing is written), unless the request's id
    reuse policy lets a new run follow it (see :func:`existing`): then that
    new run starts with the signal. A record whose run is gone (purged
    meanwhile) raises ConflictError, for the caller to read again.
    """
    if entry is not None:
        what = f"workflow id {entry.workflow_id!r}"
        if entry.workflow != request.workflow:
            raise IdempotencyError(f"{what} is already used by a run of workflow {entry.workflow!r}, "
                                   f"not {request.workflow!r}")
        if run is None:
            raise ConflictError(entry.current_run_id, 0)
        if run.open:
            plan = deliver(run, signal, now, max_signals=max_signals)
            assert plan is not None
            return Decision(plan, workflow_id=entry.workflow_id), False
        if request.id_reuse_policy is None:
            raise RunFinishedError(run.run_id, run.record.status)
        existing(request, entry, run)  # raises unless the policy lets a new run follow the closed one
    decision = start(request, now, run_id=run_id, replaces=None if entry is None else entry.current_run_id)
    new = decision.plan.runs[0]
    new.events.append(replace(signal, seq=2, at=now))
    return decision, True
