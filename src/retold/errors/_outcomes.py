"""The errors of failed activities, children and runs (re-exported by :mod:`retold.errors`)."""

from __future__ import annotations

from typing import Any, final

from ._base import RetoldError


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
