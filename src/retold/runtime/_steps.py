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

Steps wait in one queue, taken by the step threads in order: usually one
thread runs them all, and a thread that finishes a step while more are
queued goes on without waking the engine's loop for each (it wakes it once
the queue is empty), so steps cost few thread switches. A step that waits
longer than :data:`_SPARE_AFTER` because every thread is busy (a long step,
or a stuck one) gets a thread of its own: steps of different runs may run at
once in different threads, one at a time per run (the engine never gives
one run's instance to two steps). Threads beyond the first end once idle.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any, Generic, TypeVar

import anyio

from .._wake import Done, done_and_poster, poster_key
from .._wake import set_all as _set_all
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


_SPARE_AFTER = 0.05  # seconds a step may wait for a busy thread before it gets a thread of its own
_IDLE_EXIT = 2.0  # seconds a spare thread waits for work before it ends
_WAKE_AFTER = 0.001  # a thread that keeps finding work wakes the loop at least this often (seconds)
_MAX_THREADS = 32  # step threads at most (abandoned ones aside)


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
        self.done: Done
        self.post: Callable[[Callable[[], object]], object]
        self.done, self.post = done_and_poster()
        self.lock = threading.Lock()
        self.started: float | None = None  # time.monotonic() when a thread began it
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
            self.started = time.monotonic()
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


def _wake(finished: list[_Job[Any]]) -> None:
    """Tell the loops waiting for ``finished`` jobs, one call per loop."""
    by_post: dict[int, tuple[Callable[[Callable[[], object]], object], list[Done]]] = {}
    for job in finished:
        by_post.setdefault(poster_key(job.post), (job.post, []))[1].append(job.done)
    for post, events in by_post.values():
        with contextlib.suppress(Exception):  # that event loop is gone (its engine closed)
            post(partial(_set_all, events))


class _StepThread(threading.Thread):
    """Takes steps from the runner's queue and runs them, one after another."""

    def __init__(self, runner: StepRunner, spare: bool) -> None:
        super().__init__(name="retold workflow step", daemon=True)
        self.runner = runner
        self.spare = spare  # ends once idle for _IDLE_EXIT
        self.current: _Job[Any] | None = None

    def run(self) -> None:
        runner = self.runner
        finished: list[_Job[Any]] = []
        since = 0.0  # when the oldest job in ``finished`` finished
        try:
            while True:
                try:
                    if finished:
                        job = runner.jobs.get_nowait()
                    else:
                        job = runner.jobs.get(timeout=_IDLE_EXIT) if self.spare else runner.jobs.get()
                except queue.Empty:
                    if finished:
                        _wake(finished)
                        finished = []
                        continue
                    with runner.lock:
                        if runner.jobs.empty():  # checked with the lock held: a put() spawns a thread if needed
                            runner.threads.discard(self)
                            return
                    continue
                if job is None:
                    return
                if finished and time.monotonic() - since > _WAKE_AFTER:
                    _wake(finished)  # before a step that may be long: the finished ones wait no more
                    finished = []
                self.current = job
                with contextlib.suppress(BaseException):  # an interrupt landing as the step ended
                    job.execute()
                job.finished = True
                self.current = None
                if not finished:
                    since = time.monotonic()
                finished.append(job)
                if job.interrupted:
                    return  # abandoned by the engine: never reused
        finally:
            if finished:
                _wake(finished)
            with runner.lock:
                runner.threads.discard(self)


class StepRunner:
    """Runs workflow steps in step threads, failing those that pass ``limit`` seconds."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads: set[_StepThread] = set()
        self._spared = 0.0  # when the last spare thread was started

    def _limit(self) -> float | None:
        if self.limit is None or debugger_attached():
            return None  # stopped at a breakpoint is not deadlocked
        return self.limit

    def _spawn(self, spare: bool) -> None:
        thread = _StepThread(self, spare)
        with self.lock:
            if spare:
                now = time.monotonic()
                if now - self._spared < _SPARE_AFTER or len(self.threads) >= _MAX_THREADS:
                    return  # one started just now takes the queue; or enough threads already
                self._spared = now
            self.threads.add(thread)
        thread.start()

    def _submit(self, job: _Job[Any]) -> None:
        with self.lock:
            idle = not any(not t.spare for t in self.threads)
        if idle:
            self._spawn(spare=False)
        self.jobs.put(job)

    async def run(self, run_id: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` (workflow code of ``run_id``) in a step thread and return its result.

        Raises:
            WorkflowDeadlockError: it ran past the limit; it was interrupted
                and its thread abandoned.
        """
        job = _Job(fn)
        self._submit(job)
        limit = self._limit()
        try:
            wait = _SPARE_AFTER
            while not job.finished:
                await job.done.wait(wait)
                if job.finished:
                    break
                started = job.started
                if started is None:
                    # Every thread is busy (a long step, or a stuck one): this one gets a thread.
                    self._spawn(spare=True)
                    wait = _SPARE_AFTER if limit is None else min(_SPARE_AFTER * 4, limit)
                    continue
                if limit is None:
                    wait = math.inf
                    continue
                elapsed = time.monotonic() - started
                if elapsed < limit:
                    wait = limit - elapsed
                    continue
                stack = job.interrupt()
                if stack is not None:
                    self._retire(job)
                    log.error("workflow step of run %s did not yield within %g s; interrupted at:\n%s",
                              run_id, limit, stack)
                    raise WorkflowDeadlockError(run_id, limit, stack)
                with anyio.CancelScope(shield=True):
                    await job.done.wait()  # it ended as the limit came: it is about to say so
        except BaseException:
            # Cancelled (the engine is closing): interrupt the step too, so that
            # a stuck one does not spin on, unowned, for the life of the
            # process; its thread ends after the step.
            if not job.finished and job.interrupt() is not None:
                self._retire(job)
            raise
        return job.result()

    def _retire(self, job: _Job[Any]) -> None:
        """The thread running ``job`` is abandoned: it ends after the step, and another takes the queue."""
        with self.lock:
            for thread in self.threads:
                if thread.current is job:
                    self.threads.discard(thread)
                    break
        if not self.jobs.empty():
            self._spawn(spare=False)

    def close(self) -> None:
        """Let the step threads end (each after the step it is running)."""
        with self.lock:
            count = len(self.threads)
        for _ in range(count):
            self.jobs.put(None)
