"""The NATS client's own asyncio loop, in a thread, and calls into it from any anyio loop (asyncio or trio)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["ClientLoop", "call_soon_here"]

_T = TypeVar("_T")


def call_soon_here() -> Callable[[Callable[[], object]], object]:
    """A thread-safe way to run a callback soon on the calling task's event loop."""
    try:
        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:  # not asyncio: trio
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon


class ClientLoop:
    """The asyncio loop nats-py runs on: the caller's own if it is asyncio, else a new one in a daemon thread."""

    def __init__(self, name: str) -> None:
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:  # trio: nats-py needs asyncio
            self.loop = asyncio.new_event_loop()
            self._thread: threading.Thread | None = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        else:
            self._thread = None  # inline: no thread hop per call

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def call(self, factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``factory()`` on the client loop and wait for it; a cancelled caller still waits for the end
        (an operation that may have committed is never abandoned half way).

        A caller already cancelled starts nothing: it gets its cancellation here. Without this check a
        task calling in a loop would never see its cancellation (it is always inside the shielded wait
        when anyio tries to deliver it) and would go on recording operations for ever."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._thread is None:
            task = self.loop.create_task(factory())
            with anyio.CancelScope(shield=True):
                return await task
        # A fresh context: the caller's (trio's, for sniffio) must not leak into the client loop.
        future = contextvars.Context().run(lambda: asyncio.run_coroutine_threadsafe(factory(), self.loop))
        done = anyio.Event()
        soon = call_soon_here()

        def finished(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone
                soon(done.set)

        future.add_done_callback(finished)
        with anyio.CancelScope(shield=True):
            await done.wait()
        return future.result()

    def stop(self) -> None:
        """Stop the loop and its thread (an inline loop is the caller's: it goes on)."""
        if self._thread is None or self.loop.is_closed():
            return
        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(finish(), self.loop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()
