"""The core rules of a run: its steps, its inputs, and how it closes (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, final

from ...errors import (
    TERMINATED_TYPE,
    TIMED_OUT_TYPE,
    ConflictError,
    LeaseLostError,
    SignalBufferFullError,
    StoreError,
)
from ...history import events as ev
from ...history.attributes import merge
from ...history.codec import start_digest
from ...history.failure import Failure
from ...stores._plan import (
    Close,
    NewActivity,
    NewRun,
    Plan,
    RunState,
    TaskChange,
    TaskState,
    renumber,
)
from ...stores._protocol import ActivityTask, RunRecord

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
_CANCELLED = Failure(type="CancelledError", message="the run was cancelled", non_retryable=True)
MAX_BACKOFF = 60.0
MAX_FAILED_BY = 8  # code fingerprints a blocked task remembers it failed on
# Added to a workflow task's count of unseen signals while its run decides
# again whether to close (a closing step was refused because inputs reached
# the run during it): ``signal()`` is refused meanwhile, so that the next
# closing step cannot be refused by yet more signals, and so on forever.
# The count is set afresh by the next committed step (or the task deleted).
CLOSING = 1 << 30


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
    closed: RunRecord | None = None  # the run's record, if the step closed it (set with ``stepped``)

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
class ParentClosed:
    """A parent's close, given to each of its open children (see ``parent_closed``)."""

    reason: str


@final
@dataclass(slots=True)
class Decision:
    """A plan, the inputs it gives other runs, and what the caller is told."""

    plan: Plan
    deliveries: list[tuple[str, ev.Event | ParentClosed]] = field(default_factory=list)
    refused: bool = False  # a step that would close the run over inputs that waited (they are recorded instead)
    closed: bool = False  # the run closed
    leased: list[NewActivity] = field(default_factory=list)  # tasks leased to the step's engine
    workflow_id: str = ""  # the run's (for the tasks leased)
    then: list[Plan] = field(default_factory=list)  # plans for runs this one creates, applied after it


