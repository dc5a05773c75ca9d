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
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from ..authoring._decorators import Activity, Workflow
from ..authoring._options import ActivityOptions
from ..authoring._runtime import ContinueAsNew, WorkflowInfo
from ..errors import (
    TERMINATED_TYPE,
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    NondeterminismError,
    PayloadError,
    QueryError,
    RetoldError,
    WorkflowSandboxError,
    exception_from_failure,
    failure_from_exception,
)
from ..history import events as ev
from ..history.codec import Codec
from ..history.ids import check_id
from . import _guard
from ._loop import DurableTimerHandle, WorkflowFuture, WorkflowLoop

__all__ = ["WorkflowInstance", "failure_from_exception", "exception_from_failure"]

log = logging.getLogger("retold.workflow")


def _never_started(coro: Coroutine[Any, Any, Any]) -> bool:
    return inspect.getcoroutinestate(coro) == inspect.CORO_CREATED


def _close(value: Any) -> None:
    close = getattr(value, "close", None)
    if inspect.iscoroutine(value) and close is not None:
        close()  # no "never awaited" warning on top of the error

_FATAL = (NondeterminismError, WorkflowSandboxError)


def _same_payload(codec: Codec, recorded: bytes, requested: bytes) -> bool:
    """Whether two encodings hold the same values.

    Compared decoded, not as bytes: a codec may encode the same value
    differently each time (an encrypting codec draws a random nonce).
    """
    if recorded == requested:
        return True
    try:
        return bool(codec.decode(recorded, Any) == codec.decode(requested, Any))
    except PayloadError:
        return False


def _matches(codec: Codec, recorded: ev.Event, cls: type[ev.Event], fields: dict[str, Any]) -> bool:
    if type(recorded) is not cls:
        return False
    if isinstance(recorded, ev.ActivityScheduled):
        # Arguments count too: the same activity fed other data (a set iterated
        # in another order, say) would pair recorded results with the wrong call.
        return bool(recorded.activity == fields["activity"] and _same_payload(codec, recorded.input, fields["input"]))
    if isinstance(recorded, ev.TimerCancelled | ev.ChildWorkflowCancelRequested):
        return bool(recorded.started == fields["started"])
    if isinstance(recorded, ev.ActivityCancelRequested):
        return bool(recorded.scheduled == fields["scheduled"])
    if isinstance(recorded, ev.MarkerRecorded):
        return bool((recorded.kind, recorded.name) == (fields["kind"], fields["name"]))
    if isinstance(recorded, ev.ChildWorkflowStarted):
        return bool(recorded.workflow == fields["workflow"] and _same_payload(codec, recorded.input, fields["input"]))
    if isinstance(recorded, ev.ExternalSignalRequested):
        return bool((recorded.workflow_id, recorded.name) == (fields["workflow_id"], fields["name"])
                    and _same_payload(codec, recorded.input, fields["input"]))
    return True


def _describe(cls: type[ev.Event], fields: dict[str, Any]) -> str:
    shown = []
    for key, value in fields.items():
        if key == "options":
            continue
        if isinstance(value, bytes):
            value = value[:60].decode("utf-8", "replace")
        shown.append(f"{key}={value!r}")
    return f"{cls.__name__}({', '.join(shown)})"


def _segments(events: Sequence[ev.Event]) -> list[tuple[list[ev.Event], list[ev.Event]]]:
    """Split events into activations: a group of inputs and the commands it produced."""
    segments: list[tuple[list[ev.Event], list[ev.Event]]] = []
    inputs: list[ev.Event] = []
    commands: list[ev.Event] = []
    for event in events:
        if is_command(event):
            commands.append(event)
        else:
            if commands:
                segments.append((inputs, commands))
                inputs, commands = [], []
            inputs.append(event)
    segments.append((inputs, commands))
    return segments


def default_child_id(parent_workflow_id: str, parent_run_id: str, seq: int) -> str:
    """The id of a child started without one: unique to the parent's run, short at any depth.

    ``{parent workflow id}/{parent run id}/child-{seq}``: the run id keeps
    it unique across the runs of a continue-as-new chain (whose event
    numbers start again), and the parent's id is cut to its first 150
    characters, so nesting never grows it past the id limit.
    """
    return f"{parent_workflow_id[:150]}/{parent_run_id}/child-{seq}"


