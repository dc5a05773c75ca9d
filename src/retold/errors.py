"""Every public exception retold raises.

The tree::

    RetoldError
    ├── ConfigurationError          bad engine or decorator configuration
    ├── NotRegisteredError          a workflow or activity the engine does not host
    ├── InvalidArgumentsError       wrong argument count or types for a workflow
    ├── PayloadError                a value the codec cannot encode or decode
    ├── RunNotFoundError            no run with that id
    ├── RunFinishedError            signal or cancel sent to a finished run
    ├── QueryError                  unknown query name, or the handler raised
    ├── IdempotencyError            same id or key, different workflow or input
    ├── StoreError                  the database failed or is not usable
    │   ├── SchemaError             not a retold database, or a newer schema
    │   ├── ConflictError           the run moved on under a workflow task
    │   └── LeaseLostError          another worker holds the task now
    ├── NondeterminismError         replay diverged from the recorded history
    ├── HistoryFormatError          a history document that is not valid
    ├── WorkflowSandboxError        workflow code reached the outside world
    ├── WorkflowDeadlockError       a workflow step did not yield within the limit
    ├── ActivityError               an activity failed after its retries
    ├── ChildWorkflowError          a child workflow failed or was cancelled
    ├── WorkflowFailedError         awaiting the result of a failed run
    │   ├── WorkflowCancelledError  awaiting the result of a cancelled run
    │   ├── WorkflowTerminatedError awaiting the result of a terminated run
    │   └── WorkflowTimedOutError   awaiting the result of a run closed by its run or execution timeout
    └── ResultTimeoutError          result(timeout=...) gave up first (also a TimeoutError)

``ApplicationError`` is not an error retold raises on its own: activities and
workflows raise it to mark a failure as non-retryable, and retold uses it to
carry a remote failure (type name, message, traceback) across processes.
"""

from __future__ import annotations

import traceback
from typing import Any, final

__all__ = [
    "ActivityError",
    "ApplicationError",
    "ChildWorkflowError",
    "ConfigurationError",
    "ConflictError",
    "HistoryFormatError",
    "IdempotencyError",
    "InvalidArgumentsError",
    "LeaseLostError",
    "NondeterminismError",
    "NotRegisteredError",
    "PayloadError",
    "QueryError",
    "ResultTimeoutError",
    "RetoldError",
    "RunFinishedError",
    "RunNotFoundError",
    "SchemaError",
    "SignalBufferFullError",
    "StoreError",
    "UpdateFailedError",
    "UpdateRejectedError",
    "UpdateTimeoutError",
    "WorkflowCancelledError",
    "WorkflowFailedError",
    "WorkflowDeadlockError",
    "WorkflowSandboxError",
    "WorkflowTerminatedError",
    "WorkflowTimedOutError",
]


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


