"""The Store protocol: everything the engine needs from a database."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, final

from ..history import events as ev
from ..history.events import Event

__all__ = [
    "ActivityOutcome", "ActivityStep", "ActivityTake", "ActivityTask", "RunRecord", "StartRequest", "StartStep",
    "Store",
]

RunStatus = Literal["running", "completed", "failed", "cancelled", "continued"]


@final
@dataclass(frozen=True, slots=True)
class StartRequest:
    """What is needed to create a run."""

    workflow: str
    workflow_id: str
    input: bytes
    input_hash: str
    idempotency_key: str | None = None
    headers: dict[str, str] | None = None  # trace context, recorded in WorkflowStarted


@final
@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run's row: status and outcome, without its events."""

    run_id: str
    workflow_id: str
    workflow: str
    status: RunStatus
    created_at: float
    closed_at: float | None
    last_seq: int
    result: bytes | None
    failure: dict[str, Any] | None
    parent_run_id: str | None
    next_run_id: str | None
    # Set by load() only: attempts of the run's pending workflow task that
    # ended without a result (it failed, or the worker holding it died).
    task_attempts: int = 0


@final
@dataclass(frozen=True, slots=True)
class ActivityTask:
    """A claimed activity task."""

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


@final
@dataclass(frozen=True, slots=True)
class ActivityOutcome:
    """How an activity attempt ended.

    ``kind`` is ``completed`` (with ``result``), ``failed`` (with
    ``failure``; ``retry_delay`` set means try again after that many
    seconds) or ``timed_out`` (with ``timeout_kind``).
    """

    kind: Literal["completed", "failed", "timed_out"]
    result: bytes = b""
    failure: dict[str, Any] | None = None
    retry_delay: float | None = None
    timeout_kind: str = ""

    @property
    def final(self) -> bool:
        """Whether this outcome ends the activity (no retry is due)."""
        return not (self.kind == "failed" and self.retry_delay is not None)

    def event(self, *, seq: int, at: float, scheduled: int, attempt: int) -> Event:
        """The history event that records this final outcome."""
        if self.kind == "completed":
            return ev.ActivityCompleted(seq=seq, at=at, scheduled=scheduled, attempt=attempt, result=self.result)
        if self.kind == "failed":
            return ev.ActivityFailed(seq=seq, at=at, scheduled=scheduled, attempt=attempt,
                                     failure=self.failure or {})
        return ev.ActivityTimedOut(seq=seq, at=at, scheduled=scheduled, attempt=attempt, kind=self.timeout_kind,
                                   failure=self.failure)


@final
@dataclass(slots=True)
class ActivityTake:
    """Activity tasks a workflow-task commit may lease at once to its own engine.

    The same-process fast path: instead of inserting the tasks for anyone to
    claim and waking a worker to claim them (one more transaction), the
    commit leases up to ``slots[queue]`` tasks of the hosted ``activities``
    to ``owner`` and lists them in ``taken`` (filled only when the commit's
    function returns; use it only if the commit itself succeeded).
    """

    owner: str
    lease: float
    activities: frozenset[str]
    slots: dict[str, int]
    taken: list[ActivityTask] = field(default_factory=list)


@final
@dataclass(slots=True)
class ActivityStep:
    """The next workflow step, committed with the activity outcome that caused it.

    The other half of the same-process fast path: when the run is cached in
    the engine that ran the activity, the engine records the outcome as
    ``event`` (numbered ``expected_seq + 1``), feeds it to the run, and asks
    :meth:`Store.finish_activity` to append the resulting ``commands`` and
    their effects in the same transaction, with no workflow task in between.
    The store does so only if the run is still at ``expected_seq``; it sets
    ``stepped`` when it did. Otherwise it records the outcome the usual way
    and wakes the run's workflow task.
    """

    run_id: str
    expected_seq: int
    event: Event
    commands: Sequence[Event]
    take: ActivityTake | None = None
    stepped: bool = False

    @property
    def last_seq(self) -> int:
        """The run's last event number once the step is committed."""
        return self.expected_seq + 1 + len(self.commands)


@final
@dataclass(slots=True)
class StartStep:
    """A new run's first workflow task, done by the engine that starts it.

    The start's side of the same-process fast path: the engine picks the
    ``run_id``, feeds ``event`` (the ``WorkflowStarted``, numbered 1) to
    the run, and :meth:`Store.start` commits the resulting ``commands`` and
    their effects with the new run, so no workflow task is created. It sets
    ``stepped`` when it did; a start that finds the run already there
    (same id or key) writes nothing of it.
    """

    run_id: str
    event: Event
    commands: Sequence[Event]
    take: ActivityTake | None = None
    stepped: bool = False

    @property
    def last_seq(self) -> int:
        """The run's last event number once the step is committed."""
        return 1 + len(self.commands)