def is_command(event: ev.Event) -> bool:
    """Whether ``event`` was written because workflow code asked for it."""
    if isinstance(event, ev.WorkflowFailed):
        return not event.failure.get("workflow_task")
    return isinstance(event, ev.COMMAND_TYPES)


class _Interrupted(SystemExit):
    """Raised inside a step's thread by the engine's deadlock limit (see retold.engine._steps).

    A SystemExit, so that asyncio's tasks and handles let it through to the
    step's caller instead of storing it as a task's outcome.
    """


def _escaped(exc: BaseException) -> ApplicationError:
    """A BaseException raised by workflow code, as the workflow task's failure."""
    name = type(exc).__qualname__
    error = ApplicationError(
        f"workflow code raised {name}{exc.args!r}: a workflow must not exit or interrupt its worker "
        f"process; return, or raise an Exception to fail the run",
        type=name if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{name}",
        non_retryable=True,
        details="".join(traceback.format_exception(exc))[-8000:],
    )
    error.__cause__ = exc
    return error


class _Outcome(WorkflowFuture[Any]):
    """The future of an activity or child: cancelling it records the request.

    ``on_cancel(msg)`` records it and says whether the wait ends now (an
    activity) or goes on until the outcome arrives (a child, until it closes).
    """

    def __init__(self, loop: WorkflowLoop, on_cancel: Callable[[Any], bool]) -> None:
        # Hashed by creation order, like every future of the workflow loop.
        super().__init__(loop=loop, order=loop.next_order())
        self._on_cancel = on_cancel

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        if self._on_cancel(msg):
            return super().cancel(msg)
        return True  # asked: the awaiting task keeps waiting for the outcome

    def end_cancelled(self, msg: str) -> None:
        """End the wait with ``CancelledError`` (the child closed cancelled)."""
        super().cancel(msg)


# Shared by every instance between activations; never mutated (apply() replaces it).
_NOTHING_RECORDED: collections.deque[ev.Event] = collections.deque()


