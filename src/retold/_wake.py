"""Background loops: a resettable wake-up flag, a supervisor that restarts a failed loop, and
waking a loop from another thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["Wakeup", "keep_running", "loop_poster", "set_all"]


def loop_poster() -> Callable[[Callable[[], object]], object]:
    """A function any thread may call to run a callback on the current event loop (asyncio or trio)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    return loop.call_soon_threadsafe


def set_all(events: list[anyio.Event]) -> None:
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
