"""The engine: embeds in the host program and runs workflows and activities."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Self, final

import anyio
from anyio.abc import TaskGroup
from typing_extensions import TypeVar

from .._pending import PendingWork, describe_pending
from .._wake import Wakeup, keep_running
from ..authoring import Activity, Workflow, by_name
from ..client import DEFAULT_URL, Client, EventFeeds, EventStream, RunHandle, RunPage, ScheduleHandle
from ..errors import ConfigurationError, RetoldError, StoreError
from ..history.attributes import SearchAttributeValue
from ..history.codec import Codec
from ..history.export import History
from ..runtime import StepRunner
from ..stores import LiveWorker, PurgeReport, RunRecord, Store, open_store
from . import _liveness
from ._activity_worker import ActivityWorker
from ._ahead import RunAhead
from ._cache import InstanceCache
from ._context import WorkerContext
from ._engine_host import EngineHost
from ._fingerprint import fingerprint
from ._hosting import HostingWatch
from ._loops import lease_loop, register_and_reap, retention_loop, schedule_loop, timer_loop
from ._runs import Runs
from ._schedules import Schedule, ScheduleDescription
from ._workflow_worker import WorkflowWorker

__all__ = ["Engine"]

R = TypeVar("R", default=Any)  # Any when a start by name cannot tell
P = ParamSpec("P")
log = logging.getLogger("retold.engine")

def _seconds(value: timedelta | float, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ConfigurationError(f"Engine {name} must be positive, got {seconds}")
    return seconds


@final
class Engine:
    """Runs workflows and activities inside the host program, on a durable store.

    Use it as an async context manager; while it is open it claims workflow
    tasks, activity tasks and timers from the store. Several engines (in
    several processes) can share one store.

    Args:
        url: ``sqlite:///path.db`` (the default is ``retold.db`` in the
            working directory), ``postgresql+psycopg://user@host/db`` to
            share work between machines (``retold[postgres]``), or
            ``memory://`` for tests (a pure in-memory store: nothing survives
            the process; ``sqlite://`` is SQLite in memory), or
            ``nats://host:4222`` for NATS JetStream (``retold[nats]``,
            docs/nats.md).
        workflows: the workflows this engine hosts (with ``run_workers=False``:
            the definitions it knows, for typed starts and queries).
        activities: the activities this engine runs.
        codec: payload codec (default :class:`~retold.JsonCodec`).
        cache_size: live runs kept in memory instead of being replayed.
        activity_concurrency: attempts running at once, for every task queue
            (an int) or per queue (a mapping of queue name to limit). The
            engine serves the queues its activities name, plus the keys of
            this mapping, and claims only the activities it hosts.
        workflow_concurrency: workflow tasks processed at once.
        poll_interval: how often to look for work made by other processes
            (on PostgreSQL they also notify: polling only covers a lost
            notification).
        lease: how long a claimed task stays ours without renewal; a dead
            engine's tasks come back after this long.
        on_workflow_task_failure: what a failing workflow task does to its
            run (nondeterminism after a deploy, a sandbox violation, a
            payload that cannot be decoded: errors of the code, not the
            workflow's own exception). ``"block"`` (the default) keeps the
            run open and *blocked*, its task retried with capped backoff
            (at once by an engine running other code), so rolling the code
            back or fixing it resumes the run with nothing lost.
            ``"fail"`` fails the run after ``max_workflow_task_attempts``.
        max_workflow_task_attempts: with ``on_workflow_task_failure="fail"``,
            a workflow task that fails this many times fails its run. With
            either, a task whose workers die this many times while running
            it (``os._exit``, an OOM kill) fails its run.
        workflow_task_retry_delay: the wait before the first retry of a failed
            workflow task; it doubles with each attempt (at most 60 s).
        deadlock_timeout: how long one step of workflow code (the code
            between two awaits, a replay) may run without yielding. Past it
            the step is interrupted and its workflow task fails with
            :class:`~retold.errors.WorkflowDeadlockError` and the stack where
            it was stuck, while the engine goes on. None disables it; it is
            off while a debugger is attached.
        store: a store object to use instead of ``url``.
        max_pending_signals: how many signals a run may hold that it has not
            processed yet before ``signal()`` through this engine raises
            :class:`~retold.SignalBufferFullError` (writing nothing). None:
            the store's (``SqlStore(url, max_pending_signals=...)``, 10,000
            by default).
        clock: the store's clock (seconds since the epoch), for tests.
        run_workers: False makes a client-only engine that starts, signals
            and reads runs but executes nothing (the web app of split mode;
            workers run ``retold worker``).
        retention: how long finished runs are kept, by close time. The engine
            deletes older ones (see :meth:`purge`) when it opens and every 10
            minutes after; None (the default) keeps them forever.
        telemetry: OpenTelemetry spans and metrics (docs/operations.md). None
            (the default) records them when OpenTelemetry is installed
            (``retold[otel]``) and an SDK is set up (global providers, or
            those given below) by the time the engine opens; False never;
            True requires OpenTelemetry.
        tracer_provider: the OpenTelemetry tracer provider to use instead of
            the global one.
        meter_provider: the OpenTelemetry meter provider to use instead of
            the global one.

    Attributes:
        workflows: the hosted workflows, by registered name.
        activities: the hosted activities, by registered name.
        codec: the payload codec.
        fingerprint: a hash of the hosted workflows' code (16 hex digits),
            recorded with a blocked run's failure.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        workflows: Iterable[object] = (),
        activities: Iterable[object] = (),
        codec: Codec | None = None,
        cache_size: int = 1000,
        activity_concurrency: int | Mapping[str, int] = 100,
        workflow_concurrency: int = 64,
        poll_interval: timedelta | float = 0.5,
        lease: timedelta | float = 5.0,
        on_workflow_task_failure: Literal["block", "fail"] = "block",
        max_workflow_task_attempts: int = 5,
        workflow_task_retry_delay: timedelta | float = 1.0,
        deadlock_timeout: timedelta | float | None = 2.0,
        store: Store | None = None,
        max_pending_signals: int | None = None,
        clock: Callable[[], float] | None = None,
        run_workers: bool = True,
        retention: timedelta | float | None = None,
        telemetry: bool | None = None,
        tracer_provider: object | None = None,
        meter_provider: object | None = None,
    ) -> None:
        self.workflows: dict[str, Workflow[..., Any]] = by_name(workflows, Workflow, "workflow", "workflows")
        self.activities: dict[str, Activity[..., Any]] = by_name(activities, Activity, "activity", "activities")
        if cache_size < 1:
            raise ConfigurationError("Engine cache_size must be at least 1")
        if max_pending_signals is not None and max_pending_signals < 1:
            raise ConfigurationError(f"Engine max_pending_signals must be at least 1, got {max_pending_signals}")
        if workflow_concurrency < 1:
            raise ConfigurationError("Engine workflow_concurrency must be at least 1")
        if max_workflow_task_attempts < 1:
            raise ConfigurationError("Engine max_workflow_task_attempts must be at least 1")
        if on_workflow_task_failure not in ("block", "fail"):
            raise ConfigurationError(
                f"Engine on_workflow_task_failure must be 'block' or 'fail', got {on_workflow_task_failure!r}")
        self.on_workflow_task_failure = on_workflow_task_failure
        self.fingerprint = fingerprint(self.workflows.values())
        if store is None:
            store = open_store(url, clock=clock) if clock else open_store(url)
        self.store: Store = store
        # Every change to a run: decided by the state machine, recorded by the store.
        self.runs = Runs(self.store, max_pending_signals=max_pending_signals)
        self.ahead = RunAhead(self)  # the fast path: steps computed with the input that causes them
        self.cache = InstanceCache(cache_size)
        queues = {a.options.task_queue for a in self.activities.values()} or {"default"}
        if isinstance(activity_concurrency, Mapping):
            queues |= set(activity_concurrency)
            self._queue_limits = {q: int(activity_concurrency.get(q, 100)) for q in sorted(queues)}
        else:
            self._queue_limits = dict.fromkeys(queues, int(activity_concurrency))
        if any(limit < 1 for limit in self._queue_limits.values()):
            raise ConfigurationError("Engine activity_concurrency limits must be at least 1")
        self.hosting = HostingWatch(self, self._queue_limits)  # what the registry says this engine runs
        self.workflow_concurrency = workflow_concurrency
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.lease = _seconds(lease, "lease")
        if self.lease > 3600:
            raise ConfigurationError(f"Engine lease must be at most an hour (3600 seconds), got {self.lease}")
        self.max_workflow_task_attempts = max_workflow_task_attempts
        self.workflow_task_retry_delay = _seconds(workflow_task_retry_delay, "workflow_task_retry_delay")
        limit = None if deadlock_timeout is None else _seconds(deadlock_timeout, "deadlock_timeout")
        if limit is not None and limit <= 0:
            raise ConfigurationError(
                f"Engine deadlock_timeout must be positive (or None to disable it), got {deadlock_timeout!r}"
            )
        self.steps = StepRunner(limit)  # workflow code runs in step threads, under this limit
        self.retention = None if retention is None else _seconds(retention, "retention")
        self.worker_id = f"engine-{uuid.uuid4().hex[:12]}"
        self._host = _liveness.host_key()
        self.wake_workflows = Wakeup()
        self.wake_activities = Wakeup()
        self.wake_timers = Wakeup()
        self.wake_schedules = Wakeup()
        self.draining = False
        self._run_workers = run_workers
        self._activity_workers: list[ActivityWorker] = []
        self.activity_workers = self._activity_workers  # read by the workflow worker's fast path
        self.workflow_worker: WorkflowWorker | None = None  # read by the activity workers' fast path
        self._task_group: TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None  # what __aexit__ undoes, while open
        self._registered = False
        self._held: list[str] = []  # runs started here whose first steps were not run when it closed
        # Starting, signalling, querying, watching and waiting go through the
        # engine's own client; it tells the engine's workers at once.
        self.client = Client(
            workflows=self.workflows.values(), codec=codec, store=store, poll_interval=self.poll_interval,
            telemetry=telemetry, tracer_provider=tracer_provider, meter_provider=meter_provider,
            host=EngineHost(self, self.steps),
        )
        self.codec: Codec = self.client.codec
        self.feeds: EventFeeds = self.client.feeds  # workers report their commits to the watchers
        self.telemetry = self.client.telemetry

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise ConfigurationError("this Engine is already open: enter it once (async with engine: ...)")
        # Every step pushes its undo before the next one runs: whatever fails
        # (or is cancelled) part-way leaves nothing open behind it.
        async with contextlib.AsyncExitStack() as stack:
            # The client opens (and at the end closes) the store, the event
            # feeds, the store's listener and the wait for closed runs.
            await stack.enter_async_context(self.client)
            self.telemetry = self.client.telemetry  # loaded again as the client opened: an SDK set up since counts
            self.telemetry.attach(self)
            stack.callback(self.telemetry.detach, self)
            stack.push_async_callback(self._release_work)
            stack.callback(self._forget_workers)
            group = await stack.enter_async_context(anyio.create_task_group())
            self._task_group = group
            stack.callback(group.cancel_scope.cancel)
            # Streams end (with an error) before the group's tasks are cancelled:
            # a task of the engine's that follows one learns why it ended.
            stack.callback(self.feeds.close)
            stack.callback(self.steps.close)
            if self._run_workers:
                await register_and_reap(self)
                self.workflow_worker = WorkflowWorker(self)
                group.start_soon(self._keep_running, self.workflow_worker.run)
                for queue, limit in self._queue_limits.items():
                    worker = ActivityWorker(self, queue, limit)
                    self._activity_workers.append(worker)
                    group.start_soon(self._keep_running, worker.run)
                group.start_soon(self._keep_running, partial(timer_loop, self))
                group.start_soon(self._keep_running, partial(lease_loop, self))
                group.start_soon(self._keep_running, partial(schedule_loop, self))
            if self.retention is not None:
                group.start_soon(self._keep_running, partial(retention_loop, self))
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            raise ConfigurationError("this Engine is not open: use it as `async with engine: ...`")
        # In reverse order: close the feeds, cancel and leave the task group,
        # drop the cache, hand back leases, unregister, close the client (its store).
        await stack.aclose()

    def _forget_workers(self) -> None:
        if self.workflow_worker is not None:  # started here, first steps not run: shown to claims (_release_work)
            self._held = list(self.workflow_worker.deferred)
        self._task_group = None
        self.workflow_worker = None
        self._activity_workers.clear()
        self.cache.clear()

    async def _release_work(self) -> None:
        with anyio.CancelScope(shield=True):
            # Work interrupted by the shutdown goes back at once,
            # instead of when its leases run out (or its hold ends).
            # Each step is tried even if one before failed: a store hiccup
            # here costs only the wait (a lease, a hold) it would have saved.
            held, self._held = self._held, []
            try:
                await self.runs.unhold(held)
            except StoreError as exc:
                log.warning("engine %s could not show the %d first workflow tasks it held to other engines "
                            "(they are claimed when their hold ends): %s", self.worker_id, len(held), exc)
            try:
                await self.runs.release_leases(self.worker_id)
            except StoreError as exc:
                log.warning("engine %s could not release its leases (its tasks are taken again when they "
                            "lapse): %s", self.worker_id, exc)
            if self._registered:
                self._registered = False
                try:
                    await self.store.unregister_worker(self.worker_id)
                except StoreError as exc:
                    log.warning("engine %s could not unregister (it is seen as dead once its heartbeat is "
                                "old): %s", self.worker_id, exc)

    async def _keep_running(self, loop: Callable[[], Awaitable[None]]) -> None:
        await keep_running(loop, self.poll_interval, log, "engine")

    async def purge(
        self, older_than: timedelta | float, *, statuses: Iterable[str] | None = None,
        workflow: str | None = None, dry_run: bool = False,
    ) -> PurgeReport:
        """Delete finished runs that closed more than ``older_than`` ago: see `retold.Client.purge`."""
        return await self.client.purge(older_than, statuses=statuses, workflow=workflow, dry_run=dry_run)

    async def drain(self, grace: timedelta | float) -> bool:
        """Stop claiming work and wait up to ``grace`` for the tasks in flight.

        Leaving the ``async with`` block afterwards hands back whatever is
        still running, so other engines take it at once instead of after
        the lease. Used by ``python -m retold worker`` on SIGTERM.

        Returns:
            True if every task in flight finished within ``grace``.
        """
        self._check_open()
        seconds = grace.total_seconds() if isinstance(grace, timedelta) else float(grace)
        self.draining = True
        self.wake_workflows.set()
        self.wake_activities.set()
        with anyio.move_on_after(max(seconds, 0.0)):
            while self._busy():
                await anyio.sleep(0.02)
            return True
        return False

    def _busy(self) -> bool:
        workflows = self.workflow_worker is not None and bool(self.workflow_worker.processing)
        return workflows or any(worker.busy for worker in self._activity_workers)

    # -- the client API, through the engine's own client ----------------------------------

    async def start(
        self, workflow: Workflow[P, R] | str, /, *args: P.args, **kwargs: P.kwargs
    ) -> RunHandle[R]:
        """Start a run of ``workflow`` and return its handle.

        ``workflow`` is a ``@retold.workflow`` function: mypy checks the
        arguments against its signature (positional, keyword, keyword-only,
        defaults) and types the result; they are checked again here. Give
        the workflow id or an idempotency key with
        ``workflow.with_options(id=..., idempotency_key=...)``::

            run = await engine.start(checkout.with_options(id="order-42"), "order-42", cents=500)

        Or ``workflow`` is a workflow's registered name, to start one that
        other processes host (untyped); then the keywords ``id=``,
        ``idempotency_key=`` and ``id_reuse_policy=`` are the start's
        options, the others arguments.
        A client-only engine (``run_workers=False``) starts any workflow
        function; an engine that runs workers refuses one it does not host,
        since that is most often a forgotten registration: pass its name to
        mean "hosted elsewhere".

        Starting again with the same id (or idempotency key) and the same
        input returns the existing run instead of a new one; once it is
        closed, ``with_options(id_reuse_policy=...)`` may start a new run
        under the id instead (docs/starting.md).

        Raises:
            ConfigurationError: ``workflow`` is not a workflow.
            NotRegisteredError: the workflow is not hosted by this engine.
            InvalidArgumentsError: the arguments do not fit its signature or
                do not decode into the annotated types (at any depth); the
                message names the argument and the path of the bad value.
                Nothing is stored.
            PayloadError: an argument cannot be encoded.
            IdempotencyError: the id or key was used with other input.
        """
        return await self.client.start(workflow, *args, **kwargs)

    async def start_by_name(
        self,
        workflow: str,
        args: Sequence[Any] = (),
        *,
        id: str | None = None,  # noqa: A002 - the public name
        idempotency_key: str | None = None,
        id_reuse_policy: str | None = None,
        run_timeout: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        start_delay: timedelta | float | None = None,
    ) -> RunHandle[Any]:
        """Start a run of the workflow registered as ``workflow``, untyped.

        For callers that know workflows by name: the HTTP API, the CLI, other
        languages. ``args`` are in their JSON form (objects for dataclasses,
        strings for datetimes, ...): the codec decodes each, at every depth,
        into the type its parameter is annotated with, exactly as the run
        will read them; nothing is coerced (``"2"`` is not an ``int``).

        Raises:
            NotRegisteredError: no workflow of that name is hosted here.
            InvalidArgumentsError: the arguments do not fit the signature or
                their annotated types; the message names the argument and the
                path of the bad value. Nothing is stored.
            IdempotencyError: the id or key was used with other input.
        """
        return await self.client.start_by_name(workflow, args, id=id, idempotency_key=idempotency_key,
                                               id_reuse_policy=id_reuse_policy, run_timeout=run_timeout,
                                               execution_timeout=execution_timeout, start_delay=start_delay)

    async def signal_with_start(
        self, workflow: Workflow[P, R] | str, signal: str, value: Any, /, *args: P.args, **kwargs: P.kwargs,
    ) -> RunHandle[R]:
        """Signal the run of this workflow id, starting it first if there is none, in one transaction::

            run = await engine.signal_with_start(cart.with_options(id="cart-7"), "add", "apple", "cust-1")

        ``signal`` and ``value`` are the signal; the arguments after them are
        the workflow's, typed as for :meth:`start`. See
        :meth:`Client.signal_with_start <retold.Client.signal_with_start>`.
        """
        return await self.client.signal_with_start(workflow, signal, value, *args, **kwargs)

    async def signal_with_start_by_name(
        self, workflow: str, signal: str, value: Any, args: Sequence[Any] = (), *,
        id: str,  # noqa: A002 - the public name
        id_reuse_policy: str | None = None,
        run_timeout: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        start_delay: timedelta | float | None = None,
    ) -> RunHandle[Any]:
        """:meth:`signal_with_start` by workflow name, with arguments in their JSON form (HTTP, CLI)."""
        return await self.client.signal_with_start_by_name(
            workflow, signal, value, args, id=id, id_reuse_policy=id_reuse_policy, run_timeout=run_timeout,
            execution_timeout=execution_timeout, start_delay=start_delay)

    def get_handle(self, workflow_or_run_id: str) -> RunHandle[Any]:
        """A handle on an existing run, by workflow id or run id."""
        return self.client.get_handle(workflow_or_run_id)

    async def schedule(
        self, schedule: Schedule, workflow: Workflow[P, R] | str, /, *args: P.args, **kwargs: P.kwargs,
    ) -> ScheduleHandle:
        """Store a schedule that starts ``workflow`` at every fire time: see
        :meth:`Client.schedule <retold.Client.schedule>` and docs/schedules.md::

            await engine.schedule(retold.Schedule("nightly-report", cron="0 2 * * *"), report, "sales")
        """
        handle = await self.client.schedule(schedule, workflow, *args, **kwargs)
        self.wake_schedules.set()  # its first fire may come before the fire loop's next poll
        return handle

    async def schedule_by_name(self, schedule: Schedule, workflow: str, args: Sequence[Any] = ()) -> ScheduleHandle:
        """:meth:`schedule` by workflow name, with arguments in their JSON form (HTTP, CLI)."""
        handle = await self.client.schedule_by_name(schedule, workflow, args)
        self.wake_schedules.set()
        return handle

    def get_schedule(self, schedule_id: str) -> ScheduleHandle:
        """A handle on a stored schedule, by id."""
        return self.client.get_schedule(schedule_id)

    async def list_schedules(self, *, next_fires: int = 1) -> list[ScheduleDescription]:
        """Every schedule, by id, each with its next ``next_fires`` fire times."""
        return await self.client.list_schedules(next_fires=next_fires)

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str | None = None) -> None:
        """Run ``fn(*args)`` in the engine's task group (for its workers and feeds); ``name``: the task's."""
        assert self._task_group is not None
        self._task_group.start_soon(fn, *args, name=name)

    def _check_open(self) -> None:
        if self._task_group is None:
            raise RetoldError("the engine is not open: use `async with retold.Engine(...) as engine:`")

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None,
        limit: int = 100, offset: int = 0, id_prefix: str | None = None,
        started_after: datetime | None = None, started_before: datetime | None = None,
        closed_after: datetime | None = None, closed_before: datetime | None = None,
        search_attributes: Mapping[str, SearchAttributeValue] | None = None, cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first, filtered, a page at a time; see :meth:`Client.list_runs <retold.Client.list_runs>`."""
        return await self.client.list_runs(
            status=status, workflow=workflow, limit=limit, offset=offset, id_prefix=id_prefix,
            started_after=started_after, started_before=started_before, closed_after=closed_after,
            closed_before=closed_before, search_attributes=search_attributes, cursor=cursor,
        )

    async def pending_work(self, record: RunRecord) -> PendingWork:
        """What the run of ``record`` waits for (see :class:`~retold.PendingWork`); this engine counts as running."""
        here = LiveWorker(self.worker_id, self.hosting.hosting) if self.workflow_worker is not None else None
        return await describe_pending(self.store, record, here)

    def notify_closed(self, run_id: str) -> None:
        """Wake everyone waiting for ``run_id`` to close."""
        self.client.notify_closed(run_id)

    async def wait_closed(self, ident: str, *, run_id: bool = False) -> RunRecord:
        """Wait until the run (following continue-as-new) is closed; see :meth:`RunHandle.result`."""
        # The engine's own client, opened and closed with it (kept for the engine's callers).
        return await self.client._wait_closed(ident, run_id=run_id)

    async def signal(self, ident: str, name: str, value: Any) -> None:
        """Append a signal to a running run; see :meth:`RunHandle.signal`."""
        await self.client.get_handle(ident).signal(name, value)

    async def cancel(self, ident: str, reason: str) -> None:
        """Ask a running run to cancel; see :meth:`RunHandle.cancel`."""
        await self.client.get_handle(ident).cancel(reason)

    async def terminate(self, ident: str, reason: str = "") -> None:
        """Close a run at once without running its code; see :meth:`RunHandle.terminate`."""
        await self.client.get_handle(ident).terminate(reason)

    async def query(self, ident: str, name: str, args: tuple[Any, ...]) -> Any:
        """Answer a query from the run's replayed state; see :meth:`RunHandle.query`."""
        return await self.client.get_handle(ident).query(name, *args)

    async def history(self, ident: str, *, after: int = 0, limit: int | None = None) -> History:
        """The run's events, in order, as a :class:`History`; see :meth:`RunHandle.history`."""
        return await self.client.get_handle(ident).history(after=after, limit=limit)

    def watch(self, ident: str, after_seq: int) -> EventStream:
        """Follow a run's events after ``after_seq``; see :meth:`RunHandle.watch`."""
        return self.client.get_handle(ident).watch(after_seq=after_seq)


if TYPE_CHECKING:
    def _engine_is_a_worker_context(engine: Engine) -> WorkerContext:
        return engine  # checked by mypy: the engine provides all its workers may use of it
