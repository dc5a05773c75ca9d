"""A deterministic asyncio event loop for one workflow run.

It never blocks and never touches the outside world: ``time()`` is workflow
time from the history, ``call_at``/``call_later`` become durable timers (the
run records ``TimerStarted`` and is woken by ``TimerFired``), and ready
callbacks run strictly first-in first-out. So ``asyncio.sleep``, ``gather``,
``wait_for``, ``timeout``, ``TaskGroup``, ``Event``, ``Lock`` and ``Queue``
work unchanged in workflow code.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple

from ..errors import QueryError
from . import _guard

if TYPE_CHECKING:
    from ._instance import WorkflowInstance

__all__ = ["WorkflowLoop"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
log = logging.getLogger("retold.workflow")


class DurableTimerHandle(asyncio.TimerHandle):
    """A timer handle whose firing comes from the history."""

    seq: int = 0


class WorkflowTask(asyncio.Task[_T]):
    """A task hashed by its creation order on the run's loop, not by its address.

    asyncio keeps tasks in sets (``TaskGroup`` cancels its children by
    iterating one, ``asyncio.wait`` returns two): with the default identity
    hash their order follows memory addresses, which differ between a live
    run and its replay. Hashed by creation order, a set of tasks iterates the
    same way every time the code runs.
    """

    def __init__(
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        loop: WorkflowLoop,
        name: str | None,
        context: contextvars.Context | None,
        order: int,
    ) -> None:
        self._retold_order = order  # before Task.__init__, which puts the task in a set
        super().__init__(coro, loop=loop, name=name, context=context)

    def __hash__(self) -> int:
        return self._retold_order


class WorkflowFuture(asyncio.Future[_T]):
    """A future hashed by its creation order on the run's loop (see :class:`WorkflowTask`)."""

    def __init__(self, *, loop: WorkflowLoop, order: int) -> None:
        self._retold_order = order
        super().__init__(loop=loop)

    def __hash__(self) -> int:
        return self._retold_order


class WorkflowLoop(asyncio.AbstractEventLoop):
    """The event loop a workflow coroutine runs on; owned by its instance."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._running = False
        self._closed = False
        self._exception_handler: Any = None
        # Creation order of tasks and futures: their hash (see WorkflowTask).
        self._order = itertools.count(1)

    # -- running -----------------------------------------------------------

    def run_ready(self) -> None:
        """Run callbacks until none is ready (every task is blocked)."""
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        self._running = True
        try:
            with _guard.guarded():
                ready = self._ready
                while ready:
                    handle = ready.popleft()
                    if not handle._cancelled:
                        handle._run()
        finally:
            self._running = False
            asyncio.events._set_running_loop(previous)

    def fire(self, handle: asyncio.Handle) -> None:
        """Queue a fired timer's callback."""
        if not handle._cancelled:
            self._ready.append(handle)

    # -- scheduling ----------------------------------------------------------

    def _refuse_in_query(self, what: str) -> None:
        query = self._instance.querying
        if query is not None:
            # Refused halfway through a change (an Event set, then its waiter's wake-up
            # refused): the run in memory may no longer be what its history says.
            self._instance.query_refused = True
            raise QueryError(
                f"{what} cannot be called in query handler {query!r}: a query reads the run's "
                f"state and must not schedule work on the workflow's loop (the run's replay would "
                f"not see it); do it in the workflow code"
            )

    def call_soon(
        self, callback: Callable[[*_Ts], object], *args: *_Ts, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        self._refuse_in_query("loop.call_soon()")
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        self._refuse_in_query("a timer (asyncio.sleep, loop.call_at)")
        handle = DurableTimerHandle(when, callback, args, self, context)
        delay = when - self.time()
        if delay <= 0:
            # Already due: run it next, no durable timer needed.
            self._ready.append(handle)
            return handle
        self._instance.start_timer(handle, delay)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if isinstance(handle, DurableTimerHandle) and handle.seq:
            self._instance.cancel_timer(handle)

    def call_soon_threadsafe(
        self, callback: Callable[[*_Ts], object], *args: *_Ts, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        raise _guard.violation(
            "loop.call_soon_threadsafe() (another thread)", "signal the workflow with run.signal()"
        )

    def time(self) -> float:
        return self._instance.now_ts

    def next_order(self) -> int:
        """The creation order of a new task or future (a query handler's take no place in it)."""
        return 0 if self._instance.querying is not None else next(self._order)

    def create_future(self) -> asyncio.Future[Any]:
        return WorkflowFuture(loop=self, order=self.next_order())

    def create_task(
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[_T]:
        if self._instance.querying is not None:
            close = getattr(coro, "close", None)
            if close is not None:
                close()  # no "never awaited" warning on top of the error
            self._refuse_in_query("asyncio.create_task()")
        return WorkflowTask(coro, loop=self, name=name, context=context, order=next(self._order))

    # -- state -----------------------------------------------------------------

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def get_task_factory(self) -> None:
        return None

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        log.debug("workflow loop: %s", context.get("message"), exc_info=context.get("exception"))

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.default_exception_handler(context)

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        pass

    # -- the outside world ---------------------------------------------------------

    def run_in_executor(
        self, executor: Any, func: Callable[[*_Ts], _T], *args: *_Ts
    ) -> asyncio.Future[_T]:
        raise _guard.violation(
            "loop.run_in_executor() (a thread or process)", "run blocking work in an activity"
        )

    def run_forever(self) -> None:
        raise _guard.violation("loop.run_forever()", "retold runs the workflow loop")

    def run_until_complete(self, future: Any) -> Any:
        raise _guard.violation("loop.run_until_complete()", "retold runs the workflow loop")


def _forbid(name: str) -> Callable[..., Any]:
    def method(self: WorkflowLoop, *args: Any, **kwargs: Any) -> Any:
        raise _guard.violation(f"loop.{name}() (I/O)", "do I/O in an activity")

    method.__name__ = name
    return method


for _name in (
    "create_connection", "create_server", "create_datagram_endpoint",
    "create_unix_connection", "create_unix_server", "connect_accepted_socket",
    "getaddrinfo", "getnameinfo", "sock_recv", "sock_recv_into", "sock_sendall",
    "sock_connect", "sock_accept", "sock_sendfile", "sendfile", "start_tls",
    "subprocess_exec", "subprocess_shell", "add_reader", "remove_reader",
    "add_writer", "remove_writer", "add_signal_handler", "remove_signal_handler",
    "connect_read_pipe", "connect_write_pipe", "set_default_executor",
):
    setattr(WorkflowLoop, _name, _forbid(_name))
