"""The Store protocol: everything the engine needs from a database."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, final

from ..history import events as ev
from ..history.events import Event
from ..history.failure import BlockedTask, Failure
from ._pending import Hosting, LiveWorker, RunWork
from ._purge import PurgeReport

if TYPE_CHECKING:
    from ._plan import ScheduleRow, Tx

_T = TypeVar("_T")

__all__ = ["SUSPECT_LAPSES", "ActivityOutcome", "ActivityTask", "RunRecord", "StartRequest", "Store"]

RunStatus = Literal["running", "completed", "failed", "cancelled", "continued", "terminated", "timed_out"]


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
    # What a start does when its workflow id's run is closed (None: return it if the input is the same):
    # "allow_duplicate", "allow_duplicate_failed_only" or "reject_duplicate" (see the state machine).
    id_reuse_policy: str | None = None
    run_timeout: float | None = None  # seconds: the run closes as timed out after this long
    execution_timeout: float | None = None  # seconds: the same, across continue-as-new
    start_delay: float | None = None  # seconds before the run's first workflow task
    search_attributes: dict[str, str] | None = None  # stored forms (retold.history.attributes)
    memo: dict[str, Any] | None = None  # JSON values, returned by describe, never searched


SUSPECT_LAPSES = 2
"""Leases of a task's holders that ran out in a row (its workers died, or stalled) that make it a *suspect*.

