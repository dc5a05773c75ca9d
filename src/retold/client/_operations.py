"""What a run's handle calls on its client: describe, wait, signal, cancel, terminate, query, history, watch."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from .._pending import PendingWork, describe_pending
from .._wake import Wakeup
from ..engine import Runs
from ..errors import NotRegisteredError, PayloadError, RetoldError, SignalBufferFullError
from ..history.codec import Codec
from ..history.export import History
from ..runtime import StepRunner, replay
from ..stores import RunRecord, Store
from ._feed import EventFeeds, EventStream
from ._handle import RunDescription

if TYPE_CHECKING:
    from .. import _telemetry
    from ..authoring import Workflow
    from ._host import Host

__all__ = ["CloseWaiter", "RunOperations"]

_CLOSING_PATIENCE = 30.0  # seconds signal() waits for a run deciding again whether to close


class CloseWaiter:
    """Callers waiting for one run to close, and the run's record when this process closed it.

    The record rides on the waiter, so a caller woken by a close gets it even
    when many runs closed at once (:attr:`Runs.closed` keeps only the last ones).
    """

    __slots__ = ("_event", "missing", "record")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.record: RunRecord | None = None
        self.missing = False  # the store had no such run (the callers read it, for the error)

    async def wait(self) -> None:
        await self._event.wait()

    def set(self, record: RunRecord | None = None, *, missing: bool = False) -> None:
        """Wake the callers, handing them ``record`` (a closed run's, or None: they read it)."""
        self.record = record
        self.missing = missing
        self._event.set()


class RunOperations:
    """The operations on one run that :class:`RunHandle` calls; :class:`Client` provides the state."""

    workflows: dict[str, Workflow[..., Any]]
    codec: Codec
    store: Store
    feeds: EventFeeds
    telemetry: _telemetry.NoTelemetry
    _host: Host | None
    _own_runs: Runs | None
    _steps: StepRunner
    _closed_waiters: dict[str, CloseWaiter]
    _first_looks: set[str]
    _wake_closed: Wakeup
    _update_waiters: int

    def _check_open(self) -> None:
        raise NotImplementedError

    def _unknown(self, name: str, why: str) -> NotRegisteredError:
        raise NotImplementedError

    async def _describe(self, ident: str) -> RunDescription:
        record = await self.store.get_run(ident)
        return RunDescription.from_record(record, await self._pending_work(record))

    async def _pending_work(self, record: RunRecord) -> PendingWork:
        """What the run waits for, judged against the engines running now (and this one's host)."""
        if self._host is not None:
            return await self._host.pending_work(record)
        return await describe_pending(self.store, record)

    async def _wait_closed(self, ident: str, *, run_id: bool = False) -> RunRecord:
        """Wait until the run (following continue-as-new) is closed.

        ``run_id`` says ``ident`` is a run id, not a workflow id: the waiter
        is registered before the first read, which then suffices; that first
        read is the client's watch of closed runs (one read for every run
        waited on, which hands the records of closed ones to their waiters).
        A run this process closed is known without a read
        (:attr:`Runs.closed`), and so is one this process's engine is running
        (no first read: its close wakes the waiter, and a close elsewhere is
        found by the client's poll).
        """
        self._check_open()
        register = run_id
        closed = self._runs().closed
        handed: RunRecord | None = None  # the record the close handed to the waiter that woke us
        while True:
            record = handed or (closed.get(ident) if run_id else None)
            handed = None
            waiter = None
            if record is None:
                waiter = self._closed_waiters.setdefault(ident, CloseWaiter()) if register else None
                if waiter is not None:
                    if self._host is None or not self._host.running_here(ident):
                        self._first_looks.add(ident)
                        self._wake_closed.set()
                    await waiter.wait()
                    # Woken: closed (with its record), or unknown to the store, or the
                    # watch's read failed (then it reads for itself, which says why).
                    handed, register = waiter.record, False
                    continue
                record = await self.store.get_run(ident)
            if record.status == "continued" and record.next_run_id:
                ident, register, run_id = record.next_run_id, True, True
                continue
            if record.status != "running":
                return record
            if waiter is None:
                # Not registered yet (a workflow id, or just woken): register
                # under the run id, then read once more so a close in between is seen.
                ident, register, run_id = record.run_id, True, True
                continue
            await waiter.wait()
            # Woken because it closed: with its record if this process closed it,
            # else read it without registering again.
            handed, register = waiter.record, False

    def _runs(self) -> Runs:
        if self._host is not None:
            return self._host.runs
        assert self._own_runs is not None
        return self._own_runs

    async def _signal(self, ident: str, name: str, value: Any) -> None:
        self._check_open()
        if not name:
            raise RetoldError("a signal name must not be empty")
        payload = self.codec.encode(value)
        with self.telemetry.client_call("Signal", name, ident):
            if any(workflow.signals for workflow in self.workflows.values()):
                await self._check_signal(ident, name, payload)
            self.feeds.notify(await self._send_signal(ident, name, payload))
        if self._host is not None:
            self._host.input_recorded(ident)

    async def _send_signal(self, ident: str, name: str, payload: bytes) -> str:
        """Record a signal; while the run decides again whether to close, wait and retry (30 s at most)."""
        delay, deadline = 0.005, time.monotonic() + _CLOSING_PATIENCE
        while True:
            try:
                return await self._runs().signal(ident, name, payload)
            except SignalBufferFullError as exc:
                # Refused for the length of one replay: then the run has closed
                # (RunFinishedError next time) or goes on (the signal is taken).
                if not exc.closing or time.monotonic() >= deadline:
                    raise
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _check_signal(self, ident: str, name: str, payload: bytes) -> None:
        """Refuse a value that the run's workflow declares another type for (writes nothing)."""
        record = await self.store.get_run(ident)
        workflow = self.workflows.get(record.workflow)
        if workflow is None or name not in workflow.signals:
            return
        type_ = workflow.signals[name]
        try:
            self.codec.decode(payload, type_)
        except PayloadError as err:
            raise PayloadError(
                f"signal {name!r} to run {record.run_id!r} of workflow {workflow.name!r} was not sent: "
                f"{err} (the type @retold.workflow(signals=...) declares for it); send a value of that type"
            ) from err

    async def _cancel(self, ident: str, reason: str) -> None:
        self._check_open()
        self.feeds.notify(await self._runs().request_cancel(ident, reason))
        if self._host is not None:
            self._host.input_recorded(ident)

    async def _terminate(self, ident: str, reason: str) -> None:
        self._check_open()
        run_id = await self._runs().terminate(ident, reason)
        self.feeds.notify(run_id)
        if self._host is not None:
            self._host.run_terminated(run_id)

    async def _query(self, ident: str, name: str, args: tuple[Any, ...]) -> Any:
        self._check_open()
        with self.telemetry.client_call("Query", name, ident):
            return await self._replayed_query(ident, name, args)

    async def _replayed_query(self, ident: str, name: str, args: tuple[Any, ...]) -> Any:
        record = await self.store.get_run(ident)
        definition = self.workflows.get(record.workflow)
        if definition is None:
            raise self._unknown(record.workflow, "queries replay the workflow's code here")
        host = self._host
        cached = host.cached(record.run_id) if host is not None else None
        if host is not None and cached is not None:
            _, pending = await self.store.load(record.run_id, cached.last_seq)
            # Still cached after the load: not taken meanwhile by a step that
            # may advance it past what is committed (the fast path).
            if not pending and host.cached(record.run_id) is cached:
                try:
                    return self._roundtrip(cached.query(name, args), cached.query_result_type(name))
                finally:
                    if cached.query_refused:
                        # The handler was refused halfway through a change: this copy
                        # may differ from its history, so the next step replays the run.
                        host.drop_cached(cached)
        _, events = await self.store.load(record.run_id, 0)
        replica, completion = await self._steps.run(
            record.run_id, lambda: replay(definition, record.run_id, self.codec, events, replay_only=True))
        try:
            completion.unwrap()
            return self._roundtrip(replica.query(name, args), replica.query_result_type(name))
        finally:
            replica.close()

    def _roundtrip(self, value: Any, type_: Any = Any) -> Any:
        return self.codec.decode(self.codec.encode(value), type_)

    async def _history(self, ident: str, after: int = 0, limit: int | None = None) -> History:
        self._check_open()
        if after < 0:
            raise RetoldError(f"after must not be negative, got {after}")
        if limit is not None and limit < 1:
            raise RetoldError(f"limit must be at least 1, got {limit}")
        record = await self.store.get_run(ident)
        if limit is None:  # (stores written before pages existed take two arguments)
            _, events = await self.store.load(record.run_id, after)
        else:
            _, events = await self.store.load(record.run_id, after, limit)
        return History(events, workflow=record.workflow, workflow_id=record.workflow_id, run_id=record.run_id)

    def _watch(self, ident: str, after_seq: int) -> EventStream:
        self._check_open()
        if after_seq < 0:
            raise RetoldError(f"after_seq must not be negative, got {after_seq}")

        async def resolve() -> str:
            return (await self.store.get_run(ident)).run_id

        return EventStream(self.feeds, resolve, after_seq)
