"""What a store records: plans, and the state a plan is decided from.

The run state machine (``retold.engine._machine``) decides; a store only
reads the state below and applies :class:`Plan` objects, atomically, inside
one transaction (:meth:`Store.transact`). Nothing here knows a rule of a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, final

from ..history.events import Event
from ..history.failure import BlockedTask, Failure
from ._protocol import RunRecord

__all__ = [
    "Close", "InboxItem", "NewActivity", "NewRun", "Plan", "RunState", "ScheduleRow", "TaskChange", "TaskRetry",
    "TaskState",
    "Tx", "WorkflowEntry", "WorkflowTaskState", "renumber",
]


@final
@dataclass(frozen=True, slots=True)
class WorkflowTaskState:
    """A run's pending workflow task: who holds it, its counters, and its last failure.

    ``attempts`` counts the deaths of workers while they ran a step of it
    that carried the stepping mark (see ``TaskChange``), counted when the
    task is claimed again; ``lapses``: how many times another owner's lease
    on it ran out since its last commit (its worker died, or stalled),
    whatever it was doing then (a *suspect* from ``SUSPECT_LAPSES``).
    ``failure`` is the last failed attempt's record (None once a step
    commits), and ``failed_by`` the code fingerprints of the engines it
    failed on since (most recent last), as stored by a backoff.
    """

    owner: str | None
    live: bool  # leased, and the lease has not run out (judged on the store's lease clock)
    attempts: int
    signals: int
    failure: BlockedTask | None = None
    failed_by: tuple[str, ...] = ()
    lapses: int = 0


@final
@dataclass(frozen=True, slots=True)
class InboxItem:
    """An input that reached a run while a step of it was in flight."""

    id: int
    event: Event  # numbered 0: it gets its number when it joins the history


@final
@dataclass(frozen=True, slots=True)
class RunState:
    """What the state machine knows of a run when it decides."""

    record: RunRecord
    parent_seq: int | None
    task: WorkflowTaskState | None
    inbox: tuple[InboxItem, ...] | None = None  # loaded only when asked for

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def last_seq(self) -> int:
        return self.record.last_seq

    @property
    def open(self) -> bool:
        return self.record.status == "running"


@final
@dataclass(frozen=True, slots=True)
class TaskState:
    """An activity task as stored."""

    id: int
    run_id: str
    workflow_id: str
    seq: int
    activity: str
    queue: str
    input: bytes
    options: dict[str, Any]
    attempt: int
    scheduled_at: float
    deadline: float | None
    owner: str | None
    last_failure: Failure | None
    cancel_requested: bool = False  # the run waits for its attempt to end (``Plan.cancel_activities``)


@final
@dataclass(frozen=True, slots=True)
class WorkflowEntry:
    """A workflow id's record: what it was first started with, and its current run."""

    workflow_id: str
    workflow: str
    input_hash: str
    idempotency_key: str | None
    first_run_id: str
    current_run_id: str


@final
@dataclass(slots=True)
class NewActivity:
    """An activity task to create; leased at once to ``owner`` for ``lease`` seconds if set."""

    seq: int
    activity: str
    queue: str
    input: bytes
    options: dict[str, Any]
    deadline: float | None
    owner: str | None = None
    lease: float = 0.0


@final
@dataclass(slots=True)
class NewRun:
    """A run to create, with its first events (``WorkflowStarted`` and, run ahead, its first step).

    ``entry``: ``"new"`` claims the workflow id (the plan fails with a
    conflict if it is taken), ``"current"`` makes the new run its id's current
    run (continue-as-new), ``"reuse"`` gives the id's record to the new run
    (its workflow, input hash, key, first and current run) if its current run
    is still ``replaces`` (else the plan fails with a conflict).
    """

    run_id: str
    workflow: str
    workflow_id: str
    events: list[Event]
    parent_run_id: str | None = None
    parent_seq: int | None = None
    entry: Literal["new", "current", "reuse"] = "new"
    input_hash: str = ""
    idempotency_key: str | None = None
    wake: bool = True  # give the run a workflow task (False: its first step is in ``events``)
    replaces: str | None = None  # "reuse": the id's current run, closed, that the new run follows
    parent_close_policy: str | None = None  # a child's (see ``RunRecord.parent_close_policy``)
    # Its search attributes (stored forms, ``retold.history.attributes``) and memo (JSON values).
    search_attributes: dict[str, str] | None = None
    memo: dict[str, Any] | None = None


@final
@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A schedule as a store keeps it: the engine's record (``body``, JSON) and when to look at it next.

    ``due_at`` (store clock) is when a fire loop must next read it; None
    when it is paused or will never fire again. The store reads nothing in
    ``body``.
    """

    schedule_id: str
    due_at: float | None
    body: bytes


@final
@dataclass(frozen=True, slots=True)
class Close:
    """How a run closes."""

    status: Literal["completed", "failed", "cancelled", "continued", "terminated", "timed_out"]
    result: bytes | None = None
    failure: Failure | None = None
    next_run_id: str | None = None


@final
@dataclass(frozen=True, slots=True)
class TaskChange:
    """What happens to the run's workflow task.

    ``wake``: make sure it has one (an existing task, leased or not, stays as
    it is); ``done``: delete it; ``keep``: it stays leased to its holder with
    ``signals`` unseen signals, no dead attempts, no suspicion, no stepping
    mark and no failure; ``stepping``: set its stepping mark (a step of it is
    about to run: if the holder's lease runs out before the mark is cleared,
    the next claim by another owner counts a death, ``attempts + 1``);
    ``backoff``: hand it back (its lease ended, its stepping mark cleared),
    visible at ``visible_at``, storing ``failure`` (the failed attempt's
    record, read back as ``WorkflowTaskState.failure`` and
    ``RunRecord.task_failure``) and ``failed_by``, and, unless None,
    ``attempts`` as its count of deaths. A store's claim takes a backed-off
    task before ``visible_at`` for an engine whose code fingerprint is not in
    ``failed_by`` (other code may not fail). ``add_signals`` is added to its
    count of unseen signals after that.
    """

    kind: Literal["wake", "done", "keep", "stepping", "backoff", "none"]
    visible_at: float = 0.0
    signals: int = 0
    add_signals: int = 0
    failure: BlockedTask | None = None
    failed_by: tuple[str, ...] = ()
    attempts: int | None = None


@final
@dataclass(frozen=True, slots=True)
class TaskRetry:
    """An activity task's next attempt, after ``visible_at``."""

    task_id: int
    attempt: int
    visible_at: float
    failure: Failure | None