A worker that dies takes down every task it held, most of them healthy: one
lapse blames nobody, and such tasks are run again as usual. A task whose
holders died twice in a row is run alone in its process, under a stepping
mark, so that a third death is known to be its own.
"""


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
    failure: Failure | None
    parent_run_id: str | None
    next_run_id: str | None
    # Set by load() only: deaths of workers while they ran a marked step of
    # the run's pending workflow task (``WorkflowTaskState.attempts``), and
    # how many times another owner's lease on it ran out since its last
    # commit (``WorkflowTaskState.lapses``; a *suspect* from SUSPECT_LAPSES).
    task_attempts: int = 0
    task_lapses: int = 0
    # A child's: what its parent's close does to it while it is open (None:
    # "request_cancel"; see ``retold.ParentClosePolicy``).
    parent_close_policy: str | None = None
    # Set by load(), get_run() and list_runs(): the record of the last failed
    # attempt of the run's pending workflow task (``TaskChange.failure``),
    # while no attempt has succeeded since; the run is *blocked*.
    task_failure: BlockedTask | None = None
    # Its search attributes (stored forms, ``retold.history.attributes``) and memo.
    search_attributes: dict[str, str] | None = None
    memo: dict[str, Any] | None = None


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
    # Claimed after the previous owners' leases ran out mid-attempt (they died
    # or stalled) SUSPECT_LAPSES times in a row: run it alone, under the
    # stepping mark (``Plan.stepping_task``); ``deaths``: workers that died
    # running a marked attempt of it.
    suspect: bool = False
    deaths: int = 0
    # The run waits for this attempt to end (``Plan.cancel_activities``): end it, as cancelled.
    cancel_requested: bool = False


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
    failure: Failure | None = None
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
                                     failure=self.failure or Failure(type="", message=""))
        return ev.ActivityTimedOut(seq=seq, at=at, scheduled=scheduled, attempt=attempt, kind=self.timeout_kind,
                                   failure=self.failure)


class Store(Protocol):
    """Durable state of every run: histories, tasks, timers, leases. It records; it decides nothing.

    Every change to a run goes through :meth:`transact`: the caller reads
    the run's state and applies plans decided by the run state machine, in
    one atomic transaction. The other methods move leases, keep the worker
    registry, and read. See docs/design.md ("The store protocol").
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
        closed), which may be followed by the ids of the runs closed,
        space-separated (``"closed <run id> <run id>"``). A store that cannot
        tell returns at once: engines also poll, so a missed call only delays
        work by their poll interval.
        """
        ...

    async def transact(self, fn: Callable[[Tx], _T], *, outside: bool = False) -> _T:
        """Run ``fn`` on one transaction and commit it; return what ``fn`` returned.

        All of ``fn``'s plans are recorded durably, or (if it raises, or the
        commit fails) none is, and its error propagates. ``outside`` marks
        requests from outside the engine (start, signal, cancel), which a
        store may queue behind the engine's own work.
        """
        ...

    async def claim_workflow_tasks(
        self, owner: str, workflows: Sequence[str], limit: int, lease: float, *, suspects: int | None = None,
        fingerprint: str | None = None,
    ) -> list[str]:
        """Lease up to ``limit`` runs of ``workflows`` that have events to process.

        Claiming a task whose previous owner's lease ran out (its worker
        died or stalled) counts a lapse (``RunRecord.task_lapses``, cleared
        when a step of it commits); from ``SUSPECT_LAPSES`` lapses it is a
        *suspect*. If that owner was running a step with the stepping mark
        set (``TaskChange("stepping")``), the claim also counts a death
        against the task (``RunRecord.task_attempts``) and clears the mark.
        ``suspects`` caps how many suspects this claim takes (None: no cap).
        A task backed off after a failure (``TaskChange.failure``) is due at
        its ``visible_at``, or at once for a claimer whose code
        ``fingerprint`` is not among those it failed on (``failed_by``).
        """
        ...

    async def load(self, run_id: str, after_seq: int, limit: int | None = None) -> tuple[RunRecord, list[Event]]:
        """A run's row and its events after ``after_seq`` (the first ``limit`` of them, if given)."""
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

    async def renew_leases(self, owner: str, task_ids: list[int], lease: float) -> set[int]:
        """Extend leases; return the ids this owner no longer holds."""
        ...

    async def cancel_requests(self, task_ids: list[int]) -> set[int]:
        """Of these activity tasks, the ids whose run waits for their attempt to end (``Plan.cancel_activities``)."""
        ...

    async def renew_workflow_leases(self, owner: str, run_ids: list[str], lease: float) -> None:
        """Extend this owner's leases on workflow tasks still being processed."""
        ...

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str, *,
        hosting: Hosting | None = None, ttl: float = 15.0,
    ) -> list[tuple[str, int, str]]:
        """Record this engine; return the other engines on ``host`` as (worker_id, pid, process_start).

        Also records what the engine hosts (``hosting``), and that it counts
        as running for ``ttl`` seconds of the lease clock: engines register
        again every third of their lease, so one that stops doing so (its
        process died on another machine) drops out of :meth:`live_workers`.
        """
        ...

    async def live_workers(self) -> list[LiveWorker]:
        """The engines whose latest registration has not run out, with what each hosts."""
        ...

    async def pending_work(self, run_id: str) -> RunWork:
        """What run ``run_id`` waits for, read at one instant.

        Its activity tasks (with the live lease holder and when its attempt
        started), timers, running children, the signals it has not processed
        (``SignalReceived`` after its last command, then its inbox's, in
        order) and its workflow task.

        Raises:
            RunNotFoundError: no run with that id.
        """
        ...

    async def reap_worker(self, worker_id: str) -> int:
        """Forget a dead engine and end its leases now (its attempts count); return the tasks freed."""
        ...

    async def unregister_worker(self, worker_id: str) -> None:
        """Forget this engine (it is stopping)."""
        ...

    async def release_leases(self, owner: str) -> None:
        """Hand back every task this owner holds (it is shutting down); nothing else changes."""
        ...

    async def next_wakeup(self) -> float | None:
        """When the earliest timer, task or retry becomes due, if any."""
        ...

    async def quiescence(self) -> tuple[bool, float | None]:
        """(busy, next_due): busy if any task is leased or due now, or a schedule is due; else when work
        (a timer, a task, a retry, a schedule's fire) next comes due.

        Used by time-skipping test environments to tell that every run is blocked.
        """
        ...

    async def schedules_due(self, limit: int) -> tuple[list[str], float | None]:
        """(ids, next_due): up to ``limit`` schedules whose ``due_at`` has come (store clock), earliest
        first, and the earliest ``due_at`` of any schedule.

        A read: it takes no write lock and commits nothing durable, so engines
        polling for schedules cost the store nothing while none is due.
        """
        ...

    async def timers_due(self, limit: int) -> tuple[list[tuple[str, int]], list[int]]:
        """(timers, tasks): up to ``limit`` timers whose fire time has come (store clock), as
        (run_id, seq), earliest first; and up to ``limit`` ids of activity tasks past their
        schedule-to-close deadline that nobody is running (no live lease), by id.

        A read, like :meth:`schedules_due`: it takes no write lock and commits
        nothing durable, so an engine polling for timers costs the store
        nothing while none is due. What it finds is a hint: the transaction
        that fires them (``Tx.take_due_timers``, ``Tx.take_overdue_tasks``)
        takes each again, so one another engine fired, or the run cancelled,
        meanwhile is not fired twice.
        """
        ...

    async def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        """A schedule's row, if it exists (a read: it locks nothing)."""
        ...

    async def list_schedules(self) -> list[ScheduleRow]:
        """Every schedule's row, by id (a read: it locks nothing)."""
        ...

    async def closed_among(self, run_ids: Sequence[str]) -> dict[str, RunRecord | None]:
        """Of the runs ``run_ids`` names, those no longer running, with their records, and those
        that do not exist (None); running runs are left out."""
        ...

    async def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run's row by run id or (for the latest run) workflow id."""
        ...

    async def list_runs(
        self, *, status: str | None, workflow: str | None, limit: int, offset: int,
        id_prefix: str | None = None, started_after: float | None = None, started_before: float | None = None,
        closed_after: float | None = None, closed_before: float | None = None,
        attributes: Mapping[str, str] | None = None, after: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (``created_at`` descending, then ``run_id`` ascending), with ``task_failure``.

        ``status="blocked"``: open runs whose workflow task's last attempt
        failed; ``status="running"``: the other open runs. ``id_prefix``
        keeps runs whose workflow id or run id starts with it
        (case-sensitive); ``started_after``/``started_before`` (seconds since
        the epoch) keep runs created at or after / before those times,
        ``closed_after``/``closed_before`` closed runs closed at or after /
        before them. ``attributes``: runs whose search attributes hold each
        of these stored forms (``retold.history.attributes``). ``after``
        (``created_at``, ``run_id``) of a run: only the runs that come after
        it in this order (a cursor: runs created meanwhile come before it).
        """
        ...

    async def purge(
        self, before: float, *, statuses: Sequence[str] | None, workflow: str | None, batch_size: int,
        dry_run: bool,
    ) -> PurgeReport:
        """Delete closed runs that closed before ``before`` (store clock) and what goes with them,
        in transactions of ``batch_size`` runs that never hold the writer long; never a running run."""
        ...
