"""Run handles: the one door through which callers reach a run, through a client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final, overload

import anyio

from .._pending import PendingWork
from ..errors import (
    ResultTimeoutError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
    exception_from_failure,
)
from ..history.attributes import SearchAttributeValue, decode_attributes
from ..history.export import History
from ..history.failure import BlockedTask, Failure

if TYPE_CHECKING:
    from ..stores import RunRecord
    from ._client import Client
    from ._feed import EventStream

__all__ = ["RunDescription", "RunHandle", "WorkflowTaskFailure"]

R = TypeVar("R")
T = TypeVar("T")


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@final
@dataclass(frozen=True, slots=True)
class WorkflowTaskFailure:
    """Why a run is blocked: the last failed attempt of its workflow task.

    A workflow task fails on an error of the code rather than the
    workflow's own exception: most often a deploy whose code no longer
    replays the run's history (``NondeterminismError``), or a sandbox
    violation. The run stays open and its task is retried until an attempt
    succeeds: roll the code back, or deploy the fix (``retold.patched``),
    or :meth:`RunHandle.terminate` it.

    Attributes:
        type: the error's type, e.g. ``"retold.errors.NondeterminismError"``.
        message: the error's message (for nondeterminism: the event
            recorded, and what the code asked for instead).
        details: its traceback.
        seq: the diverging event's number, for a ``NondeterminismError``.
        attempts: failed attempts since the run was blocked.
        since: when the first of them failed.
        retry_at: when the task is retried next (at once by an engine
            running other code).
        fingerprint: the code fingerprint (``Engine.fingerprint``) of the
            engine whose attempt failed last.
    """

    type: str
    message: str
    details: str
    seq: int | None
    attempts: int
    since: datetime
    retry_at: datetime
    fingerprint: str | None

    @classmethod
    def from_record(cls, record: BlockedTask) -> WorkflowTaskFailure:
        """Build it from a workflow task's stored failure (``RunRecord.task_failure``)."""
        failure = record.failure
        return cls(
            type=failure.type, message=failure.message, details=failure.details, seq=failure.seq,
            attempts=record.attempts, since=datetime.fromtimestamp(record.since, UTC),
            retry_at=datetime.fromtimestamp(record.retry_at, UTC), fingerprint=record.fingerprint,
        )


@final
@dataclass(frozen=True, slots=True)
class RunDescription:
    """A run's status at the time it was read.

    Attributes:
        workflow_id: the id given at start.
        run_id: this run's id.
        workflow: the workflow's registered name.
        status: running, blocked (open, but its workflow task keeps failing:
            see ``blocked``), completed, failed, cancelled, continued or
            terminated.
        started_at: when the run was created.
        closed_at: when it closed, if it has.
        event_count: events in its history.
        failure: the failure message, for a failed run.
        parent_run_id: the parent's run id, for a child workflow.
        next_run_id: the run it continued as, after continue-as-new.
        blocked: why the run is blocked (None unless ``status`` is
            ``"blocked"``).
        pending: what a running run waits for: activities (attempts, last
            failure, next retry, lease holder), timers, children, signals not
            processed, and why it may be stuck; empty once it finished. Set
            by ``describe()``; None in lists of runs.
        search_attributes: the run's search attributes, by name (set at
            start, changed by ``retold.upsert_search_attributes``).
        memo: the memo the run was started with (JSON values), if any.
    """

    workflow_id: str
    run_id: str
    workflow: str
    status: str
    started_at: datetime
    closed_at: datetime | None
    event_count: int
    failure: str | None
    parent_run_id: str | None
    next_run_id: str | None
    blocked: WorkflowTaskFailure | None = None
    pending: PendingWork | None = None
    search_attributes: dict[str, SearchAttributeValue] = field(default_factory=dict)
    memo: dict[str, Any] | None = None

    @property
    def open(self) -> bool:
        """Whether the run has not closed yet (running or blocked)."""
        return self.status in ("running", "blocked")

    @classmethod
    def from_record(cls, record: RunRecord, pending: PendingWork | None = None) -> RunDescription:
        """Build a description from a store row (and the run's pending work, if read)."""
        started = _dt(record.created_at)
        assert started is not None
        blocked = None
        if record.status == "running" and record.task_failure is not None:
            blocked = WorkflowTaskFailure.from_record(record.task_failure)
        return cls(
            workflow_id=record.workflow_id,
            run_id=record.run_id,
            workflow=record.workflow,
            status="blocked" if blocked is not None else record.status,
            started_at=started,
            closed_at=_dt(record.closed_at),
            event_count=record.last_seq,
            failure=None if record.failure is None else record.failure.message,
            parent_run_id=record.parent_run_id,
            next_run_id=record.next_run_id,
            blocked=blocked,
            pending=pending,
            search_attributes=decode_attributes(record.search_attributes),
            memo=record.memo,
        )


