"""The errors of configuration, runs, stores and replay (re-exported by :mod:`retold.errors`)."""

from __future__ import annotations

from typing import Any, final


class RetoldError(Exception):
    """Root of every exception retold raises."""

    @property
    def cause(self) -> BaseException | None:
        """The failure this one wraps (``__cause__``): for a failed run, the
        workflow's own error; for an :class:`ActivityError`, the activity's."""
        return self.__cause__


@final
class ConfigurationError(RetoldError):
    """The engine, a decorator or an option was configured wrongly."""


@final
class NotRegisteredError(RetoldError):
    """A workflow or activity is not registered with the engine."""

    def __init__(self, kind: str, name: str, where: str = "this engine") -> None:
        self.kind = kind
        self.name = name
        self.where = where
        super().__init__(f"{kind} {name!r} is not registered with {where}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.name, self.where))


@final
class InvalidArgumentsError(RetoldError):
    """Arguments do not match the workflow's or activity's signature."""


@final
class PayloadError(RetoldError):
    """A value could not be encoded or decoded by the codec."""


@final
class RunNotFoundError(RetoldError):
    """No run (or workflow id) with this id exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id,))


@final
class ScheduleNotFoundError(RetoldError):
    """No schedule with this id exists in the store."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"no schedule with id {schedule_id!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.schedule_id,))


@final
class RunFinishedError(RetoldError):
    """A signal or cancel was sent to a run that has already finished."""

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"run {run_id!r} has already finished ({status})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.status))


@final
class SignalBufferFullError(RetoldError):
    """The run has too many signals it has not seen yet; this one was not recorded.

    A run takes in signals as fast as its workflow tasks run; past the
    store's ``max_pending_signals`` unseen signals, senders are refused
    (nothing is written) until the run catches up. Also raised (``closing``)
    while a run decides again whether to close, because signals reached it
    during the step that closed it: that decision must not be refused
    forever. Retry later.
    """

    def __init__(self, run_id: str, limit: int, closing: bool = False) -> None:
        self.run_id = run_id
        self.limit = limit
        self.closing = closing
        if closing:
            super().__init__(
                f"run {run_id!r} is deciding again whether to close (signals reached it during its closing "
                "step): this signal was not recorded; send it again later (RunFinishedError if the run closed)"
            )
            return
        super().__init__(
            f"run {run_id!r} already has {limit} signals it has not processed yet "
            "(the store's max_pending_signals): this signal was not recorded; send it again later"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.limit, self.closing))


@final
class QueryError(RetoldError):
    """The query is unknown to the run, or its handler raised."""


@final
class UpdateRejectedError(RetoldError):
    """The run has no handler for the update, or its validator raised: nothing was recorded."""


@final
class UpdateFailedError(RetoldError):
    """The update's handler raised (its error is the cause), or the run closed before the handler finished."""


@final
class UpdateTimeoutError(RetoldError, TimeoutError):
    """The update was accepted but its handler had not finished when the wait ended; fetch its result later."""

    def __init__(self, workflow_id: str, update_id: str, timeout: float) -> None:
        self.workflow_id = workflow_id
        self.update_id = update_id
        self.timeout = timeout
        super().__init__(f"update {update_id!r} of workflow id {workflow_id!r} was accepted and had not finished "
                         f"after {timeout:g} s: ask for its result again with run.update_result({update_id!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.workflow_id, self.update_id, self.timeout))


@final
class IdempotencyError(RetoldError):
    """A workflow id or idempotency key was reused for a different start."""


class StoreError(RetoldError):
    """The store failed or cannot be used; the driver error is chained."""


@final
class SchemaError(StoreError):
    """The database is not a retold database, or its schema is too new."""


@final
class ConflictError(StoreError):
    """The run's last event number moved under a workflow task."""

    def __init__(self, run_id: str, expected_seq: int) -> None:
        self.run_id = run_id
        self.expected_seq = expected_seq
        super().__init__(f"run {run_id!r} moved past event {expected_seq}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.expected_seq))


@final
class LeaseLostError(StoreError):
    """A worker's lease on a task ran out and the task now belongs to another.

    Its work is refused rather than committed over the new owner's.

    Attributes:
        run_id: the run whose workflow task it was.
        owner: the worker that lost the lease.
        holder: the worker holding it now (None: nobody, the task is gone).
    """

    def __init__(self, run_id: str, owner: str, holder: str | None) -> None:
        self.run_id = run_id
        self.owner = owner
        self.holder = holder
        now = f"is held by {holder}" if holder else "is no longer pending"
        super().__init__(f"{owner} lost its lease on run {run_id!r}: its workflow task {now}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.owner, self.holder))


@final
class NondeterminismError(RetoldError):
    """Workflow code produced a command that differs from the recorded history.

    Attributes:
        workflow: the workflow's registered name.
        run_id: the run being replayed.
        seq: the event number where replay diverged.
        recorded: a description of the recorded event (or ``"nothing"``).
        requested: a description of the command the code produced.
    """

    def __init__(
        self, workflow: str, run_id: str, seq: int, recorded: str, requested: str
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.seq = seq
        self.recorded = recorded
        self.requested = requested
        super().__init__(
            f"workflow {workflow!r} run {run_id!r} diverged from its history at "
            f"event {seq}: recorded {recorded}, but the code requested {requested}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.workflow, self.run_id, self.seq, self.recorded, self.requested)
        return (type(self), args)


@final
class HistoryFormatError(RetoldError, ValueError):
    """A history document (JSON export) that cannot be loaded; the message says why."""


@final
class WorkflowSandboxError(RetoldError):
    """Workflow code called something that reaches the outside world."""

    def __init__(self, call: str, hint: str = "") -> None:
        self.call = call
        self.hint = hint
        message = f"workflow code must not call {call}: it is not deterministic"
        super().__init__(f"{message}; {hint}" if hint else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.call, self.hint))


@final
class WorkflowDeadlockError(RetoldError):
    """A workflow step ran longer than the engine's deadlock limit without yielding.

    The step (a loop without ``await``, CPU-bound code) was interrupted and
    its workflow task failed; the message holds the stack where it was stuck.

    Attributes:
        run_id: the run whose step was stuck.
        limit: the limit in seconds (``Engine(deadlock_timeout=...)``).
        stack: the stack of the stuck step, innermost call last.
    """

    def __init__(self, run_id: str, limit: float, stack: str) -> None:
        self.run_id = run_id
        self.limit = limit
        self.stack = stack
        super().__init__(
            f"workflow task of run {run_id!r} deadlocked: the workflow code did not yield within "
            f"{limit:g} s (a loop without await, or CPU-bound code: run that in an activity, or "
            f"raise Engine(deadlock_timeout=...)); it was stuck at:\n{stack}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.limit, self.stack))
