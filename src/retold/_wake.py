"""A resettable wake-up flag for worker loops."""

from __future__ import annotations

import anyio

__all__ = ["Wakeup"]


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