def _close(
    record: RunRecord, parent_seq: int | None, cmd: ev.Event, now: float, open_children: Collection[str],
    plan: Plan, deliveries: list[tuple[str, ev.Event | ParentClosed]], then: list[Plan] | None = None,
) -> None:
    """The effects of a closing event: the run's record, a continuation, its children and its parent."""
    run_id = record.run_id
    status = _STATUS[type(cmd)]
    failure: Failure | None = None
    if isinstance(cmd, ev.WorkflowFailed):
        failure = cmd.failure
    elif isinstance(cmd, ev.WorkflowCancelled):
        failure = _CANCELLED
    elif isinstance(cmd, ev.WorkflowTerminated):
        failure = terminated_failure(cmd.reason)
    elif isinstance(cmd, ev.WorkflowTimedOut):
        failure = timed_out_failure(cmd.kind)
    plan.close = Close(
        status, result=cmd.result if isinstance(cmd, ev.WorkflowCompleted) else None, failure=failure,
        next_run_id=cmd.new_run_id if isinstance(cmd, ev.WorkflowContinuedAsNew) else None,
    )
    if isinstance(cmd, ev.WorkflowContinuedAsNew):
        # The new run keeps the search attributes (with this step's changes) and the memo.
        attributes = merge(record.search_attributes, plan.search_attributes or {})
        plan.runs.append(NewRun(
            run_id=cmd.new_run_id, workflow=record.workflow, workflow_id=record.workflow_id,
            events=[ev.WorkflowStarted(
                seq=1, at=now, workflow=record.workflow, workflow_id=record.workflow_id, input=cmd.input,
                parent_run_id=record.parent_run_id, parent_seq=parent_seq, continued_from=run_id,
                headers=cmd.headers, timeouts=cmd.timeouts, search_attributes=attributes or None,
                memo=record.memo)],
            parent_run_id=record.parent_run_id, parent_seq=parent_seq, entry="current",
            parent_close_policy=record.parent_close_policy,
            search_attributes=attributes or None, memo=record.memo,
        ))
        later = _limits_plan(cmd.new_run_id, cmd.timeouts, None, now)
        if later is not None and then is not None:
            then.append(later)
        return
    # Each open child learns of it, and its parent-close policy says what follows.
    for child in open_children:
        deliveries.append((child, ParentClosed(f"parent run {run_id} {status}")))
    if record.parent_run_id is not None and parent_seq is not None:
        outcome: ev.Event
        if isinstance(cmd, ev.WorkflowCompleted):
            outcome = ev.ChildWorkflowCompleted(seq=0, at=now, started=parent_seq, result=cmd.result)
        else:
            assert failure is not None  # every other close records one
            outcome = ev.ChildWorkflowFailed(seq=0, at=now, started=parent_seq, failure=failure,
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
            case ev.SearchAttributesUpserted():
                plan.search_attributes = {**(plan.search_attributes or {}), **cmd.attributes}
            case ev.TimerCancelled():
                plan.drop_timers.append(cmd.started)
            case ev.ChildWorkflowStarted():
                if cmd.workflow_id in lookups.taken:
                    failure = Failure(type="retold.IdempotencyError", non_retryable=True,
                                      message=f"workflow id {cmd.workflow_id!r} is already in use")
                    own.append(ev.ChildWorkflowFailed(seq=0, at=now, started=cmd.seq, failure=failure))
                else:
                    limits = cmd.limits or {}
                    timeouts = _timeouts(limits.get("run_timeout"), limits.get("execution_timeout"), now)
                    plan.runs.append(NewRun(
                        run_id=cmd.run_id, workflow=cmd.workflow, workflow_id=cmd.workflow_id,
                        events=[ev.WorkflowStarted(seq=1, at=now, workflow=cmd.workflow,
                                                   workflow_id=cmd.workflow_id, input=cmd.input,
                                                   parent_run_id=record.run_id, parent_seq=cmd.seq,
                                                   headers=cmd.headers, timeouts=timeouts,
                                                   search_attributes=cmd.search_attributes, memo=cmd.memo)],
                        parent_run_id=record.run_id, parent_seq=cmd.seq,
                        parent_close_policy=cmd.parent_close_policy,
                        search_attributes=cmd.search_attributes, memo=cmd.memo,
                    ))
                    later = _limits_plan(cmd.run_id, timeouts, limits.get("start_delay"), now)
                    if later is not None:
                        decision.then.append(later)
            case ev.ActivityCancelRequested() if cmd.wait:
                # Kept until its attempt ends: that attempt is told (its worker asks the
                # store, beside lease renewal), an attempt not started ends at once when
                # claimed, and the outcome recorded is final (see activity_outcome).
                plan.cancel_activities.append(cmd.scheduled)
            case ev.ActivityCancelRequested():
                # Withdrawn: never claimed again; a running attempt's worker finds
                # its task gone (lease renewal) and stops it, its outcome refused.
                plan.drop_activities.append(cmd.scheduled)
            case ev.ExternalSignalRequested():
                # Delivered in this transaction; the sender learns at once
                # whether its target took it (an input after its commands).
                target = lookups.targets.get(cmd.workflow_id)
                refused: Failure | None = None
                if target is None:
                    refused = Failure(type="retold.RunNotFoundError", non_retryable=True,
                                      message=f"no run found for workflow id {cmd.workflow_id!r}")
                elif not target.open:
                    refused = Failure(type="retold.RunFinishedError", non_retryable=True,
                                      message=f"run {target.run_id} of workflow id {cmd.workflow_id!r} is "
                                              f"{target.record.status}: it takes no more signals")
                else:
                    decision.deliveries.append((target.run_id, ev.SignalReceived(
                        seq=0, at=now, name=cmd.name, input=cmd.input)))
                own.append(ev.ExternalSignalResolved(seq=0, at=now, requested=cmd.seq, failure=refused))
            case ev.WorkflowStartRequested():
                # A run of its own, created in this transaction; the starter
                # learns at once whether it was (an input after its commands).
                taken: Failure | None = None
                if cmd.workflow_id in lookups.taken:
                    taken = Failure(type="retold.IdempotencyError", non_retryable=True,
                                    message=f"workflow id {cmd.workflow_id!r} is already in use")
                else:
                    limits = cmd.limits or {}
                    timeouts = _timeouts(limits.get("run_timeout"), limits.get("execution_timeout"), now)
                    plan.runs.append(NewRun(
                        run_id=cmd.run_id, workflow=cmd.workflow, workflow_id=cmd.workflow_id,
                        events=[ev.WorkflowStarted(seq=1, at=now, workflow=cmd.workflow, workflow_id=cmd.workflow_id,
                                                   input=cmd.input, headers=cmd.headers, timeouts=timeouts,
                                                   search_attributes=cmd.search_attributes, memo=cmd.memo)],
                        input_hash=start_digest(cmd.workflow, cmd.input),
                        search_attributes=cmd.search_attributes, memo=cmd.memo,
                    ))
                    later = _limits_plan(cmd.run_id, timeouts, limits.get("start_delay"), now)
                    if later is not None:
                        decision.then.append(later)
                own.append(ev.WorkflowStartResolved(seq=0, at=now, requested=cmd.seq, failure=taken))
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
    run while inputs wait is refused: they are recorded instead, and until
    the run's next step commits (having seen them), signals are refused
    (:data:`CLOSING`), so the run is not kept from closing forever.
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
        # The run decides again, having seen them; signals wait until it has.
        if run.task is not None and run.task.signals < CLOSING:
            plan.task = TaskChange("none", add_signals=CLOSING)
        return Decision(plan, refused=True)
    decision = Decision(plan, workflow_id=run.record.workflow_id)
    own = _effects(run.record, run.parent_seq, commands, now, take, lookups, plan, decision)
    moved = [*waiting, *own]
    plan.events = [*commands, *renumber(moved, expected + 1 + len(commands))]
    # Inputs came in during the step (or the step gave the run one): the task
    # stays with this owner, who processes them next; its attempts were not fatal.
    plan.task = TaskChange("keep", signals=_signals(waiting)) if moved else TaskChange("done")
    return decision


def inbox_needed(run: RunState | None) -> bool:
    """Whether :func:`deliver` looks at this run's inbox: only when its task's holder's lease ran out.

    Otherwise the run is read without it: reading a long inbox for every
    signal made a flood quadratic (each signal decoded every one before it).
    """
    task = run.task if run is not None else None
    return task is not None and task.owner is not None and not task.live


def deliver(run: RunState | None, event: ev.Event, now: float, *, max_signals: int | None = None) -> Plan | None:
    """An input for a run (``run`` read with its inbox if :func:`inbox_needed`); None if it is closed (or unknown).

    While a step of the run is in flight (its workflow task is leased) the
    input waits in the inbox, and that step's commit appends it; so inputs
    at any rate never invalidate the step. Otherwise it joins the history at
    once and wakes the run. With ``max_signals`` (a sender's ``signal()``),
    a signal over that many unseen ones, or one that reaches a run deciding
    again whether to close (see :func:`commit`), raises SignalBufferFullError.
    """
    if run is None or not run.open:
        return None
    task = run.task
    signal = 1 if type(event) is ev.SignalReceived else 0
    if signal and max_signals is not None and task is not None:
        if task.signals >= CLOSING:
            raise SignalBufferFullError(run.run_id, max_signals, closing=True)
        if task.signals + 1 > max_signals:
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


def first_step(
    run: RunState | None, commands: Sequence[ev.Event], now: float, *,
    take: ActivityTake | None = None, lookups: Lookups = NO_LOOKUPS,
) -> Decision | None:
    """A new run's first step, run by the engine that started it without one (see ``hold`` in :func:`start`).

    It applies only to a run that nothing has touched since its start: at
    its first event, its workflow task never claimed (no holder, no death,
    no lapse, no failure). Then the task is spent as if claimed and
    committed. Otherwise the caller drops the step and the task takes its
    usual course: if the run moved (a signal came in) with that task still
    untouched, the decision (``refused``) only shows it to claims at once;
    None if there is nothing to do (closed, or another worker has the task).
    """
    if run is None or not _untouched_task(run):
        return None
    if run.last_seq != 1:
        return Decision(Plan(run.run_id, task=TaskChange("backoff", visible_at=now)), refused=True)
    _check_numbers(commands, 2, f"the first step of run {run.run_id}")
    plan = Plan(run.run_id, expect_seq=1)
    decision = Decision(plan, workflow_id=run.record.workflow_id)
    own = _effects(run.record, run.parent_seq, commands, now, take, lookups, plan, decision)
    plan.events = [*commands, *renumber(own, 2 + len(commands))]
    plan.task = TaskChange("wake") if own else TaskChange("done")
    return decision


def _untouched_task(run: RunState) -> bool:
    """Whether an open run's workflow task was never claimed: no holder, no death, no lapse, no failure."""
    task = run.task
    return run.open and task is not None and task.owner is None and not task.attempts and not task.lapses \
        and task.failure is None and not task.failed_by


def unhold(run: RunState | None, now: float) -> Plan | None:
    """Show a held first workflow task to claims at once (its engine is closing); None if it was taken since."""
    if run is None or not _untouched_task(run):
        return None
    return Plan(run.run_id, task=TaskChange("backoff", visible_at=now))


def release(run: RunState) -> Plan | None:
    """A run whose task's holder is letting go: what waited in its inbox joins the history.

    A run deciding again whether to close (:data:`CLOSING`) takes signals again.
    """
    closing = run.task is not None and run.task.signals >= CLOSING
    if not run.open or not (run.inbox or closing):
        return None
    inbox = run.inbox or ()
    plan = Plan(run.run_id, expect_seq=run.last_seq, events=renumber([i.event for i in inbox], run.last_seq + 1))
    if inbox:
        plan.inbox_taken = inbox[-1].id
    if closing:
        plan.task = TaskChange("none", add_signals=-CLOSING)
    return plan


def terminated_failure(reason: str) -> Failure:
    """The failure a terminated run records (and its parent is told)."""
    message = f"the run was terminated: {reason}" if reason else "the run was terminated"
    return Failure(type=TERMINATED_TYPE, message=message, non_retryable=True)


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
    decision = Decision(plan, closed=True, workflow_id=run.record.workflow_id)
    _close(run.record, run.parent_seq, cmd, now, open_children, plan, decision.deliveries)
    return decision


def timed_out_failure(kind: str) -> Failure:
    """The failure a run closed by its time limit records (and its parent is told)."""
    return Failure(type=TIMED_OUT_TYPE, message=f"the run timed out: its {kind} timeout passed", non_retryable=True)


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
