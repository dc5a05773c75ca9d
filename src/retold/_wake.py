"""Background loops: a resettable wake-up flag, a supervisor that restarts a failed loop, and
waking a loop from another thread."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

__all__ = ["Done", "Wakeup", "done_and_poster", "keep_running", "loop_poster", "poster_key", "set_all"]


def loop_poster() -> Callable[[Callable[[], object]], object]:
    """A function any thread may call to run a callback on the current event loop (asyncio or trio)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    return loop.call_soon_threadsafe


class Done(Protocol):
    """A one-time flag, set on its event loop's thread, awaited there (by one waiter at a time) with a time limit."""

    def set(self) -> None: ...

    async def wait(self, timeout: float = math.inf) -> None:
        """Return once set, or after ``timeout`` seconds; cancellable (anyio's cancel scopes)."""


class _AsyncioDone:
    """:class:`Done` on asyncio: a bare future and a timer handle, made only if it must wait.

    (An anyio ``Event`` waited for in a ``move_on_after`` costs several times
    as much: an Event, a cancel scope and its timer, and the lookups of the
    running backend, at each step of each run.) anyio's cancellation reaches
    the future through the task's own ``cancel()``, as it does anyio's Event.
    """

    __slots__ = ("_future", "_loop", "_set")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] | None = None
        self._set = False

    def set(self) -> None:
        self._set = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self, timeout: float = math.inf) -> None:
        if self._set:
            return
        future = self._future = self._loop.create_future()
        timer = self._loop.call_later(timeout, _expire, future) if timeout != math.inf else None
        try:
            await future
        finally:
            self._future = None
            if timer is not None:
                timer.cancel()


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AnyioDone:
    """:class:`Done` elsewhere (trio): an anyio Event in a ``move_on_after``."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float = math.inf) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()


def done_and_poster() -> tuple[Done, Callable[[Callable[[], object]], object]]:
    """A :class:`Done` of the current event loop, and its :func:`loop_poster` (for another thread to set it)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        import trio

        return _AnyioDone(), trio.lowlevel.current_trio_token().run_sync_soon
    return _AsyncioDone(loop), loop.call_soon_threadsafe


def poster_key(post: Callable[[Callable[[], object]], object]) -> int:
    """The same for every :func:`loop_poster` of one event loop (each is a new bound method).

    Callers that wake many waiters group them by it: one callback per loop,
    and so one write to the loop's wake-up pipe, not one per waiter.
    """
    return id(getattr(post, "__self__", post))


def set_all(events: list[anyio.Event] | list[Done]) -> None:
    """Set each event (posted to their loop by another thread)."""
    for event in events:
        event.set()


class Wakeup:
    """Lets one loop sleep until poked or until a timeout passes."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        """Wake the waiting loop (or make its next wait return at once)."""
        self._event.set()

    async def wait(self, timeout: float) -> None:
        """Sleep until :meth:`set` or ``timeout`` seconds, then re-arm."""
        with anyio.move_on_after(max(timeout, 0.0)):
            await self._event.wait()
        if self._event.is_set():
            self._event = anyio.Event()


async def keep_running(loop: Callable[[], Awaitable[None]], delay: float, log: logging.Logger, what: str) -> None:
    """Run ``loop`` until it returns; after each failure log it and start it again, backing off.

    A store hiccup (a locked database, a dropped connection) must not take
    the host program down.
    """
    name = getattr(loop, "__name__", None) or getattr(getattr(loop, "func", None), "__name__", repr(loop))
    while True:
        try:
            await loop()
            return
        except Exception:
            log.exception("retold %s loop %s failed; restarting in %.1f s", what, name, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)