@final
@dataclass(slots=True)
class Plan:
    """Everything one decision changes in one run, applied all or nothing.

    Preconditions: the run's last event number is ``expect_seq`` (required
    when ``events`` is not empty; events are numbered from it + 1), its
    workflow task is leased to ``expect_owner`` (if set), and it is open.
    A store that finds one false raises ``ConflictError`` (the run moved or
    closed) or ``LeaseLostError`` (another owner holds the task) and writes
    nothing.
    """

    run_id: str
    expect_seq: int | None = None
    expect_owner: str | None = None
    events: list[Event] = field(default_factory=list)
    keep_first_at: bool = False  # the first event keeps its own time (an input the run has already seen)
    inbox: list[Event] = field(default_factory=list)  # inputs to hold until the step in flight commits
    inbox_taken: int | None = None  # inbox items up to this id joined the history: delete them
    activities: list[NewActivity] = field(default_factory=list)
    retry: TaskRetry | None = None
    drop_tasks: list[int] = field(default_factory=list)  # activity task ids
    drop_activities: list[int] = field(default_factory=list)  # by the event number that scheduled them
    # Activities (by the event number that scheduled them) whose cancellation the run waits for: each task is
    # marked (``TaskState.cancel_requested``) and due at once, so its attempt ends and reports.
    cancel_activities: list[int] = field(default_factory=list)
    timers: list[tuple[int, float]] = field(default_factory=list)  # (seq, fire_at)
    drop_timers: list[int] = field(default_factory=list)
    runs: list[NewRun] = field(default_factory=list)
    close: Close | None = None
    task: TaskChange | None = None
    # An activity task whose current attempt runs under the stepping mark: if
    # its holder's lease runs out before the attempt's outcome is recorded,
    # the next claim counts a death against it (``ActivityTask.deaths``).
    stepping_task: int | None = None
    # Changes to the run's search attributes, by name (stored forms; None removes the name).
    search_attributes: dict[str, str | None] | None = None

    @property
    def last_seq(self) -> int | None:
        """The run's last event number once applied (None if no event is appended)."""
        return None if self.expect_seq is None else self.expect_seq + len(self.events)


class Tx(Protocol):
    """One transaction of a store: reads, then plans applied; all of it commits or none does.

    Every method is synchronous and runs inside the transaction. On
    PostgreSQL, reading a run locks it until the transaction ends.
    """

    def now(self) -> float:
        """The store's clock (event times, due times), seconds since the epoch."""
        ...

    def run(self, run_or_workflow_id: str, *, inbox: bool = False) -> RunState | None:
        """A run by run id, or the current run of a workflow id; with ``inbox``, its waiting inputs."""
        ...

    def entry(self, workflow_id: str, idempotency_key: str | None = None) -> WorkflowEntry | None:
        """The record of an idempotency key (first) or a workflow id, if either was used."""
        ...

    def task(self, task_id: int) -> TaskState | None:
        """An activity task, locked, with its lease holder if the lease is still live."""
        ...

    def prefetch_task(self, task_id: int) -> None:
        """A hint: :meth:`task` of ``task_id`` follows the next :meth:`run`; a store may read both at once.

        Or not read them at all: PostgreSQL may take both from what its own
        last commit left, and check before anything is written that they
        are still so (see ``retold.stores.sql._tx``). Either way the state
        returned is the state the transaction's plans are applied to.
        """
        ...

    def open_children(self, run_id: str) -> list[str]:
        """Run ids of the run's children that are still open."""
        ...

    def leased_runs(self, owner: str) -> list[str]:
        """Runs whose workflow task ``owner`` holds."""
        ...

    def take_due_timers(self, limit: int) -> list[tuple[str, int]]:
        """Remove and return up to ``limit`` due timers as (run_id, seq), earliest first."""
        ...

    def take_overdue_tasks(self, limit: int) -> list[TaskState]:
        """Remove and return activity tasks past their deadline that nobody is running."""
        ...

    def schedule(self, schedule_id: str, *, skip_locked: bool = False) -> ScheduleRow | None:
        """A schedule, locked until the transaction ends (PostgreSQL), if it exists.

        ``skip_locked``: None also if another transaction holds its lock (PostgreSQL), rather than
        waiting for it."""
        ...

    def schedules(self) -> list[ScheduleRow]:
        """Every schedule, by id."""
        ...

    def put_schedule(self, row: ScheduleRow) -> None:
        """Create or replace a schedule."""
        ...

    def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule; return whether it existed."""
        ...

    def apply(self, plan: Plan) -> list[tuple[str, int, int]]:
        """Apply ``plan``; return the activity tasks it leased, as (queue, task id, seq).

        Raises ConflictError or LeaseLostError (nothing written) if a
        precondition is false.
        """
        ...


def renumber(events: Sequence[Event], first: int) -> list[Event]:
    """``events`` numbered from ``first``."""
    return [e if e.seq == first + i else replace(e, seq=first + i) for i, e in enumerate(events)]
