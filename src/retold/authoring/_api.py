"""Functions workflow code calls: activities, timers, signals, queries, determinism."""

from __future__ import annotations

import asyncio
import inspect
import sys
import uuid as _uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Generic, NoReturn, TypeVar, TypeVarTuple, final, overload

from ..errors import ConfigurationError, RetoldError
from ._decorators import Activity, Workflow
from ._options import ActivityOptions, RetryPolicy, duration, seconds
from ._runtime import ContinueAsNew, WorkflowInfo, WorkflowRuntime, current

__all__ = [
    "ChildHandle",
    "continue_as_new",
    "execute",
    "execute_child",
    "info",
    "now",
    "patched",
    "random",
    "set_query_handler",
    "side_effect",
    "sleep",
    "start_child",
    "uuid4",
    "wait_signal",
]

R = TypeVar("R")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _seconds(value: timedelta | float | None, what: str) -> float | None:
    """Seconds of a duration given as a timedelta or a number (ConfigurationError otherwise)."""
    return seconds(duration(value, what))


def _tracked(call: str, runtime: WorkflowRuntime, coro: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    """Hand ``coro`` back, remembered so that a forgotten ``await`` fails the workflow task."""
    runtime.track_call(coro, call, _caller_of_caller())
    return coro


def _caller_of_caller() -> str:
    """``file:line`` of the workflow code that called the retold function calling this."""
    frame = sys._getframe(3)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _refuse_awaitables(runtime: WorkflowRuntime, call: str, args: tuple[Any, ...]) -> None:
    for i, value in enumerate(args):
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            error = RetoldError(
                f"{call} at {_caller_of_caller()}: argument {i + 1} is an awaitable "
                f"({type(value).__name__}), not a value: add `await` where it is made"
            )
            runtime.fail_task(error)
            raise error


def execute(
    activity: Activity[*Ts, R],
    *args: *Ts,
    retry: RetryPolicy | None = None,
    start_to_close: timedelta | float | None = None,
    schedule_to_close: timedelta | float | None = None,
    heartbeat_timeout: timedelta | float | None = None,
    task_queue: str | None = None,
) -> Coroutine[Any, Any, R]:
    """Run an activity and return its result, recorded in the history.

    Keyword options override the ones given to ``@retold.activity`` for
    this call only.

    Raises:
        ActivityError: the activity failed or timed out after its retries;
            the failure is the ``__cause__``.
    """
    if not isinstance(activity, Activity):
        name = getattr(activity, "__qualname__", None) or repr(activity)
        raise ConfigurationError(
            f"retold.execute() needs an activity, got {name!r}, which is not one: "
            f"decorate it with @retold.activity and pass it to Engine(activities=[...])"
        )
    runtime = current("execute")
    _refuse_awaitables(runtime, "retold.execute()", tuple(args))
    options = activity.options.merge(
        retry=retry,
        start_to_close=start_to_close,
        schedule_to_close=schedule_to_close,
        heartbeat_timeout=heartbeat_timeout,
        task_queue=task_queue,
    )
    return _tracked("retold.execute()", runtime, _execute(runtime, activity, tuple(args), options))


async def _execute(
    runtime: WorkflowRuntime, activity: Activity[*Ts, R], args: tuple[Any, ...], options: ActivityOptions
) -> R:
    result: R = await runtime.execute_activity(activity, args, options)
    return result


@final
class ChildHandle(Generic[R]):
    """A started child workflow; await it (or :meth:`result`) for its result."""

    def __init__(self, workflow_id: str, future: asyncio.Future[R]) -> None:
        self.workflow_id = workflow_id
        self._future = future

    async def result(self) -> R:
        """Wait for the child to finish and return its result.

        Raises:
            ChildWorkflowError: the child failed or was cancelled.
        """
        return await self._future

    def __await__(self) -> Any:
        return self._future.__await__()


def start_child(
    workflow: Workflow[*Ts, R], *args: *Ts, id: str | None = None  # noqa: A002 - the public name
) -> ChildHandle[R]:
    """Start a child workflow and return its handle without waiting.

    Args:
        workflow: the child's workflow definition.
        *args: its arguments.
        id: its workflow id; by default derived from this run's id.
    """
    _check_workflow("retold.start_child()", workflow)
    runtime = current("start_child")
    _refuse_awaitables(runtime, "retold.start_child()", tuple(args))
    workflow_id, future = runtime.start_child(workflow, tuple(args), id)
    return ChildHandle(workflow_id, future)


def _check_workflow(call: str, workflow: object) -> None:
    if not isinstance(workflow, Workflow):
        name = getattr(workflow, "__qualname__", None) or repr(workflow)
        raise ConfigurationError(
            f"{call} needs a workflow, got {name!r}, which is not one: "
            f"decorate it with @retold.workflow and pass it to Engine(workflows=[...])"
        )


def execute_child(
    workflow: Workflow[*Ts, R], *args: *Ts, id: str | None = None  # noqa: A002 - the public name
) -> Coroutine[Any, Any, R]:
    """Start a child workflow and wait for its result."""
    _check_workflow("retold.execute_child()", workflow)
    runtime = current("execute_child")
    return _tracked("retold.execute_child()", runtime, _execute_child(workflow, tuple(args), id))


async def _execute_child(workflow: Workflow[*Ts, R], args: tuple[Any, ...], workflow_id: str | None) -> R:
    handle: ChildHandle[R] = start_child(workflow, *args, id=workflow_id)
    return await handle.result()


def sleep(duration: timedelta | float) -> Coroutine[Any, Any, None]:
    """Sleep durably: the timer survives crashes and restarts.

    ``await asyncio.sleep(seconds)`` in workflow code does the same.
    ``duration`` is a timedelta or a number of seconds.
    """
    seconds = _seconds(duration, "sleep duration")
    runtime = current("sleep")
    return _tracked("retold.sleep()", runtime, asyncio.sleep(seconds or 0))


@overload
def wait_signal(
    name: str, *, timeout: timedelta | float | None = None
) -> Coroutine[Any, Any, Any]: ...
@overload
def wait_signal(
    name: str, type: type[T], *, timeout: timedelta | float | None = None
) -> Coroutine[Any, Any, T | None]: ...
def wait_signal(
    name: str, type: Any = Any, *, timeout: timedelta | float | None = None  # noqa: A002
) -> Coroutine[Any, Any, Any]:
    """Wait for the next signal called ``name`` and return its value.

    Signals that arrive before anyone waits are buffered in arrival order.

    Args:
        name: the signal's name.
        type: the type to decode the value into (default: plain JSON data).
        timeout: give up after this long (a durable timer) and return None.
    """
    seconds = _seconds(timeout, "wait_signal timeout")
    runtime = current("wait_signal")
    return _tracked("retold.wait_signal()", runtime, _wait_signal(runtime, name, type, seconds))


async def _wait_signal(runtime: WorkflowRuntime, name: str, type_: Any, seconds: float | None) -> Any:
    return await runtime.wait_signal(name, type_, seconds)


def set_query_handler(name: str, handler: Callable[..., Any] | None) -> None:
    """Answer queries called ``name`` with ``handler(*args)``; None removes it.

    Handlers must only read workflow state: they run on the replayed state
    and never write history.
    """
    current("set_query_handler").set_query_handler(name, handler)


def now() -> datetime:
    """Workflow time: an aware UTC datetime taken from the history."""
    return current("now").now()


def random() -> float:
    """A random float in [0, 1) that replays identically."""
    return current("random").rng().random()


def uuid4() -> _uuid.UUID:
    """A random UUID that replays identically."""
    return _uuid.UUID(int=current("uuid4").rng().getrandbits(128), version=4)


@overload
def side_effect(fn: Callable[[], Coroutine[Any, Any, Any]]) -> NoReturn: ...
@overload
def side_effect(fn: Callable[[], T], type: type[T] | None = None) -> T: ...
def side_effect(fn: Callable[[], Any], type: Any = None) -> Any:  # noqa: A002
    """Run ``fn`` once and record its value; replays return the recorded value.

    For quick, local, non-deterministic reads (a clock, an id from the OS).
    Anything that can fail or take time belongs in an activity.
    """
    if asyncio.iscoroutinefunction(fn):
        raise TypeError("side_effect() takes a plain function; use an activity for async work")
    runtime = current("side_effect")
    return runtime.side_effect(fn, Any if type is None else type)


def patched(patch_id: str) -> bool:
    """Whether this run takes the new code path named ``patch_id``.

    New runs (and runs that reach this point after the deploy) get True and
    record the choice; runs that passed this point under the old code get
    False on replay. Keep the old branch until no such run is left.
    """
    if not patch_id:
        raise ValueError("patch_id must not be empty")
    return current("patched").patched(patch_id)


def continue_as_new(*args: Any) -> NoReturn:
    """End this run and start a fresh one of the same workflow with ``args``.

    The new run keeps the workflow id and starts with an empty history.
    """
    current("continue_as_new")
    raise ContinueAsNew(args)


def info() -> WorkflowInfo:
    """Facts about the running workflow: name, workflow id, run id."""
    return current("info").info()
