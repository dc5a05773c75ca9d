"""One workflow run in memory: history in, new command events out.

``apply(events)`` feeds a run the events it has not seen yet. The history is
a sequence of *activations*: a group of input events (what happened to the
run), delivered together, followed by the command events the code produced
in response (or a ``WorkflowTaskCompleted`` marker when it asked for nothing).
For each activation the inputs are delivered, the loop runs until every task
is blocked, and each command the code produces is matched against the next
recorded one. Only the last activation, which the history has no commands
for yet, may produce new commands; they get the next event numbers. So a
live run and its replay see exactly the same activations, and a divergence is
caught at the first command that differs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import random
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from ..authoring import ContinueAsNew, Workflow, WorkflowInfo
from ..errors import (
    TERMINATED_TYPE,
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    IdempotencyError,
    NondeterminismError,
    PayloadError,
    RetoldError,
    WorkflowSandboxError,
    exception_from_failure,
    failure_from_exception,
)
from ..history import events as ev
from ..history.codec import Codec
from . import _guard
from ._loop import DurableTimerHandle, WorkflowLoop
from ._matching import describe_request, matches, segments
from ._outcome import Interrupted as _Interrupted
from ._outcome import Outcome as _Outcome
from ._outcome import close_value as _close
from ._outcome import escaped as _escaped
from ._outcome import never_started as _never_started
from ._requests import Requests
from ._updates import Updates

__all__ = ["WorkflowInstance", "failure_from_exception", "exception_from_failure"]

log = logging.getLogger("retold.workflow")


_FATAL = (NondeterminismError, WorkflowSandboxError)

# Shared by every instance between activations; never mutated (apply() replaces it).
_NOTHING_RECORDED: collections.deque[ev.Event] = collections.deque()


class WorkflowInstance(Requests, Updates):
    """A workflow run being executed or replayed on its own deterministic loop."""

    def __init__(
        self,
        workflow: Workflow[..., Any],
        run_id: str,
        codec: Codec,
        *,
        replay_only: bool = False,
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.workflow_id = ""
        self.parent_run_id: str | None = None
        # The run's propagation headers (trace context), from its WorkflowStarted event.
        self.headers: dict[str, str] | None = None
        # Its time limits, from its WorkflowStarted event (continue-as-new passes them on).
        self.timeouts: dict[str, float] | None = None
        self.codec = codec
        # A replica that only reads (queries, replay checks): none of its steps is a real one.
        self._replay_only = replay_only
        # The I/O methods are filled in (to fail loudly) after the class body.
        self.loop = WorkflowLoop(self)  # type: ignore[abstract]
        self.loop.retold_runtime = self  # type: ignore[attr-defined]
        self.now_ts = 0.0
        self.last_seq = 0
        self.finished = False
        self._next_seq = 1
        self._recorded: collections.deque[ev.Event] = _NOTHING_RECORDED
        self._commands: list[ev.Event] = []
        self._issued: set[int] = set()
        self._activities: dict[int, tuple[asyncio.Future[Any], Any]] = {}
        self._children: dict[int, tuple[_Outcome, Workflow[..., Any], str, str]] = {}
        self._sent: dict[int, asyncio.Future[None]] = {}  # signals sent to other workflows, by event number
        self._started: dict[int, tuple[asyncio.Future[str], str]] = {}  # detached starts: future, run id
        self._child_cancels: set[int] = set()  # children this run asked to cancel
        self._activity_cancels: set[int] = set()  # activities whose cancelled attempt this run waits for
        self._timers: dict[int, DurableTimerHandle] = {}
        # Lists, not deques: a deque costs a 512-byte block even for one item,
        # and a run usually has one or two of each waiting.
        self._signals: dict[str, list[bytes]] = {}
        self._signal_waiters: dict[str, list[asyncio.Future[bytes]]] = {}
        self._queries: dict[str, Callable[..., Any]] = {}
        self._update_handlers: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]] = {}
        self._update_ids: set[str] = set()
        self.querying: str | None = None  # the query whose handler runs, if one does
        # A query handler was refused a loop call (call_soon, a timer, a task): the
        # state in memory may be half changed, so this copy must not take another step.
        self.query_refused = False
        self._patches: dict[str, bool] = {}
        self._main: asyncio.Task[Any] | None = None
        self._fatal: BaseException | None = None
        # retold calls (execute, sleep, ...) made but not yet awaited: (coroutine, call, file:line)
        self._calls: list[tuple[Coroutine[Any, Any, Any], str, str]] | None = None
        self._rng: random.Random | None = None  # 2.5 KiB of state: made on first use
        self._live = True
        self._next_input: ev.Event | None = None
        self._emitted = 0

    # -- feeding history -------------------------------------------------------

    def apply(self, events: Sequence[ev.Event]) -> list[ev.Event]:
        """Feed new events; return the new command events (numbered, unsaved).

        Raises:
            NondeterminismError: the code diverged from the recorded commands.
            WorkflowSandboxError: the code reached the outside world.
        """
        self._commands = []
        if not events:
            return self._commands
        self._next_seq = max(self._next_seq, events[-1].seq + 1)
        groups = segments(events)
        for i, (inputs, recorded) in enumerate(groups):
            last = i == len(groups) - 1
            self._recorded = collections.deque(recorded)
            # Only an activation the history has no commands for may add new ones.
            self._live = last and not recorded
            self._next_input = None if last else groups[i + 1][0][0]
            if inputs and not self.finished:
                self._activate(inputs)
            elif recorded and not inputs:
                self._fail_with(recorded[0], "nothing (no input precedes this command)")
            if self._fatal is not None:
                raise self._fatal
            if self._recorded:
                self._fail_with(self._recorded[0], "nothing (the code never reached this command)")
                raise self._fatal  # type: ignore[misc]  # set just above
        self._recorded = _NOTHING_RECORDED
        self.last_seq = events[-1].seq
        return self._commands

    def _activate(self, inputs: list[ev.Event]) -> None:
        """Deliver a group of inputs together, then run until every task blocks."""
        if type(inputs[-1]) in (ev.WorkflowTerminated, ev.WorkflowTimedOut):
            # Closed from outside: the code never ran on this group of inputs.
            self.finished = True
            return
        self.now_ts = inputs[-1].at
        emitted = self._emitted
        for event in inputs:
            self._deliver(event)
        self._run()
        if self._emitted == emitted and not self.finished and self._fatal is None:
            self._emit(ev.WorkflowTaskCompleted)

    def _fail_with(self, recorded: ev.Event, requested: str) -> None:
        if self._fatal is None:
            self._fatal = NondeterminismError(
                self.workflow.name, self.run_id, recorded.seq, recorded.describe(), requested
            )

    def committed(self, last_seq: int) -> None:
        """Note that this activation's new commands are stored up to ``last_seq``."""
        self.last_seq = last_seq
        self._next_seq = last_seq + 1

    def _run(self) -> None:
        try:
            self.loop.run_ready()
        except _Interrupted:
            raise  # the engine's deadlock limit: the step is abandoned
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt from workflow code
            # asyncio lets these two through every task: here they are the
            # workflow task's failure, never the worker process's.
            if self._fatal is None:
                self._fatal = _escaped(exc)
        violation = _guard.take_violation()
        if violation is not None and self._fatal is None:
            self._fatal = violation
        if self._calls:
            self._calls = [entry for entry in self._calls if _never_started(entry[0])] or None
        if self._main is not None and self._main.done() and not self.finished:
            self._finish(self._main)

    # -- forgotten awaits ----------------------------------------------------------

    def track_call(self, coro: Coroutine[Any, Any, Any], call: str, where: str) -> None:
        """Remember a retold call's coroutine until it starts (see :meth:`_unawaited`)."""
        if self._calls is None:
            self._calls = []
        self._calls.append((coro, call, where))

    def fail_task(self, error: BaseException) -> None:
        """Fail this workflow task (not the run): a bug in the code that a deploy fixes."""
        if self._fatal is None:
            self._fatal = error

    def _where(self, value: Any) -> str:
        """``retold.execute() at file:line``, or what else ``value`` is."""
        for coro, call, where in self._calls or ():
            if coro is value:
                return f"{call} at {where}"
        code = getattr(value, "cr_code", None)
        if code is not None:
            return f"coroutine {code.co_qualname}() (defined at {code.co_filename}:{code.co_firstlineno})"
        return f"awaitable {type(value).__name__}"

    def _unawaited(self, result: Any, what: str) -> RetoldError | None:
        """The error for a run that ends with a coroutine as its result or a retold call
        never awaited, or None."""
        values = list(result) if isinstance(result, tuple | list) else [result]
        for value in values:
            if inspect.isawaitable(value):
                _close(value)
                return RetoldError(
                    f"workflow {self.workflow.name!r} {what} {self._where(value)} instead of its "
                    f"result: add `await` in front of the call"
                )
        for coro, call, where in self._calls or ():
            if _never_started(coro):
                coro.close()
                return RetoldError(
                    f"{call} at {where} was never awaited, so it never ran: add `await` in front of "
                    f"it (or pass it to asyncio.gather / asyncio.create_task)"
                )
        return None

    def _finish(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._emit(ev.WorkflowCancelled)
        else:
            exc = task.exception()
            forgotten = None
            if exc is None:
                forgotten = self._unawaited(task.result(), "returned")
            elif isinstance(exc, ContinueAsNew):
                forgotten = self._unawaited(exc.args_, "continued as new with")
            if forgotten is not None:
                self.fail_task(forgotten)
                return
            if exc is None:
                try:
                    result = self.codec.encode(task.result())
                except PayloadError as err:
                    self._emit(ev.WorkflowFailed, failure=failure_from_exception(err))
                else:
                    self._emit(ev.WorkflowCompleted, result=result)
            elif isinstance(exc, ContinueAsNew):
                try:
                    data = self.codec.encode(list(exc.args_))
                except PayloadError as err:
                    self._emit(ev.WorkflowFailed, failure=failure_from_exception(err))
                else:
                    new_run = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.run_id}/continue"))
                    self._emit(ev.WorkflowContinuedAsNew, new_run_id=new_run, input=data, headers=self.headers,
                               timeouts=self.timeouts)
            elif isinstance(exc, _FATAL):
                if self._fatal is None:
                    self._fatal = exc
                return
            elif isinstance(exc, Exception):
                self._emit(ev.WorkflowFailed, failure=failure_from_exception(exc))
            else:
                if self._fatal is None:
                    self._fatal = _escaped(exc)  # GeneratorExit and other BaseExceptions
                return
        self.finished = True

    # -- inputs ----------------------------------------------------------------

    def _deliver(self, event: ev.Event) -> None:
        match event:
            case ev.WorkflowStarted():
                self._start(event)
            case ev.ActivityCompleted() | ev.ActivityFailed() | ev.ActivityTimedOut() \
                    if event.scheduled in self._activity_cancels:
                # The attempt this run cancelled (and waited for) has ended: the wait ends cancelled.
                self._activity_cancels.discard(event.scheduled)
                entry = self._take(self._activities, event.scheduled, event)
                if entry is not None and not entry[0].done():
                    entry[0].end_cancelled(f"activity {entry[1].name!r} (event {event.scheduled}) was cancelled")
            case ev.ActivityCompleted():
                entry = self._take(self._activities, event.scheduled, event)
                if entry is not None and not entry[0].done():
                    fut, activity = entry
                    try:
                        value = self.codec.decode(event.result, activity.types.return_type)
                    except PayloadError as err:
                        fut.set_exception(err)
                    else:
                        fut.set_result(value)
            case ev.ActivityFailed() | ev.ActivityTimedOut():
                entry = self._take(self._activities, event.scheduled, event)
                if entry is not None and not entry[0].done():
                    fut, activity = entry
                    timed_out = isinstance(event, ev.ActivityTimedOut)
                    cause: BaseException
                    if isinstance(event, ev.ActivityTimedOut):
                        cause = ApplicationError(f"{event.kind} timeout", type="TimeoutError")
                        if event.failure is not None:  # the last attempt's failure
                            cause.__cause__ = exception_from_failure(event.failure)
                    else:
                        cause = exception_from_failure(event.failure)
                    fut.set_exception(
                        ActivityError(activity.name, event.scheduled, timed_out=timed_out, cause=cause)
                    )
            case ev.TimerFired():
                handle = self._take(self._timers, event.started, event)
                if handle is not None:
                    self.loop.fire(handle)
            case ev.SignalReceived():
                waiters = self._signal_waiters.get(event.name)
                while waiters:
                    waiter = waiters.pop(0)
                    if not waiter.done():
                        waiter.set_result(event.input)
                        return
                self._signals.setdefault(event.name, []).append(event.input)
            case ev.ChildWorkflowCompleted():
                child = self._take(self._children, event.started, event)
                if child is not None and not child[0].done():
                    try:
                        value = self.codec.decode(event.result, child[1].types.return_type)
                    except PayloadError as err:
                        child[0].set_exception(err)
                    else:
                        child[0].set_result(value)
            case ev.ChildWorkflowFailed():
                child = self._take(self._children, event.started, event)
                if child is not None and not child[0].done():
                    status = ("was cancelled" if event.cancelled
                              else "was terminated" if event.failure.type == TERMINATED_TYPE else "failed")
                    if event.cancelled and event.started in self._child_cancels:
                        # The cancel this run asked for is done: its wait raises CancelledError.
                        child[0].end_cancelled(f"child workflow {child[1].name!r} ({child[2]}) {status}")
                        return
                    child[0].set_exception(ChildWorkflowError(
                        child[1].name, child[2], status, cause=exception_from_failure(event.failure)
                    ))
            case ev.ExternalSignalResolved():
                sent = self._take(self._sent, event.requested, event)
                if sent is not None and not sent.done():
                    if event.failure is None:
                        sent.set_result(None)
                    else:
                        sent.set_exception(exception_from_failure(event.failure))
            case ev.WorkflowStartResolved():
                started = self._take(self._started, event.requested, event)
                if started is not None and not started[0].done():
                    if event.failure is None:
                        started[0].set_result(started[1])
                    else:  # its id is taken: what a client's start of that id would raise
                        started[0].set_exception(IdempotencyError(event.failure.message))
            case ev.UpdateAccepted():
                self._accept_update(event)
            case ev.CancelRequested():
                main = self._main
                if main is not None and not main.done():
                    coro = main.get_coro()
                    if inspect.iscoroutine(coro) and _never_started(coro):
                        # The code has not run yet: cancelled now, it would never enter
                        # its try block. Deliver it at the first await instead (the
                        # task's first step is already scheduled, and the loop is FIFO).
                        self.loop.call_soon(main.cancel, event.reason or None)
                    else:
                        main.cancel(event.reason or None)
            case ev.WorkflowFailed():
                self.finished = True  # the engine gave up on a workflow task

    def _take(self, table: dict[int, Any], seq: int, event: ev.Event) -> Any:
        entry = table.pop(seq, None)
        if entry is None and seq not in self._issued:
            self._unknown(event, seq)
        return entry

    def _unknown(self, event: ev.Event, seq: int) -> None:
        if self._fatal is None:
            self._fatal = NondeterminismError(
                self.workflow.name, self.run_id, event.seq, event.describe(),
                f"no command at event {seq} (the code never asked for it)",
            )

    def _start(self, event: ev.WorkflowStarted) -> None:
        self.workflow_id = event.workflow_id
        self.parent_run_id = event.parent_run_id
        self.headers = event.headers
        self.timeouts = event.timeouts
        try:
            args, kwargs = self.workflow.types.decode_args(
                "workflow", self.workflow.name, self.codec, event.input
            )
        except PayloadError as err:
            self._fatal = err
            return
        self._main = self.loop.create_task(self.workflow.fn(*args, **kwargs), name=self.workflow.name)

    # -- commands ----------------------------------------------------------------

    def _peek_seq(self) -> int:
        return self._recorded[0].seq if self._recorded else self._next_seq

    def _emit(self, cls: type[ev.Event], **fields: Any) -> int:
        self._emitted += 1
        if self._recorded:
            recorded = self._recorded.popleft()
            if not matches(self.codec, recorded, cls, fields):
                error = NondeterminismError(
                    self.workflow.name, self.run_id, recorded.seq,
                    recorded.describe(), describe_request(cls, fields),
                )
                if self._fatal is None:
                    self._fatal = error
                raise error
            seq = recorded.seq
        else:
            if self._fatal is not None:
                raise self._fatal
            if not self._live:
                # The live run asked for nothing more here: the history goes on
                # with the next input (or ends with this activation's commands).
                following = self._next_input
                error = NondeterminismError(
                    self.workflow.name, self.run_id, self._next_seq if following is None else following.seq,
                    "nothing (the activation ended)" if following is None else following.describe(),
                    describe_request(cls, fields),
                )
                self._fatal = error
                raise error
            seq = self._next_seq
            self._next_seq += 1
            self._commands.append(cls(seq=seq, at=self.now_ts, **fields))
        self._issued.add(seq)
        return seq

    def start_timer(self, handle: DurableTimerHandle, delay: float) -> None:
        """Record a durable timer for a loop ``call_at``."""
        seq = self._emit(ev.TimerStarted, duration=delay)
        handle.seq = seq
        self._timers[seq] = handle

    def cancel_timer(self, handle: DurableTimerHandle) -> None:
        """Record the cancellation of a timer that has not fired."""
        if self._timers.pop(handle.seq, None) is not None and not self.finished:
            self._emit(ev.TimerCancelled, started=handle.seq)

    # -- the WorkflowRuntime protocol ----------------------------------------------

    @property
    def replaying(self) -> bool:
        """Whether the code now runs again over recorded history (not a real step).

        A query handler's run is not a replay: each query is a real call.
        """
        return self.querying is None and (self._replay_only or not self._live)

    def info(self) -> WorkflowInfo:
        """Facts about this run."""
        return WorkflowInfo(self.workflow.name, self.workflow_id, self.run_id, self.parent_run_id)

    def now(self) -> datetime:
        """Workflow time."""
        return datetime.fromtimestamp(self.now_ts, UTC)

    def rng(self) -> random.Random:
        """The run's deterministic random generator."""
        if self._rng is None:
            self._rng = random.Random(uuid.uuid5(uuid.NAMESPACE_URL, self.run_id).int)
        return self._rng

    @property
    def has_relatives(self) -> bool:
        """Whether closing the run gives other runs work: a parent, or children still open."""
        return self.parent_run_id is not None or bool(self._children)

    def close(self) -> None:
        """Drop the coroutine without running its cleanup (eviction)."""
        if self._main is not None and not self._main.done():
            coro = self._main.get_coro()
            if coro is not None and hasattr(coro, "close"):
                # An evicted run is dropped, not finished: whatever its
                # finally blocks raise without a running loop is discarded.
                with contextlib.suppress(BaseException):
                    coro.close()
        self.loop.close()
