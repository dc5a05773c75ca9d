"""A run's pending work, as ``describe()`` shows it: what the run waits for, and why it may be stuck."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import final

from .authoring import ActivityOptions
from .stores import LiveWorker, RunRecord, RunWork, Store

__all__ = [
    "PendingActivity", "PendingChild", "PendingSignal", "PendingTimer", "PendingWork", "describe_pending",
    "pending_work",
]

NOT_HOSTED = "no running worker hosts it"


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _when(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@final
@dataclass(frozen=True, slots=True)
class PendingActivity:
    """An activity the run has scheduled and not yet seen the outcome of.

    Attributes:
        seq: the event number of its ``ActivityScheduled``.
        activity: the activity's registered name.
        queue: the task queue it waits on.
        attempt: the attempt running now, or the next one.
        max_attempts: the retry policy's limit (None: no limit).
        scheduled_at: when the run scheduled it.
        started_at: when the running attempt started (None while none runs).
        next_retry_at: when the next attempt may start, while it waits out
            the backoff after a failed attempt (None otherwise).
        last_failure: the previous attempt's error, ``"Type: message"``.
        worker: the engine (``Engine.worker_id``) holding its lease, while an
            attempt runs.
        hosted: whether a running engine hosts this activity on this queue;
            False means nothing will run it until one starts.
    """

    seq: int
    activity: str
    queue: str
    attempt: int
    max_attempts: int | None
    scheduled_at: datetime
    started_at: datetime | None
    next_retry_at: datetime | None
    last_failure: str | None
    worker: str | None
    hosted: bool

    def waiting_for(self) -> str:
        """One line saying what the run waits for here, and why it may take long."""
        head = f"waiting for activity {self.activity!r} on queue {self.queue!r}"
        if self.worker is None and not self.hosted:
            return f"{head}: {NOT_HOSTED}"
        limit = f" of {self.max_attempts}" if self.max_attempts else ""
        if self.worker is not None:
            since = f" since {_when(self.started_at)}" if self.started_at else ""
            state = f"attempt {self.attempt}{limit} running on {self.worker}{since}"
        elif self.next_retry_at is not None:
            state = f"attempt {self.attempt}{limit} due at {_when(self.next_retry_at)}"
        else:
            state = f"attempt {self.attempt}{limit} not started yet"
        failed = f"; the last attempt failed: {self.last_failure}" if self.last_failure else ""
        return f"{head}: {state}{failed}"


@final
@dataclass(frozen=True, slots=True)
class PendingTimer:
    """A timer (``retold.sleep``, a timeout) that has not fired.

    Attributes:
        seq: the event number of its ``TimerStarted``.
        fire_at: when it is due.
    """

    seq: int
    fire_at: datetime


@final
@dataclass(frozen=True, slots=True)
class PendingChild:
    """A child run still running.

    Attributes:
        seq: the event number of its ``ChildWorkflowStarted`` in the parent.
        workflow: the child's workflow name.
        workflow_id: the child's workflow id.
        run_id: the child's run id.
    """

    seq: int | None
    workflow: str
    workflow_id: str
    run_id: str


@final
@dataclass(frozen=True, slots=True)
class PendingSignal:
    """A signal the run has received and not processed yet.

    Attributes:
        name: the signal's name.
        seq: its event number, if it is in the history already (None while
            it waits in the run's inbox for the step in flight to commit).
        received_at: when it was recorded in the history (None in the inbox).
    """

    name: str
    seq: int | None
    received_at: datetime | None


@final
@dataclass(frozen=True, slots=True)
class PendingWork:
    """What a running run waits for (empty for a finished run).

    Attributes:
        activities: scheduled activities without an outcome, by event number.
        timers: timers not fired, soonest first.
        children: child runs still running.
        signals: signals received and not processed yet, in order.
        waiting_for: one line per thing the run waits for, saying why it
            may be stuck (``"waiting for activity 'charge' on queue
            'default': no running worker hosts it"``).
    """

    activities: tuple[PendingActivity, ...] = ()
    timers: tuple[PendingTimer, ...] = ()
    children: tuple[PendingChild, ...] = ()
    signals: tuple[PendingSignal, ...] = ()
    waiting_for: tuple[str, ...] = field(default=())


def pending_work(work: RunWork, workflow: str, workers: Sequence[LiveWorker]) -> PendingWork:
    """The public form of a store's read, judged against the engines running now."""
    activities = []
    for row in work.activities:
        retry = ActivityOptions.from_json(row.options).retry
        waiting = row.owner is None and row.visible_at > work.now and (row.attempt > 1 or row.last_failure)
        failure = row.last_failure
        message = None
        if failure:
            kind, text = failure.type, failure.message
            message = text if not kind or text.startswith(kind) else f"{kind}: {text}"
        activities.append(PendingActivity(
            seq=row.seq, activity=row.activity, queue=row.queue, attempt=row.attempt,
            max_attempts=retry.max_attempts or None,
            scheduled_at=_dt(row.scheduled_at),
            started_at=None if row.started_at is None else _dt(row.started_at),
            next_retry_at=_dt(row.visible_at) if waiting else None,
            last_failure=message, worker=row.owner,
            hosted=any(w.hosting.runs_activity(row.queue, row.activity) for w in workers),
        ))
    # Store timers numbered 0 and -1 are the run's time limits (run and execution timeout), not awaits.
    timers = tuple(PendingTimer(t.seq, _dt(t.fire_at)) for t in work.timers if t.seq > 0)
    limits = sorted((t.fire_at, "run" if t.seq == 0 else "execution") for t in work.timers if t.seq <= 0)
    children = tuple(PendingChild(c.seq, c.workflow, c.workflow_id, c.run_id) for c in work.children)
    signals = tuple(PendingSignal(s.name, s.seq, None if s.at is None else _dt(s.at)) for s in work.signals)
    lines = [a.waiting_for() for a in activities]
    lines += [f"waiting for timer (event {t.seq}) due at {_when(t.fire_at)}" for t in timers]
    lines += [f"waiting for child workflow {c.workflow!r} (workflow id {c.workflow_id!r}, run {c.run_id})"
              for c in children]
    if work.workflow_task is not None:
        _, owner, attempts = work.workflow_task
        failed = f" ({attempts} failed attempts)" if attempts else ""
        if owner is not None:
            lines.append(f"its next step is running on {owner}")
        elif not any(workflow in w.hosting.workflows for w in workers):
            lines.append(f"waiting for workflow {workflow!r} to take its next step: {NOT_HOSTED}")
        else:
            lines.append(f"waiting for a worker to take its next step{failed}")
    if signals:
        names = ", ".join(repr(s.name) for s in signals[:5]) + (", ..." if len(signals) > 5 else "")
        lines.append(f"{len(signals)} signal{'s' if len(signals) > 1 else ''} not processed yet: {names}")
    if not lines:
        lines.append("waiting for a signal or a cancel request (no activity, timer or child is pending)")
    lines += [f"times out ({kind} timeout) at {_when(_dt(at))}" for at, kind in limits]
    return PendingWork(tuple(activities), timers, children, signals, tuple(lines))


async def describe_pending(store: Store, record: RunRecord, here: LiveWorker | None = None) -> PendingWork:
    """What the run waits for, judged against the engines running now (empty once it has finished).

    ``here`` is the calling engine, if it runs workers: it counts even when
    its registration looks stale (a test clock that jumped ahead, say).
    """
    if record.status != "running":
        return PendingWork()
    work = await store.pending_work(record.run_id)
    workers = await store.live_workers()
    if here is not None and all(w.worker_id != here.worker_id for w in workers):
        workers.append(here)
    return pending_work(work, record.workflow, workers)
