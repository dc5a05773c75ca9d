"""Functions workflow code calls: activities, timers, signals, queries, determinism."""

from __future__ import annotations

import asyncio
import inspect
import sys
import uuid as _uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar, final, overload

from ..errors import ConfigurationError, RetoldError
from ..history.attributes import SearchAttributeValue, encode_attributes
from ._decorators import Activity, Workflow
from ._options import duration, seconds
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
    "set_update_handler",
    "update_handler",
    "side_effect",
    "sleep",
    "start_child",
    "uuid4",
    "wait_signal",
]

R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")


def _seconds(value: timedelta | float | None, what: str) -> float | None:
    """Seconds of a duration given as a timedelta or a number (ConfigurationError otherwise)."""
    return seconds(duration(value, what))


def _site() -> str:
    """``file:line`` of the workflow code calling the public function that calls this."""
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _tracked(
    call: str, where: str, runtime: WorkflowRuntime, coro: Coroutine[Any, Any, T]
) -> Coroutine[Any, Any, T]:
    """Hand ``coro`` back, remembered so that a forgotten ``await`` fails the workflow task."""
    runtime.track_call(coro, call, where)
    return coro


def _refuse_awaitables(
    runtime: WorkflowRuntime, call: str, where: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    named = [(f"argument {i + 1}", v) for i, v in enumerate(args)] + [(f"argument {k!r}", v) for k, v in kwargs.items()]
    for what, value in named:
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            error = RetoldError(
                f"{call} at {where}: {what} is an awaitable ({type(value).__name__}), not a value: "
                f"add `await` where it is made"
            )
            runtime.fail_task(error)
            raise error


def execute(activity: Activity[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
    """Run an activity and return its result, recorded in the history.

    mypy checks the arguments against the activity's signature (positional,
    keyword, keyword-only, defaults) and types the result. To change the
    decorator's options for one call, pass ``activity.with_options(...)``::

        receipt = await retold.execute(charge.with_options(start_to_close=30), order_id, cents=500)

    Raises:
        ActivityError: the activity failed or timed out after its retries;
            the failure is its ``cause``.
    """
    if not isinstance(activity, Activity):
        name = getattr(activity, "__qualname__", None) or repr(activity)
        raise ConfigurationError(
            f"retold.execute() needs an activity, got {name!r}, which is not one: "
            f"decorate it with @retold.activity and pass it to Engine(activities=[...])"
        )
    runtime = current("execute")
    where = _site()
    _refuse_awaitables(runtime, "retold.execute()", where, args, kwargs)
    return _tracked("retold.execute()", where, runtime, _execute(runtime, activity, args, kwargs))


async def _execute(
    runtime: WorkflowRuntime, activity: Activity[P, R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> R:
    result: R = await runtime.execute_activity(activity, args, kwargs, activity.options)
    return result


@final
class ChildHandle(Generic[R]):
    """A started child workflow; await it (or :meth:`result`) for its result.

    Attributes:
        workflow_id: the child's workflow id.
    """

    def __init__(self, workflow_id: str, future: asyncio.Future[R]) -> None:
        self.workflow_id: str = workflow_id
        self._future = future

    async def result(self) -> R:
        """Wait for the child to finish and return its result.

        Raises:
            ChildWorkflowError: the child failed or was cancelled.
        """
        return await self._future

    def __await__(self) -> Generator[Any, None, R]:
        return self._future.__await__()


def start_child(workflow: Workflow[P, R], /, *args: P.args, **kwargs: P.kwargs) -> ChildHandle[R]:
    """Start a child workflow and return its handle without waiting.

    The arguments are checked against the child's signature, as for
    ``retold.execute``. Its workflow id is derived from this run's unless
    given with ``workflow.with_options(id=...)``.
    """
    _check_workflow("retold.start_child()", workflow)
    return _start_child(workflow, args, kwargs, _site())


def _start_child(
    workflow: Workflow[P, R], args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> ChildHandle[R]:
    runtime = current("start_child")
    _refuse_awaitables(runtime, "retold.start_child()", where, args, kwargs)
    workflow_id, future = runtime.start_child(workflow, args, kwargs, workflow.id)
    return ChildHandle(workflow_id, future)


def _check_workflow(call: str, workflow: object) -> None:
    if not isinstance(workflow, Workflow):
        name = getattr(workflow, "__qualname__", None) or repr(workflow)
        raise ConfigurationError(
            f"{call} needs a workflow, got {name!r}, which is not one: "
            f"decorate it with @retold.workflow and pass it to Engine(workflows=[...])"
        )


def execute_child(workflow: Workflow[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
    """Start a child workflow and wait for its result (see :func:`start_child`)."""
    _check_workflow("retold.execute_child()", workflow)
    runtime = current("execute_child")
    where = _site()
    return _tracked("retold.execute_child()", where, runtime, _execute_child(workflow, args, kwargs, where))


async def _execute_child(
    workflow: Workflow[P, R], args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> R:
    return await _start_child(workflow, args, kwargs, where)


def start_workflow(workflow: Workflow[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, str]:
    """Start another workflow as a run of its own, not a child; return its run id once it is recorded.

    The new run has no parent: it is not cancelled when this run closes, and
    its outcome is not reported here (use ``retold.signal_workflow``, or a
    client's ``get_handle``, to reach it). Its id is ``workflow.with_options(id=...)``'s,
    or one derived from this run's. The start is a command in this run's
    history, made once: a replay, a crash or another engine never starts a
    second run. Raises ``retold.IdempotencyError`` if the id is in use.
    """
    _check_workflow("retold.start_workflow()", workflow)
    runtime = current("start_workflow")
    where = _site()
    _refuse_awaitables(runtime, "retold.start_workflow()", where, args, kwargs)
    future = runtime.start_workflow(workflow, args, kwargs, workflow.id)
    return _tracked("retold.start_workflow()", where, runtime, _await_start(future))


async def _await_start(future: Awaitable[str]) -> str:
    return await future


def sleep(duration: timedelta | float) -> Coroutine[Any, Any, None]:
    """Sleep durably: the timer survives crashes and restarts.

    ``await asyncio.sleep(seconds)`` in workflow code does the same.
    ``duration`` is a timedelta or a number of seconds.
    """
    seconds = _seconds(duration, "sleep duration")
    runtime = current("sleep")
    return _tracked("retold.sleep()", _site(), runtime, asyncio.sleep(seconds or 0))


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
    return _tracked("retold.wait_signal()", _site(), runtime, _wait_signal(runtime, name, type, seconds))


async def _wait_signal(runtime: WorkflowRuntime, name: str, type_: Any, seconds: float | None) -> Any:
    return await runtime.wait_signal(name, type_, seconds)


def signal_workflow(workflow_id: str, name: str, value: Any = None) -> Coroutine[Any, Any, None]:
    """Send signal ``name`` with ``value`` to another workflow, from workflow code.

    It goes to the current run of ``workflow_id`` (after a continue-as-new,
    the newest run), in the same transaction that records this step, and
    the await returns once it is recorded there. If that workflow id has no
    run, or its run is closed, the await raises :class:`ApplicationError`
    (type ``retold.RunNotFoundError`` or ``retold.RunFinishedError``).
    """
    runtime = current("signal_workflow")
    return _tracked("retold.signal_workflow()", _site(), runtime, _signal_workflow(runtime, workflow_id, name, value))


async def _signal_workflow(runtime: WorkflowRuntime, workflow_id: str, name: str, value: Any) -> None:
    await runtime.signal_workflow(workflow_id, name, value)


def set_query_handler(name: str, handler: Callable[..., Any] | None) -> None:
    """Answer queries called ``name`` with ``handler(*args)``; None removes it.

    Handlers must only read workflow state: they run on the replayed state
    and never write history.
    """
    current("set_query_handler").set_query_handler(name, handler)


def set_update_handler(
    name: str, handler: Callable[..., Any] | None, *, validator: Callable[..., Any] | None = None,
) -> None:
    """Answer updates called ``name`` with ``handler(*args)``; None removes it.

    The handler (``def`` or ``async def``) is workflow code: it may change the
    run's state and await activities, timers and signals; what it returns is
    the caller's reply. ``validator(*args)`` (a plain function) runs first,
    read-only like a query handler: raising rejects the update, and nothing
    is recorded.
    """
    if not name:
        raise ValueError("an update name must not be empty")
    current("set_update_handler").set_update_handler(name, handler, validator)


def update_handler(
    name: str, *, validator: Callable[..., Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function inside workflow code to register it as update ``name``'s handler.

    The same as ``retold.set_update_handler(name, fn, validator=validator)``;
    returns the function unchanged::

        @retold.update_handler("add_item", validator=check_item)
        async def add_item(item: str) -> int: ...
    """
    if not name:
        raise ValueError("an update name must not be empty")

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        current("update_handler").set_update_handler(name, fn, validator)
        return fn

    return register


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


def upsert_search_attributes(attributes: Mapping[str, SearchAttributeValue | None]) -> None:
    """Set (or, with None, remove) search attributes of this run; lists filter runs by them.

    Recorded as a command (``SearchAttributesUpserted``), so the run's
    attributes change when its step commits and a replay changes nothing.
    Values are str, int, float, bool or aware datetimes (see
    :mod:`retold.history.attributes`).

    Raises:
        InvalidArgumentsError: a bad name or value; nothing is recorded.
    """
    encoded = encode_attributes(attributes, removals=True)
    if encoded:
        current("upsert_search_attributes").upsert_search_attributes(encoded)


def continue_as_new(*args: Any) -> NoReturn:
    """End this run and start a fresh one of the same workflow with ``args``.

    The new run keeps the workflow id and starts with an empty history.
    """
    current("continue_as_new")
    raise ContinueAsNew(args)


def info() -> WorkflowInfo:
    """Facts about the running workflow: name, workflow id, run id."""
    return current("info").info()