class WorkflowInstance:
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
        self._child_cancels: set[int] = set()  # children this run asked to cancel
        self._timers: dict[int, DurableTimerHandle] = {}
        # Lists, not deques: a deque costs a 512-byte block even for one item,
        # and a run usually has one or two of each waiting.
        self._signals: dict[str, list[bytes]] = {}
        self._signal_waiters: dict[str, list[asyncio.Future[bytes]]] = {}
        self._queries: dict[str, Callable[..., Any]] = {}
        self.querying: str | None = None  # the query whose handler runs, if one does
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
        segments = _segments(events)
        for i, (inputs, recorded) in enumerate(segments):
            last = i == len(segments) - 1
            self._recorded = collections.deque(recorded)
            # Only an activation the history has no commands for may add new ones.
            self._live = last and not recorded
            self._next_input = None if last else segments[i + 1][0][0]
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
        if type(inputs[-1]) is ev.WorkflowTerminated:
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
                    self._emit(ev.WorkflowContinuedAsNew, new_run_id=new_run, input=data, headers=self.headers)
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
                        if event.failure:  # the last attempt's failure
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
                              else "was terminated" if event.failure.get("type") == TERMINATED_TYPE else "failed")
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
            if not _matches(self.codec, recorded, cls, fields):
                error = NondeterminismError(
                    self.workflow.name, self.run_id, recorded.seq,
                    recorded.describe(), _describe(cls, fields),
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
                    _describe(cls, fields),
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

    def execute_activity(
        self, activity: Activity[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        options: ActivityOptions,
    ) -> Awaitable[Any]:
        """Schedule an activity; the future resolves with its outcome."""
        if not isinstance(activity, Activity):
            raise TypeError(f"retold.execute() needs an @activity, got {activity!r}")
        data = activity.types.encode_input(
            self.codec, "activity", activity.name, args, kwargs, check_types=False
        )
        recorded_options = options.to_json()
        # Who scheduled it (for the activity's log records) and the run's trace context.
        recorded_options["workflow"] = self.workflow.name
        if self.headers:
            recorded_options["headers"] = self.headers
        seq = self._emit(
            ev.ActivityScheduled, activity=activity.name, input=data, options=recorded_options
        )
        fut = _Outcome(self.loop, lambda _msg: self._cancel_activity(seq))
        self._activities[seq] = (fut, activity)
        return fut

    def _cancel_activity(self, seq: int) -> bool:
        """The code stopped waiting for an activity: withdraw its task. The wait ends now."""
        if self._activities.pop(seq, None) is not None and not self.finished:
            self._request(ev.ActivityCancelRequested, scheduled=seq)
        return True

    def _cancel_child(self, seq: int) -> bool:
        """The code stopped waiting for a child: ask it to cancel, and wait for it to close."""
        entry = self._children.get(seq)
        if entry is None or self.finished:
            return True
        if seq not in self._child_cancels:
            self._child_cancels.add(seq)
            self._request(ev.ChildWorkflowCancelRequested, started=seq, workflow_id=entry[2], run_id=entry[3])
        return False

    def _request(self, cls: type[ev.Event], **fields: Any) -> None:
        """Record a cancel request; a divergence is kept for apply() to raise, not raised
        into the code that cancelled."""
        try:
            self._emit(cls, **fields)
        except BaseException:
            if self._fatal is None:
                raise

    def start_child(
        self, workflow: Workflow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        workflow_id: str | None,
    ) -> tuple[str, asyncio.Future[Any]]:
        """Start a child workflow; the future resolves with its outcome."""
        if not isinstance(workflow, Workflow):
            raise TypeError(f"retold.start_child() needs a @workflow, got {workflow!r}")
        data = workflow.types.encode_input(self.codec, "workflow", workflow.name, args, kwargs)
        seq = self._peek_seq()
        if self._recorded and isinstance(self._recorded[0], ev.ChildWorkflowStarted):
            workflow_id = self._recorded[0].workflow_id
            child_run = self._recorded[0].run_id
        else:
            if workflow_id is None:
                workflow_id = default_child_id(self.workflow_id, self.run_id, seq)
            else:
                check_id("child workflow id", workflow_id)
            child_run = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.run_id}/child/{seq}"))
        seq = self._emit(
            ev.ChildWorkflowStarted, workflow=workflow.name, workflow_id=workflow_id,
            run_id=child_run, input=data, headers=self.headers,
        )
        fut = _Outcome(self.loop, lambda _msg: self._cancel_child(seq))
        self._children[seq] = (fut, workflow, workflow_id, child_run)
        return workflow_id, fut

    def signal_workflow(self, workflow_id: str, name: str, value: Any) -> asyncio.Future[None]:
        """Send signal ``name`` to another workflow; the future resolves once its run recorded it."""
        check_id("workflow id", workflow_id)
        if workflow_id == self.workflow_id:
            raise RetoldError(f"workflow {workflow_id!r} cannot signal itself: wait on its own state instead")
        seq = self._emit(ev.ExternalSignalRequested, workflow_id=workflow_id, name=name,
                         input=self.codec.encode(value))
        fut: asyncio.Future[None] = self.loop.create_future()
        self._sent[seq] = fut
        return fut

    async def wait_signal(self, name: str, type_: Any, timeout: float | None) -> Any:
        """Return the next signal ``name`` that decodes as ``type_``, or None after ``timeout`` seconds.

        A signal whose value does not decode is dropped with a WARNING: a bad
        input someone else sent never fails the run.
        """
        if type_ is Any:
            type_ = self.workflow.signals.get(name, Any)
        deadline = None if timeout is None else self.loop.time() + timeout
        left = timeout
        while True:
            data = await self._next_signal(name, left)
            if data is None:
                return None
            try:
                return self.codec.decode(data, type_)
            except PayloadError as err:
                if not self.replaying:  # said once, not again on every replay (nor by a query's replica)
                    with _unguarded():  # the handlers' I/O is the application's, not the workflow's
                        log.warning(
                            "workflow %r run %r dropped signal %r: its value cannot be decoded: %s",
                            self.workflow.name, self.run_id, name, err,
                        )
            if deadline is not None:
                left = max(deadline - self.loop.time(), 0.0)

    async def _next_signal(self, name: str, timeout: float | None) -> bytes | None:
        """The next signal ``name``'s encoded value, or None after ``timeout`` seconds."""
        buffered = self._signals.get(name)
        if buffered:
            data = buffered.pop(0)
            try:
                # Return through the ready queue, behind the code that signals
                # delivered before this one woke: signals of different names
                # that arrived together come out in history order.
                await asyncio.sleep(0)
            except BaseException:
                self._signals.setdefault(name, []).insert(0, data)  # not lost: the next wait gets it
                raise
            return data
        waiter: asyncio.Future[bytes] = self.loop.create_future()
        self._signal_waiters.setdefault(name, []).append(waiter)
        consumed = False
        try:
            if timeout is None:
                data = await waiter
            else:
                try:
                    async with asyncio.timeout(timeout):
                        data = await waiter
                except TimeoutError:
                    if not waiter.done() or waiter.cancelled():
                        return None
                    data = waiter.result()  # the signal came with its own timeout
            consumed = True
        finally:
            waiters = self._signal_waiters.get(name)
            if waiters and waiter in waiters:
                waiters.remove(waiter)
            if not consumed and waiter.done() and not waiter.cancelled():
                # Delivered, but the wait was cancelled before it could return:
                # keep the signal for the next wait instead of losing it.
                self._signals.setdefault(name, []).insert(0, waiter.result())
        return data

    def set_query_handler(self, name: str, handler: Callable[..., Any] | None) -> None:
        """Register (or remove) a query handler."""
        if handler is None:
            self._queries.pop(name, None)
        else:
            self._queries[name] = handler

    def side_effect(self, fn: Callable[[], Any], type_: Any) -> Any:
        """Run ``fn`` once, record its value, and return the recorded value on replay."""
        if self._recorded:
            recorded = self._recorded[0]
            self._emit(ev.MarkerRecorded, kind="side_effect", name="side_effect")
            assert isinstance(recorded, ev.MarkerRecorded)
            return self.codec.decode(recorded.value, type_)
        with _unguarded():
            value = fn()
        self._emit(ev.MarkerRecorded, kind="side_effect", name="side_effect",
                   value=self.codec.encode(value))
        return value

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the patched code path."""
        if patch_id in self._patches:
            return self._patches[patch_id]
        if self._recorded:
            head = self._recorded[0]
            taken = (
                isinstance(head, ev.MarkerRecorded) and head.kind == "patch" and head.name == patch_id
            )
            if taken:
                self._emit(ev.MarkerRecorded, kind="patch", name=patch_id)
        else:
            self._emit(ev.MarkerRecorded, kind="patch", name=patch_id)
            taken = True
        self._patches[patch_id] = taken
        return taken

    # -- queries -----------------------------------------------------------------

    def query(self, name: str, args: tuple[Any, ...]) -> Any:
        """Answer a query from the current state, writing nothing.

        Raises:
            QueryError: the name is unknown or the handler raised.
        """
        handler = self._queries.get(name)
        if handler is None:
            known = ", ".join(sorted(self._queries)) or "none"
            raise QueryError(
                f"workflow {self.workflow.name!r} run {self.run_id!r} has no query "
                f"{name!r} (known: {known})"
            )
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        self.querying = name
        try:
            with _guard.guarded():
                result = handler(*args)
            if inspect.isawaitable(result):
                _close(result)
                raise QueryError(
                    f"query {name!r} handler returned an awaitable: query handlers are plain "
                    f"functions that return a value (use `def`, not `async def`)"
                )
            return result
        except QueryError:
            raise
        except BaseException as exc:
            # Whatever the handler raised (an ApplicationError, a ValueError, even
            # a BaseException such as continue_as_new's or sys.exit()), the caller
            # gets a QueryError, and the process goes on.
            # An ApplicationError's message already starts with its type.
            what = str(exc) if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
            raise QueryError(f"query {name!r} handler raised {what}") from exc
        finally:
            self.querying = None
            asyncio.events._set_running_loop(previous)
            _guard.take_violation()

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


class _unguarded:  # noqa: N801 - used like a function
    """Lift the sandbox for a side effect's function."""

    def __enter__(self) -> None:
        self._previous = getattr(_guard._state, "active", False)
        _guard._state.active = False

    def __exit__(self, *exc: object) -> None:
        _guard._state.active = self._previous
