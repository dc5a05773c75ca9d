"""The rules of starts: a new run, an id already in use (and its reuse policy), signal-with-start, time limits."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from ..._ids import uuid4_str
from ...authoring import ID_REUSE_POLICIES
from ...errors import (
    ConfigurationError,
    ConflictError,
    IdempotencyError,
    RunFinishedError,
    StoreError,
)
from ...history import events as ev
from ...stores._plan import (
    NewRun,
    Plan,
    RunState,
    TaskChange,
    WorkflowEntry,
    renumber,
)
from ...stores._protocol import RunRecord, StartRequest
from ._core import (
    NO_LOOKUPS,
    TIMEOUT_KINDS,
    Decision,
    Lookups,
    StartStep,
    _check_numbers,
    _close_from_outside,
    _effects,
    _limits_plan,
    _timeouts,
    deliver,
)


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


_FAILED_ONLY = frozenset({"failed", "cancelled", "terminated", "timed_out"})


def start_timeouts(request: StartRequest, now: float) -> dict[str, float] | None:
    """The time limits a new run records in its WorkflowStarted (None: it has none)."""
    return _timeouts(request.run_timeout, request.execution_timeout, now)






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
    run_id: str | None = None, replaces: str | None = None, hold: float | None = None,
) -> Decision:
    """A new run (its id's record claimed), with its first step if the starting engine ran it ahead.

    Its run id is the step's, or ``run_id``, or a new random one. With
    ``replaces`` (the id's current run, closed), the id's record passes to
    the new run (see :func:`existing`). With ``hold`` (no step), its first
    workflow task is hidden from claims for that many seconds: the starting
    engine runs that step itself when a slot frees (see :func:`first_step`),
    or, if it dies first, the task is claimed once the hold ends.
    """
    run_id = step.run_id if step is not None else run_id or uuid4_str()
    new = NewRun(run_id=run_id, workflow=request.workflow, workflow_id=request.workflow_id, events=[],
                 input_hash=request.input_hash, idempotency_key=request.idempotency_key,
                 entry="new" if replaces is None else "reuse", replaces=replaces,
                 search_attributes=request.search_attributes or None, memo=request.memo or None)
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
        if hold is not None and hold > 0 and not delayed:
            if later is None:
                later = Plan(run_id)
                decision.then.append(later)
            later.task = TaskChange("backoff", visible_at=now + hold)
        new.events = [ev.WorkflowStarted(seq=1, at=now, workflow=request.workflow,
                                         workflow_id=request.workflow_id, input=request.input,
                                         headers=request.headers, timeouts=timeouts,
                                         search_attributes=new.search_attributes, memo=new.memo)]
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
    if (started.search_attributes, started.memo) != (new.search_attributes, new.memo):
        raise StoreError(f"the first step of workflow id {request.workflow_id!r} does not carry its start's search "
                         f"attributes and memo")
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
