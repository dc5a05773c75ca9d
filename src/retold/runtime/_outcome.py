"""Futures of a run's requests, and how workflow code's escapes are told apart."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import ApplicationError
from . import _guard
from ._loop import WorkflowFuture, WorkflowLoop

__all__ = ["Interrupted", "Outcome", "close_value", "escaped", "never_started", "unguarded"]


def never_started(coro: Coroutine[Any, Any, Any]) -> bool:
    return inspect.getcoroutinestate(coro) == inspect.CORO_CREATED


def close_value(value: Any) -> None:
    close = getattr(value, "close", None)
    if inspect.iscoroutine(value) and close is not None:
        close()  # no "never awaited" warning on top of the error

class Interrupted(SystemExit):
    """Raised inside a step's thread by the engine's deadlock limit (see retold.engine._steps).

    A SystemExit, so that asyncio's tasks and handles let it through to the
    step's caller instead of storing it as a task's outcome.
    """


def escaped(exc: BaseException) -> ApplicationError:
    """A BaseException raised by workflow code, as the workflow task's failure."""
    name = type(exc).__qualname__
    error = ApplicationError(
        f"workflow code raised {name}{exc.args!r}: a workflow must not exit or interrupt its worker "
        f"process; return, or raise an Exception to fail the run",
        type=name if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{name}",
        non_retryable=True,
        details="".join(traceback.format_exception(exc))[-8000:],
    )
    error.__cause__ = exc
    return error


class Outcome(WorkflowFuture[Any]):
    """The future of an activity or child: cancelling it records the request.

    ``on_cancel(msg)`` records it and says whether the wait ends now (an
    activity) or goes on until the outcome arrives (a child, until it closes).
    """

    def __init__(self, loop: WorkflowLoop, on_cancel: Callable[[Any], bool]) -> None:
        # Hashed by creation order, like every future of the workflow loop.
        super().__init__(loop=loop, order=loop.next_order())
        self._on_cancel = on_cancel

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        if self._on_cancel(msg):
            return super().cancel(msg)
        return True  # asked: the awaiting task keeps waiting for the outcome

    def end_cancelled(self, msg: str) -> None:
        """End the wait with ``CancelledError`` (the child closed cancelled)."""
        super().cancel(msg)


class unguarded:  # noqa: N801 - used like a function
    """Lift the sandbox for a side effect's function."""

    def __enter__(self) -> None:
        self._previous = getattr(_guard._state, "active", False)
        _guard._state.active = False

    def __exit__(self, *exc: object) -> None:
        _guard._state.active = self._previous
