"""Failures as data: an exception as the history records it (a :class:`Failure`), and back."""

from __future__ import annotations

import traceback

from ..history.failure import FailedActivity, FailedChild, Failure
from ._base import RetoldError
from ._outcomes import ActivityError, ApplicationError, ChildWorkflowError

_CAUSE_DEPTH = 8


def failure_from_exception(exc: BaseException, *, non_retryable: bool = False) -> Failure:
    """Describe an exception as a :class:`Failure`, its cause chain included.

    ``type`` is the qualified class name (an ``ApplicationError``'s own
    ``type``), ``cause`` the same for ``__cause__`` (if any);
    :class:`ActivityError` and :class:`ChildWorkflowError` keep their fields
    so that :func:`exception_from_failure` rebuilds them.
    """
    return _failure(exc, non_retryable, _CAUSE_DEPTH, 8000)


def _failure(exc: BaseException, non_retryable: bool, depth: int, room: int) -> Failure:
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
    activity = child = None
    if isinstance(exc, ActivityError):
        activity = FailedActivity(exc.activity, exc.seq, exc.timed_out)
    elif isinstance(exc, ChildWorkflowError):
        child = FailedChild(exc.workflow, exc.workflow_id, exc.status)
    cause = exc.__cause__
    return Failure(
        type=type_name, message=message, details=details[-room:], non_retryable=non_retryable,
        activity=activity, child=child,
        cause=_failure(cause, False, depth - 1, 2000) if cause is not None and depth > 0 else None,
    )


def exception_from_failure(failure: Failure) -> RetoldError:
    """Rebuild a recorded failure (see :func:`failure_from_exception`).

    An activity's or child's failure comes back as :class:`ActivityError` or
    :class:`ChildWorkflowError`, anything else as an :class:`ApplicationError`
    carrying the original type name and message; causes are chained.
    """
    cause = exception_from_failure(failure.cause) if failure.cause is not None else None
    error: RetoldError
    if failure.activity is not None:
        a = failure.activity
        error = ActivityError(a.name, a.seq, timed_out=a.timed_out, cause=cause)
    elif failure.child is not None:
        c = failure.child
        error = ChildWorkflowError(c.workflow, c.workflow_id, c.status, cause=cause)
    else:
        error = ApplicationError(
            failure.message, type=failure.type or None, non_retryable=failure.non_retryable, details=failure.details,
        )
        if cause is not None:
            error.__cause__ = cause
    return error