class ApplicationError(RetoldError):
    """A failure raised by user code, possibly from another process.

    Raise it from an activity with ``non_retryable=True`` to stop retries.
    When an activity or child workflow fails, the workflow sees its failure as
    an ``ApplicationError`` whose ``type`` is the original exception's
    qualified class name.

    Attributes:
        message: the error message.
        type: the original exception's qualified type name.
        non_retryable: whether retry policies must stop at this failure.
        details: the original traceback text, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,  # noqa: A002 - mirrors the recorded field name
        non_retryable: bool = False,
        details: str = "",
    ) -> None:
        self.message = message
        self.type = type or "ApplicationError"
        self.non_retryable = non_retryable
        self.details = details
        super().__init__(message)

    def __str__(self) -> str:
        if self.type == "ApplicationError":
            return self.message
        return f"{self.type}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_application_error, (
            type(self), self.message, self.type, self.non_retryable, self.details
        ))


def _rebuild_application_error(
    cls: type[ApplicationError], message: str, type_: str, nr: bool, details: str
) -> ApplicationError:
    return cls(message, type=type_, non_retryable=nr, details=details)


@final
class ActivityError(RetoldError):
    """An activity failed (or timed out) after its retry policy gave up.

    The original failure is :attr:`cause` (an ``ApplicationError`` whose
    ``type`` and ``message`` are the activity's exception's); the message
    ends with it: ``activity 'charge' (event 2) failed: ValueError: declined``.

    Attributes:
        activity: the activity's registered name.
        seq: the event number of its ``ActivityScheduled`` event.
        timed_out: whether it ended by a timeout rather than an error.
    """

    def __init__(
        self, activity: str, seq: int, *, timed_out: bool = False, cause: BaseException | None = None
    ) -> None:
        self.activity = activity
        self.seq = seq
        self.timed_out = timed_out
        how = "timed out" if timed_out else "failed"
        root = f": {cause}" if cause is not None else ""
        super().__init__(f"activity {activity!r} (event {seq}) {how}{root}")
        if cause is not None:
            self.__cause__ = cause

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_activity_error, (self.activity, self.seq, self.timed_out, self.__cause__))


def _rebuild_activity_error(
    activity: str, seq: int, timed_out: bool, cause: BaseException | None = None
) -> ActivityError:
    return ActivityError(activity, seq, timed_out=timed_out, cause=cause)


@final
class ChildWorkflowError(RetoldError):
    """A child workflow failed or was cancelled; its failure is :attr:`cause`
    and ends the message."""

    def __init__(
        self, workflow: str, workflow_id: str, status: str, *, cause: BaseException | None = None
    ) -> None:
        self.workflow = workflow
        self.workflow_id = workflow_id
        self.status = status
        root = f": {cause}" if cause is not None else ""
        super().__init__(f"child workflow {workflow!r} ({workflow_id}) {status}{root}")
        if cause is not None:
            self.__cause__ = cause

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_child_error, (self.workflow, self.workflow_id, self.status, self.__cause__))


def _rebuild_child_error(
    workflow: str, workflow_id: str, status: str, cause: BaseException | None = None
) -> ChildWorkflowError:
    return ChildWorkflowError(workflow, workflow_id, status, cause=cause)


class WorkflowFailedError(RetoldError):
    """The run ended in failure; the failure is chained as ``__cause__``."""

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, str(self)))


@final
class WorkflowCancelledError(WorkflowFailedError):
    """The run was cancelled."""


@final
class WorkflowTerminatedError(WorkflowFailedError):
    """The run was terminated (closed from outside, without running its code)."""


# The failure type a terminated run records, and its parent's child failure carries.
TERMINATED_TYPE = "retold.WorkflowTerminatedError"


@final
class WorkflowTimedOutError(WorkflowFailedError):
    """The run was closed by its run timeout or execution timeout (``with_options(run_timeout=...)``)."""


# The failure type a timed-out run records, and its parent's child failure carries.
TIMED_OUT_TYPE = "retold.WorkflowTimedOutError"


class ResultTimeoutError(RetoldError, TimeoutError):
    """``result(timeout=...)`` gave up before the run finished; the message says what the run waits for.

    Attributes:
        run_id: the run waited for.
        workflow_id: its workflow id.
        timeout: the seconds waited.
        waiting_for: what the run was waiting for then, one line each (as
            :attr:`PendingWork.waiting_for <retold.PendingWork.waiting_for>`).
    """

    def __init__(self, run_id: str, workflow_id: str, timeout: float, waiting_for: tuple[str, ...]) -> None:
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.timeout = timeout
        self.waiting_for = tuple(waiting_for)
        what = "; ".join(self.waiting_for) or "its state could not be read"
        super().__init__(f"run {run_id} (workflow id {workflow_id!r}) did not finish within {timeout:g} s: {what}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.workflow_id, self.timeout, self.waiting_for))


# -- failures as data: what the history records, and back ---------------------------

_CAUSE_DEPTH = 8


def failure_from_exception(exc: BaseException, *, non_retryable: bool = False) -> dict[str, Any]:
    """Describe an exception as JSON-ready failure data, its cause chain included.

    ``type`` is the qualified class name (an ``ApplicationError``'s own
    ``type``), ``cause`` the same data for ``__cause__`` (if any);
    :class:`ActivityError` and :class:`ChildWorkflowError` keep their fields
    so that :func:`exception_from_failure` rebuilds them.
    """
    return _failure(exc, non_retryable, _CAUSE_DEPTH, 8000)


def _failure(exc: BaseException, non_retryable: bool, depth: int, room: int) -> dict[str, Any]:
    if isinstance(exc, ApplicationError):
        type_name = exc.type
        message = exc.message
        non_retryable = non_retryable or exc.non_retryable
        details = exc.details or "".join(traceback.format_exception(exc))
    else:
        cls = type(exc)
        module = cls.__module__
        type_name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
        message = str(exc)
        details = "".join(traceback.format_exception(exc))
    failure: dict[str, Any] = {
        "type": type_name,
        "message": message,
        "details": details[-room:],
        "non_retryable": non_retryable,
    }
    if isinstance(exc, ActivityError):
        failure["activity"] = {"name": exc.activity, "seq": exc.seq, "timed_out": exc.timed_out}
    elif isinstance(exc, ChildWorkflowError):
        failure["child"] = {"workflow": exc.workflow, "workflow_id": exc.workflow_id, "status": exc.status}
    cause = exc.__cause__
    if cause is not None and depth > 0:
        failure["cause"] = _failure(cause, False, depth - 1, 2000)
    return failure


def exception_from_failure(failure: dict[str, Any]) -> RetoldError:
    """Rebuild recorded failure data (see :func:`failure_from_exception`).

    An activity's or child's failure comes back as :class:`ActivityError` or
    :class:`ChildWorkflowError`, anything else as an :class:`ApplicationError`
    carrying the original type name and message; causes are chained.
    """
    data = failure.get("cause")
    cause = exception_from_failure(data) if isinstance(data, dict) else None
    activity = failure.get("activity")
    child = failure.get("child")
    error: RetoldError
    if isinstance(activity, dict):
        error = ActivityError(
            str(activity.get("name")), int(activity.get("seq", 0)),
            timed_out=bool(activity.get("timed_out")), cause=cause,
        )
    elif isinstance(child, dict):
        error = ChildWorkflowError(
            str(child.get("workflow")), str(child.get("workflow_id")), str(child.get("status")), cause=cause
        )
    else:
        error = ApplicationError(
            failure.get("message", ""),
            type=failure.get("type"),
            non_retryable=bool(failure.get("non_retryable")),
            details=failure.get("details", ""),
        )
        if cause is not None:
            error.__cause__ = cause
    return error