@final
class RunHandle(Generic[R]):
    """A handle on a run: wait for its result, signal, query, cancel, read.

    Calls address the workflow id, so they follow the run across
    continue-as-new; ``run_id`` is the run that the start created.

    Attributes:
        workflow_id: the workflow id (or, for ``get_handle``, the id given).
        run_id: the run the start created or found (None for ``get_handle``).
        created: True if the ``start`` call that made this handle created the
            run, False if it found one already started with the same id or
            idempotency key (and for ``get_handle``).
    """

    def __init__(
        self, client: Client, workflow_id: str, run_id: str | None, result_type: Any, *, created: bool = False
    ) -> None:
        self._client = client
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.created = created
        self._result_type = result_type

    def __repr__(self) -> str:
        return f"<RunHandle workflow_id={self.workflow_id!r} run_id={self.run_id!r}>"

    async def result(self, *, timeout: float | None = None) -> R:
        """Wait for the run to finish and return its result.

        Args:
            timeout: give up after this many seconds (``ResultTimeoutError``).

        Raises:
            WorkflowFailedError: the run failed; the failure is the cause.
            WorkflowCancelledError: the run was cancelled.
            WorkflowTerminatedError: the run was terminated.
            WorkflowTimedOutError: its run or execution timeout closed it.
            ResultTimeoutError: ``timeout`` passed first (a ``TimeoutError``
                whose message names the run and what it is waiting for; a
                blocked run waits until it is unblocked: see :meth:`describe`).
        """
        try:
            with anyio.fail_after(timeout):
                record = await self._client._wait_closed(self.run_id or self.workflow_id, run_id=bool(self.run_id))
        except TimeoutError:
            assert timeout is not None
            raise await self._timed_out(timeout) from None
        if record.status == "completed":
            assert record.result is not None
            value: R = self._client.codec.decode(record.result, self._result_type)
            return value
        failure = record.failure or Failure(type="", message="")
        cause = exception_from_failure(failure)
        if record.status == "cancelled":
            raise WorkflowCancelledError(record.run_id, f"run {record.run_id} was cancelled") from cause
        if record.status == "timed_out":
            told = failure.message.removeprefix("the run ")  # "timed out: its run timeout passed"
            raise WorkflowTimedOutError(record.run_id, f"run {record.run_id} of {record.workflow!r} {told}") from cause
        if record.status == "terminated":
            told = failure.message.removeprefix("the run ")  # "was terminated: <reason>"
            message = f"run {record.run_id} of {record.workflow!r} {told}"
            raise WorkflowTerminatedError(record.run_id, message) from cause
        root: BaseException = cause
        while root.__cause__ is not None:
            root = root.__cause__
        shown = f"{cause}" if str(root) in str(cause) else f"{cause} (caused by {root})"
        raise WorkflowFailedError(
            record.run_id, f"run {record.run_id} of {record.workflow!r} failed: {shown}"
        ) from cause

    async def _timed_out(self, timeout: float) -> ResultTimeoutError:
        ident = self.run_id or self.workflow_id
        try:
            with anyio.fail_after(5):  # the error says what it can; it never hangs
                record = await self._client.store.get_run(ident)
                while record.status == "continued" and record.next_run_id:
                    record = await self._client.store.get_run(record.next_run_id)
                waiting = (await self._client._pending_work(record)).waiting_for
        except Exception:  # noqa: BLE001 - the timeout is the error to raise
            return ResultTimeoutError(ident, self.workflow_id, timeout, ())
        if record.status != "running":
            waiting = (f"it closed ({record.status}) just as the wait ended",)
        return ResultTimeoutError(record.run_id, record.workflow_id, timeout, waiting)

    async def signal(self, name: str, value: Any = None) -> None:
        """Send a signal; it is durable when this returns.

        A signal that reaches a run while it decides again whether to close
        (signals arrived during its closing step) waits for that decision,
        briefly: it is then recorded, or refused with ``RunFinishedError``.

        Raises:
            RunNotFoundError: no such run.
            RunFinishedError: the run has finished.
            PayloadError: the value cannot be encoded.
            SignalBufferFullError: the run holds too many unprocessed signals
                (or is still deciding whether to close after 30 s).
        """
        await self._client._signal(self.workflow_id, name, value)

    async def query(self, name: str, *args: Any) -> Any:
        """Ask the run's query handler ``name``; writes nothing.

        A finished run (completed, failed, cancelled) answers too: its stored
        history is replayed and the handler sees the state the run ended in.

        Raises:
            QueryError: no such query, or its handler raised.
            NondeterminismError: the run's history no longer replays against
                the code (a finished run's, replayed to answer).
        """
        return await self._client._query(self.workflow_id, name, args)

    @overload
    async def update(
        self, name: str, *args: Any, id: str | None = ..., result_type: type[T], timeout: float | None = ...,
    ) -> T: ...
    @overload
    async def update(
        self, name: str, *args: Any, id: str | None = ..., result_type: None = ..., timeout: float | None = ...,
    ) -> Any: ...
    async def update(
        self, name: str, *args: Any, id: str | None = None, result_type: Any = None,  # noqa: A002
        timeout: float | None = None,
    ) -> Any:
        """Send update ``name`` with ``args`` and return its handler's result.

        The run's validator judges it first, on the run's current state: a
        rejected update leaves no trace. An accepted one is durable; the same
        ``id`` sent again (say, after a crash) runs once and gets the same
        reply. The reply is decoded into ``result_type`` (by default the
        handler's return annotation).

        Raises:
            UpdateRejectedError: no such handler, or its validator raised.
            UpdateFailedError: the handler raised (the cause), or the run closed first.
            UpdateTimeoutError: accepted, but not finished within ``timeout``
                seconds: ask again with :meth:`update_result`.
            RunFinishedError: the run is closed.
        """
        from ._updates import send_update, update_reply

        with self._client.telemetry.client_call("Update", name, self.workflow_id):
            run_id, update_id, hint = await send_update(self._client, self.workflow_id, name, args, id)
            return await update_reply(self._client, run_id, update_id,
                                      hint if result_type is None else result_type, timeout, sent=True)

    @overload
    async def update_result(
        self, update_id: str, *, result_type: type[T], timeout: float | None = ..., name: str | None = ...,
    ) -> T: ...
    @overload
    async def update_result(
        self, update_id: str, *, result_type: None = ..., timeout: float | None = ..., name: str | None = ...,
    ) -> Any: ...
    async def update_result(
        self, update_id: str, *, result_type: Any = None, timeout: float | None = None, name: str | None = None,
    ) -> Any:
        """Wait for the reply of update ``update_id`` sent earlier (its handler's result).

        Raises:
            UpdateRejectedError: the run never accepted an update with this id
                (with ``name``: an update of that name with this id).
            UpdateFailedError, UpdateTimeoutError: as :meth:`update`.
        """
        from ._updates import update_reply

        record = await self._client.store.get_run(self.run_id or self.workflow_id)
        return await update_reply(self._client, record.run_id, update_id,
                                  Any if result_type is None else result_type, timeout, name=name)

    async def cancel(self, reason: str = "") -> None:
        """Ask the run to cancel: ``CancelledError`` is raised at its current await."""
        await self._client._cancel(self.workflow_id, reason)

    async def terminate(self, reason: str = "") -> None:
        """Close the run at once, without running its code (unlike :meth:`cancel`).

        For a run that is stuck or blocked. ``WorkflowTerminated`` (with
        ``reason``) ends its history and its status becomes
        ``terminated``: its pending activities and timers are dropped (a
        running attempt's outcome is refused), its parent sees the child
        fail with ``reason``, and its children are asked to cancel.

        Raises:
            RunNotFoundError: no such run.
            RunFinishedError: the run has already finished.
        """
        await self._client._terminate(self.workflow_id, reason)

    async def describe(self) -> RunDescription:
        """The run's current status, with what it waits for (``pending``); for a blocked run, why (``blocked``)."""
        return await self._client._describe(self.workflow_id)

    async def history(self, *, after: int = 0, limit: int | None = None) -> History:
        """The events of the (latest) run, in order; ``.to_json()`` exports them.

        By default every event. ``after`` and ``limit`` read one page of a long
        history: the events numbered after ``after``, at most ``limit`` of them
        (fewer than ``limit``: the run has no more yet). A page is for reading;
        replay needs the whole history.

        Raises:
            RetoldError: a negative ``after``, or a ``limit`` below 1.
            RunNotFoundError: no such run.
        """
        return await self._client._history(self.workflow_id, after, limit)

    def watch(self, *, after_seq: int = 0) -> EventStream:
        """Follow the run's events: those after ``after_seq``, then new ones as
        they are committed, ending after the run's final event.

        The stream follows one run: the one ``start`` created, or for a handle
        by id, the run that id names now. Every subscriber of a run in this
        process shares one watcher: commits made through this client (or its engine) wake it at
        once, others are seen within ``poll_interval``.

        ::

            async with run.watch() as events:
                async for event in events:
                    print(event.seq, event.type)

        Raises:
            RunNotFoundError: no such run (when the stream starts).
        """
        return self._client._watch(self.run_id or self.workflow_id, after_seq)
