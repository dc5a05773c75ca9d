"""What workflow code asks a run for: activities, children, signals, queries, side effects, patches.

:class:`Requests` is half of :class:`~._instance.WorkflowInstance`: the calls
behind the authoring API (``retold.execute``, ``start_child``,
``wait_signal``, ``signal_workflow``, ``side_effect``, ``patched``...), each
turned into a recorded command and a future. The other half feeds the
history in and matches the commands.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import typing
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..authoring import Activity, ActivityOptions, Workflow
from ..errors import ApplicationError, PayloadError, QueryError, RetoldError
from ..history import events as ev
from ..history.codec import Codec
from ..history.ids import check_id
from . import _guard
from ._matching import default_child_id
from ._outcome import Outcome, close_value, unguarded

if TYPE_CHECKING:
    import collections

    from ._loop import WorkflowLoop

__all__ = ["Requests"]


def _hints(handler: Callable[..., Any] | None) -> dict[str, Any]:
    """A query handler's annotations, resolved; none if they cannot be."""
    if handler is None:
        return {}
    try:
        return typing.get_type_hints(handler)
    except Exception:  # noqa: BLE001 - a forward reference it cannot resolve: untyped
        return {}

log = logging.getLogger("retold.workflow")


class Requests:
    """The requests of workflow code (see the module's docstring); state lives in the instance."""

    workflow: Workflow[..., Any]
    run_id: str
    workflow_id: str
    headers: dict[str, str] | None
    codec: Codec
    loop: WorkflowLoop
    finished: bool
    querying: str | None
    _recorded: collections.deque[ev.Event]
    _fatal: BaseException | None
    _activities: dict[int, tuple[asyncio.Future[Any], Any]]
    _children: dict[int, tuple[Outcome, Workflow[..., Any], str, str]]
    _child_cancels: set[int]
    _sent: dict[int, asyncio.Future[None]]
    _started: dict[int, tuple[asyncio.Future[str], str]]
    _activity_cancels: set[int]
    _signals: dict[str, list[bytes]]
    _signal_waiters: dict[str, list[asyncio.Future[bytes]]]
    _queries: dict[str, Callable[..., Any]]
    _patches: dict[str, bool]

    @property
    def replaying(self) -> bool:
        raise NotImplementedError

    def _emit(self, cls: type[ev.Event], **fields: Any) -> int:
        raise NotImplementedError

    def _peek_seq(self) -> int:
        raise NotImplementedError

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
        kind = options.cancellation_type
        fut = Outcome(self.loop, lambda _msg: self._cancel_activity(seq, kind))
        self._activities[seq] = (fut, activity)
        return fut

    def _cancel_activity(self, seq: int, kind: str = "try_cancel") -> bool:
        """The code stopped waiting for an activity: withdraw its task, or not (see ``ActivityCancellationType``).

        True: the wait ends now; False (``wait_cancellation_completed``): it
        goes on until the attempt's outcome arrives, and then ends cancelled.
        """
        if kind == "wait_cancellation_completed":
            if seq in self._activities and seq not in self._activity_cancels and not self.finished:
                self._activity_cancels.add(seq)
                self._request(ev.ActivityCancelRequested, scheduled=seq, wait=True)
            return seq not in self._activities
        if self._activities.pop(seq, None) is not None and not self.finished and kind != "abandon":
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
        fields = self._new_run("start_child", ev.ChildWorkflowStarted, "child", workflow, args, kwargs, workflow_id)
        seq = self._emit(ev.ChildWorkflowStarted, **fields, parent_close_policy=workflow.parent_close_policy)
        fut = Outcome(self.loop, lambda _msg: self._cancel_child(seq))
        self._children[seq] = (fut, workflow, fields["workflow_id"], fields["run_id"])
        return fields["workflow_id"], fut

    def start_workflow(
        self, workflow: Workflow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        workflow_id: str | None,
    ) -> asyncio.Future[str]:
        """Start a workflow as a run of its own (not a child); the future resolves with its run id."""
        fields = self._new_run("start_workflow", ev.WorkflowStartRequested, "started", workflow, args, kwargs,
                               workflow_id)
        seq = self._emit(ev.WorkflowStartRequested, **fields)
        fut: asyncio.Future[str] = self.loop.create_future()
        self._started[seq] = (fut, fields["run_id"])
        return fut

    def _new_run(
        self, call: str, cls: type[ev.Event], kind: str, workflow: Workflow[..., Any], args: tuple[Any, ...],
        kwargs: dict[str, Any], workflow_id: str | None,
    ) -> dict[str, Any]:
        """The fields of a command that starts a run (``cls``): its ids are the recorded ones on replay.

        Otherwise the workflow id is the given one or derived from this run's
        (``{workflow id}/{run id}/{kind}-{seq}``), and the run id is derived
        from this run's id and the command's number, so that a replay, or
        another engine, never makes a second run.
        """
        if not isinstance(workflow, Workflow):
            raise TypeError(f"retold.{call}() needs a @workflow, got {workflow!r}")
        data = workflow.types.encode_input(self.codec, "workflow", workflow.name, args, kwargs)
        seq = self._peek_seq()
        recorded = self._recorded[0] if self._recorded else None
        if isinstance(recorded, ev.ChildWorkflowStarted | ev.WorkflowStartRequested) and isinstance(recorded, cls):
            workflow_id, run_id = recorded.workflow_id, recorded.run_id
        else:
            if workflow_id is None:
                workflow_id = default_child_id(self.workflow_id, self.run_id, seq, kind)
            else:
                check_id("child workflow id" if kind == "child" else "workflow id", workflow_id)
            run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.run_id}/{kind}/{seq}"))
        limits = {name: value for name in ("run_timeout", "execution_timeout", "start_delay")
                  if (value := getattr(workflow, name, None)) is not None}
        return {"workflow": workflow.name, "workflow_id": workflow_id, "run_id": run_id, "input": data,
                "headers": self.headers, "limits": limits or None,
                "search_attributes": workflow.search_attributes, "memo": workflow.memo}

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
                    with unguarded():  # the handlers' I/O is the application's, not the workflow's
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
        with unguarded():
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

    def upsert_search_attributes(self, attributes: dict[str, str | None]) -> None:
        """Record new search attributes (stored forms); a replay matches them against the recorded ones."""
        self._emit(ev.SearchAttributesUpserted, attributes=attributes)

    # -- queries -----------------------------------------------------------------

    def query_result_type(self, name: str) -> Any:
        """The return annotation of query handler ``name`` (``Any`` if none): the caller's
        answer is decoded into it, so an enum or dataclass keeps its type."""
        return _hints(self._queries.get(name)).get("return", Any)

    def _query_args(self, name: str, handler: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The arguments in the types the handler's parameters declare, as an activity's are
        (``Fruit`` from the ``1`` an HTTP caller sent)."""
        hints = _hints(handler)
        if not hints:
            return args
        try:
            params = [p for p in inspect.signature(handler).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            return args
        converted = list(args)
        for i, (param, value) in enumerate(zip(params, args, strict=False)):
            type_ = hints.get(param.name, Any)
            if type_ is Any:
                continue
            try:
                converted[i] = self.codec.decode(self.codec.encode(value), type_)
            except PayloadError as err:
                raise QueryError(f"query {name!r} argument {param.name!r}: {err}") from err
        return tuple(converted)

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
        args = self._query_args(name, handler, args)
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        self.querying = name
        try:
            with _guard.guarded():
                result = handler(*args)
            if inspect.isawaitable(result):
                close_value(result)
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
