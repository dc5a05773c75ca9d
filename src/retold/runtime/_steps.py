"""Workflow steps run in threads of their own, under a deadlock limit.

Workflow code is synchronous between its awaits: a step (an activation, a
replay) runs until every task of the run is blocked. Run on the engine's
event loop, a step that never yields (``while True: pass``, CPU-bound code)
would stop the whole engine: no other run, no lease renewal, no shutdown.
So each step runs in a *step thread* while the engine's loop waits for it
without blocking. A step still running after the limit is interrupted (an
exception raised inside its thread, between two bytecodes), its workflow
task fails with :class:`~retold.errors.WorkflowDeadlockError` and the stack
where it was stuck, and its thread is abandoned: a step that swallows the
interrupt keeps that (daemon) thread busy, never the engine, and never
holds up the process's exit.

Steps of different runs may run at once in different threads, one at a time
per run (the engine never gives one run's instance to two steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any, Generic, TypeVar

import anyio

from ..errors import WorkflowDeadlockError
from . import _guard
from ._outcome import Interrupted as _Interrupted

__all__ = ["StepRunner", "debugger_attached"]

_T = TypeVar("_T")
log = logging.getLogger("retold.engine")

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


def debugger_attached() -> bool:
    """Whether a debugger traces this process (pdb, debugpy, an IDE), coverage aside."""
    trace = sys.gettrace()
    if trace is not None:
        owner = getattr(trace, "__self__", trace)
        if not type(owner).__module__.startswith("coverage"):
            return True
    monitoring: Any = getattr(sys, "monitoring", None)
    return monitoring is not None and monitoring.get_tool(monitoring.DEBUGGER_ID) is not None


def _waker(event: anyio.Event) -> Callable[[], None]:
    """A function any thread may call to set ``event`` on the current event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        import trio

        token = trio.lowlevel.current_trio_token()
        return lambda: token.run_sync_soon(event.set)

    def wake() -> None:
        loop.call_soon_threadsafe(event.set)

    return wake


def _workflow_stack(frame: FrameType) -> str:
    """The stack of a step's thread, from the workflow code's first frame (at most 20)."""
    frames: list[traceback.FrameSummary] = list(traceback.extract_stack(frame))
    for i in range(len(frames) - 1, -1, -1):
        if frames[i].name == "run_ready" and frames[i].filename.endswith("_loop.py"):
            frames = frames[i + 2:] or frames  # after run_ready and asyncio's Handle._run
            break
    return "".join(traceback.format_list(frames[-20:]))


class _Job(Generic[_T]):
    """One step: run in a step thread, waited for on the event loop."""

    def __init__(self, fn: Callable[[], _T]) -> None:
        self.fn = fn
        self.done = anyio.Event()
        self.wake = _waker(self.done)
        self.lock = threading.Lock()
        self.running = False
        self.finished = False
        self.interrupted = False
        self.ident = 0
        self.value: Any = None
        self.error: BaseException | None = None
        self.strict = _guard.is_strict()  # the caller's (retold.testing's) sandbox mode, for the thread

    def execute(self) -> None:
        """Run the step (in its thread)."""
        with self.lock:
            self.ident = threading.get_ident()
            self.running = True
        try:
            with _guard.strict(self.strict):
                self.value = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting side
            self.error = exc
        finally:
            with self.lock:
                self.running = False
                if self.interrupted:
                    _set_async_exc(self.ident, None)  # not delivered yet: it must not hit anything else

    def interrupt(self) -> str | None:
        """Raise the interrupt in the step's thread; the stack where it was, or None if it ended."""
        with self.lock:
            if not self.running:
                return None
            frame = sys._current_frames().get(self.ident)
            stack = _workflow_stack(frame) if frame is not None else "(no stack)\n"
            _set_async_exc(self.ident, _Interrupted)
            self.interrupted = True
            return stack

    def result(self) -> _T:
        if self.error is not None:
            raise self.error
        value: _T = self.value
        return value


class _StepThread(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="retold workflow step", daemon=True)
        self.jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with contextlib.suppress(BaseException):  # an interrupt landing as the step ended
                job.execute()
            job.finished = True
            with contextlib.suppress(Exception):  # the event loop is gone (the engine closed)
                job.wake()
            if job.interrupted:
                return  # abandoned by the engine: never reused


class StepRunner:
    """Runs workflow steps in step threads, failing those that pass ``limit`` seconds."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self._idle: list[_StepThread] = []

    def _limit(self) -> float | None:
        if self.limit is None or debugger_attached():
            return None  # stopped at a breakpoint is not deadlocked
        return self.limit

    async def run(self, run_id: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` (workflow code of ``run_id``) in a step thread and return its result.

        Raises:
            WorkflowDeadlockError: it ran past the limit; it was interrupted
                and its thread abandoned.
        """
        job = _Job(fn)
        thread = self._idle.pop() if self._idle else None
        if thread is None or not thread.is_alive():
            thread = _StepThread()
            thread.start()
        thread.jobs.put(job)
        limit = self._limit()
        try:
            with anyio.move_on_after(math.inf if limit is None else limit):
                await job.done.wait()
            if not job.finished:
                assert limit is not None
                stack = job.interrupt()
                if stack is not None:
                    log.error("workflow step of run %s did not yield within %g s; interrupted at:\n%s",
                              run_id, limit, stack)
                    raise WorkflowDeadlockError(run_id, limit, stack)
                with anyio.CancelScope(shield=True):
                    await job.done.wait()  # it ended as the limit came: it is about to say so
        except BaseException:
            if not job.finished:
                # Cancelled (the engine is closing): interrupt the step too, so
                # that a stuck one does not spin on, unowned, for the life of
                # the process; the thread ends after the step.
                job.interrupt()
                thread.jobs.put(None)
            raise
        if len(self._idle) < 8:
            self._idle.append(thread)
        else:
            thread.jobs.put(None)
        return job.result()

    def close(self) -> None:
        """Let the idle step threads end."""
        for thread in self._idle:
            thread.jobs.put(None)
        self._idle.clear()