class Store(Protocol):
    """Durable state of every run: histories, tasks, timers.

    Every method is one transaction. Methods that append to a run's history
    keep its event numbers gap-free and refuse to write to a closed run.
    """

    async def open(self) -> None:
        """Create or check the schema; raise SchemaError if it is not usable."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    def now(self) -> float:
        """The store's clock, in seconds since the epoch."""
        ...

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work(kind)`` whenever any process creates work, until cancelled.

        ``kind`` is ``"workflow"``, ``"activity"`` or ``"closed"`` (a run
        closed). A store that cannot tell returns at once: engines also poll,
        so a missed call only delays work by their poll interval.
        """
        ...

    async def start(self, request: StartRequest, step: StartStep | None = None) -> tuple[RunRecord, bool]:
        """Create a run (or return the existing one for the same id/key).

        With ``step``, a new run gets that id and its first step at once
        (see :class:`StartStep`).
        """
        ...

    async def claim_workflow_tasks(
        self, owner: str, workflows: Sequence[str], limit: int, lease: float, *, suspects: int | None = None
    ) -> list[str]:
        """Lease up to ``limit`` runs of ``workflows`` that have events to process.

        A task whose previous lease ran out (its worker died or stalled) is a
        *suspect*: claiming it counts that attempt (``RunRecord.task_attempts``).
        ``suspects`` caps how many of them this claim takes (None: no cap).
        """
        ...

    async def load(self, run_id: str, after_seq: int) -> tuple[RunRecord, list[Event]]:
        """A run's row and its events after ``after_seq``."""
        ...

    async def commit_workflow_task(
        self, run_id: str, owner: str, expected_seq: int, commands: Sequence[Event],
        take: ActivityTake | None = None,
    ) -> int:
        """Append commands and their effects; return the run's last event number.

        Inputs that reached the run while the task was leased (its inbox)
        follow the commands in the same transaction; the task then stays
        leased to ``owner``, and the returned number is past the commands:
        the owner processes those inputs next. Raises ConflictError if the
        run moved, or if the commands would close the run while inputs wait
        (they are recorded instead), and LeaseLostError if another owner
        holds the task. With ``take``, lease the new activity tasks it allows
        to its owner (see :class:`ActivityTake`).
        """
        ...

    async def fail_workflow_task(
        self, run_id: str, owner: str, failure: dict[str, Any], delay: float, max_attempts: int,
        *, final: bool = False,
    ) -> bool:
        """Back off a failed workflow task (``delay`` doubling per attempt, at most
        60 s); fail the run at ``max_attempts``, or at once with ``failure`` as it is if ``final``."""
        ...

    async def claim_activity_tasks(
        self, owner: str, queue: str, activities: Sequence[str], limit: int, lease: float,
        running: Collection[int] = (),
    ) -> list[ActivityTask]:
        """Lease up to ``limit`` ready tasks of ``activities`` from ``queue``.

        Never the tasks in ``running`` (ids this owner is still running, read when
        the claim runs, so a live set may be passed),
        even if their leases lapsed: a process runs one attempt of a task at a time.
        """
        ...

    async def finish_activity(
        self, task: ActivityTask, owner: str, outcome: ActivityOutcome, step: ActivityStep | None = None
    ) -> bool:
        """Record an attempt's outcome; False if this owner no longer holds that attempt.

        Fenced on the attempt's identity (task id, run id, event number,
        attempt) and the lease: a stale attempt never lands on another run.

        With ``step`` (a final outcome only), commit the run's next step too
        when the run has not moved (see :class:`ActivityStep`).
        """
        ...

    async def renew_leases(self, owner: str, task_ids: list[int], lease: float) -> set[int]:
        """Extend leases; return the ids this owner no longer holds."""
        ...

    async def renew_workflow_leases(self, owner: str, run_ids: list[str], lease: float) -> None:
        """Extend this owner's leases on workflow tasks still being processed."""
        ...

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str
    ) -> list[tuple[str, int, str]]:
        """Record this engine; return the other engines on ``host`` as (worker_id, pid, process_start)."""
        ...

    async def reap_worker(self, worker_id: str) -> int:
        """Forget a dead engine and end its leases now (its attempts count); return the tasks freed."""
        ...

    async def unregister_worker(self, worker_id: str) -> None:
        """Forget this engine (it is stopping)."""
        ...

    async def release_leases(self, owner: str) -> None:
        """Hand back every task this owner holds (it is shutting down)."""
        ...

    async def fire_timers(self, limit: int) -> int:
        """Fire due timers and time out activity tasks past their deadline.

        Returns how many events were appended.
        """
        ...

    async def next_wakeup(self) -> float | None:
        """When the earliest timer, task or retry becomes due, if any."""
        ...

    async def quiescence(self) -> tuple[bool, float | None]:
        """(busy, next_due): busy if any task is leased or due now; else when work next comes due.

        Used by time-skipping test environments to tell that every run is blocked.
        """
        ...

    async def signal(self, run_or_workflow_id: str, name: str, payload: bytes) -> str:
        """Record a signal for the run, durably; return its run id.

        Raises RunFinishedError if the run is closed, SignalBufferFullError
        if it has too many unprocessed signals; neither writes anything.
        """
        ...

    async def request_cancel(self, run_or_workflow_id: str, reason: str) -> str:
        """Append a cancel request; return its run id."""
        ...

    async def closed_among(self, run_ids: Sequence[str]) -> set[str]:
        """The ids among ``run_ids`` whose runs are no longer running."""
        ...

    async def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run's row by run id or (for the latest run) workflow id."""
        ...

    async def list_runs(
        self, *, status: str | None, workflow: str | None, limit: int, offset: int
    ) -> list[RunRecord]:
        """Runs, newest first."""
        ...
