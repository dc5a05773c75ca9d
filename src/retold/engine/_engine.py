"""The engine: embeds in the host program and runs workflows and activities."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import typing
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, ParamSpec, Self, final

import anyio
import orjson
from anyio.abc import TaskGroup
from typing_extensions import TypeVar

from .. import _telemetry
from ..authoring._decorators import Activity, Workflow, pack_input
from ..client import RunDescription, RunHandle
from ..errors import (
    ConfigurationError,
    NotRegisteredError,
    PayloadError,
    RetoldError,
)
from ..history.codec import Codec, JsonCodec, PickleCodec
from ..history.export import History
from ..history.ids import check_id
from ..runtime import _guard
from ..runtime._replay import replay
from ..stores._protocol import RunRecord, RunStatus, StartRequest, Store
from ..stores._purge import PurgeReport
from ..stores.memory import MemoryStore
from ..stores.sql._store import SqlStore
from . import _liveness
from ._activity_worker import ActivityWorker
from ._cache import InstanceCache
from ._feed import EventFeeds, EventStream
from ._fingerprint import fingerprint
from ._runs import Runs
from ._steps import StepRunner
from ._wake import Wakeup
from ._workflow_worker import WorkflowWorker

__all__ = ["Engine"]

R = TypeVar("R", default=Any)  # Any when a start by name cannot tell
P = ParamSpec("P")
log = logging.getLogger("retold.engine")

DEFAULT_URL = "sqlite:///retold.db"
_LISTEN_RETRY = 2.0  # first wait before reopening a lost listener (polling covers it)
_PURGE_EVERY = 600.0  # seconds (store clock) between two purges of the retention loop
_PURGE_BATCH = 500  # runs per purge transaction at most (the store sizes batches to take ~20 ms)
_CLOSED_STATUSES = tuple(s for s in typing.get_args(RunStatus) if s != "running")


def _seconds(value: timedelta | float, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ConfigurationError(f"Engine {name} must be positive, got {seconds}")
    return seconds


_D = TypeVar("_D", Workflow[..., Any], Activity[..., Any])


def _registry(items: Iterable[object], kind: type[_D], name: str, plural: str) -> dict[str, _D]:
    # Iterable[object]: mypy infers list[object] for a list of definitions with different
    # signatures (``ACTIVITIES = [charge, refund]``); each item is checked here instead.
    registry: dict[str, _D] = {}
    for item in items:
        if not isinstance(item, kind):
            raise ConfigurationError(f"{plural}= takes @retold.{name} functions, got {item!r}")
        if registry.get(item.name, item) is not item:
            raise ConfigurationError(f"two {plural} are named {item.name!r}")
        registry[item.name] = item
    return registry



def _plain_form(codec: Codec, payload: bytes) -> bytes:
    """What an idempotent start compares: the values, not how a codec wrapped them.

    retold's own codecs encode the same values to the same bytes. Another
    codec may not (an encrypting one draws a random nonce): for it, the
    decoded values as canonical JSON, when they are JSON values.
    """
    if isinstance(codec, JsonCodec | PickleCodec):
        return payload
    try:
        return orjson.dumps(
            codec.decode(payload, Any), option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
        )
    except (PayloadError, TypeError):
        return payload

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
            the process; ``sqlite://`` is SQLite in memory).
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
        clock: Callable[[], float] | None = None,
        run_workers: bool = True,
        retention: timedelta | float | None = None,
        telemetry: bool | None = None,
        tracer_provider: object | None = None,
        meter_provider: object | None = None,
    ) -> None:
        self.workflows: dict[str, Workflow[..., Any]] = _registry(
            workflows, Workflow, "workflow", "workflows"
        )
        self.activities: dict[str, Activity[..., Any]] = _registry(
            activities, Activity, "activity", "activities"
        )
        if cache_size < 1:
            raise ConfigurationError("Engine cache_size must be at least 1")
        if workflow_concurrency < 1:
            raise ConfigurationError("Engine workflow_concurrency must be at least 1")
        if max_workflow_task_attempts < 1:
            raise ConfigurationError("Engine max_workflow_task_attempts must be at least 1")
        if on_workflow_task_failure not in ("block", "fail"):
            raise ConfigurationError(
                f"Engine on_workflow_task_failure must be 'block' or 'fail', got {on_workflow_task_failure!r}")
        self.on_workflow_task_failure = on_workflow_task_failure
        self.fingerprint = fingerprint(self.workflows.values())
        self.codec: Codec = codec or JsonCodec()
        if store is not None:
            self.store: Store = store
        elif url.startswith("memory:"):
            self.store = MemoryStore(clock=clock)  # pure Python, in this process
        else:
            self.store = SqlStore(url, clock=clock) if clock else SqlStore(url)
        self.runs = Runs(self.store)  # every change to a run: decided by the state machine, recorded by the store
        self.cache = InstanceCache(cache_size)
        queues = {a.options.task_queue for a in self.activities.values()} or {"default"}
        if isinstance(activity_concurrency, Mapping):
            queues |= set(activity_concurrency)
            self._queue_limits = {q: int(activity_concurrency.get(q, 100)) for q in sorted(queues)}
        else:
            self._queue_limits = dict.fromkeys(queues, int(activity_concurrency))
        if any(limit < 1 for limit in self._queue_limits.values()):
            raise ConfigurationError("Engine activity_concurrency limits must be at least 1")
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
        self.wake_closed = Wakeup()
        self.draining = False
        self._run_workers = run_workers
        self._closed_waiters: dict[str, anyio.Event] = {}
        self._activity_workers: list[ActivityWorker] = []
        self.activity_workers = self._activity_workers  # read by the workflow worker's fast path
        self.workflow_worker: WorkflowWorker | None = None  # read by the activity workers' fast path
        self._task_group: TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None  # what __aexit__ undoes, while open
        self._registered = False
        self.feeds = EventFeeds(self.store, self.poll_interval, self.spawn)
        self._telemetry_options = (telemetry, tracer_provider, meter_provider)
        self.telemetry = _telemetry.load(*self._telemetry_options)

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise ConfigurationError("this Engine is already open: enter it once (async with engine: ...)")
        _guard.install()
        # Every step pushes its undo before the next one runs: whatever fails
        # (or is cancelled) part-way leaves nothing open behind it.
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.store.close)  # also after an open that failed half-way
            await self.store.open()
            self.telemetry = _telemetry.load(*self._telemetry_options)  # an SDK set up since __init__ counts
            self.telemetry.attach(self)
            stack.callback(self.telemetry.detach, self)
            stack.push_async_callback(self._release_work)
            stack.callback(self._forget_workers)
            group = await stack.enter_async_context(anyio.create_task_group())
            self._task_group = group
            stack.callback(group.cancel_scope.cancel)
            self.feeds.open()
            stack.callback(self.feeds.close)
            stack.callback(self.steps.close)
            if self._run_workers:
                await self._register_and_reap()
                self.workflow_worker = WorkflowWorker(self)
                group.start_soon(self._keep_running, self.workflow_worker.run)
                for queue, limit in self._queue_limits.items():
                    worker = ActivityWorker(self, queue, limit)
                    self._activity_workers.append(worker)
                    group.start_soon(self._keep_running, worker.run)
                group.start_soon(self._keep_running, self._timer_loop)
                group.start_soon(self._keep_running, self._lease_loop)
            group.start_soon(self._keep_running, self._closed_watch_loop)
            if self.retention is not None:
                group.start_soon(self._keep_running, self._retention_loop)
            group.start_soon(self._listen_loop)
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
        # drop the cache, hand back leases, unregister, close the store.
        await stack.aclose()

    def _forget_workers(self) -> None:
        self._task_group = None
        self.workflow_worker = None
        self._activity_workers.clear()
        self.cache.clear()

    async def _release_work(self) -> None:
        with anyio.CancelScope(shield=True):
            # Work interrupted by the shutdown goes back at once,
            # instead of when its leases run out.
            await self.runs.release_leases(self.worker_id)
            if self._registered:
                self._registered = False
                await self.store.unregister_worker(self.worker_id)

    async def _register_and_reap(self) -> None:
        """Record this engine; take over the work of engines on this machine whose process died."""
        pid = os.getpid()
        self._registered = True  # unregistered on the way out, even if this call fails after its write
        others = await self.store.register_worker(self.worker_id, self._host, pid, _liveness.process_start(pid))
        freed = 0
        for worker_id, other_pid, started in others:
            if not _liveness.is_alive(other_pid, started):
                freed += await self.store.reap_worker(worker_id)
                log.info("engine %s (pid %d) is gone; its leases ended now", worker_id, other_pid)
        if freed:
            self.wake_workflows.set()
            self.wake_activities.set()

    async def _keep_running(self, loop: Callable[[], Awaitable[None]]) -> None:
        # A store hiccup (a locked database, a dropped connection) must not
        # take the host program down: log it and start the loop again.
        delay = self.poll_interval
        while True:
            try:
                await loop()
            except Exception:
                log.exception("retold engine loop %s failed; restarting in %.1f s", loop.__name__, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _listen_loop(self) -> None:
        # Wake-ups from other processes (PostgreSQL NOTIFY). A store that
        # cannot notify returns at once; a lost listener is reopened, and
        # meanwhile the poll interval bounds the delay.
        delay = _LISTEN_RETRY
        while True:
            opened = anyio.current_time()
            try:
                await self.store.listen(self._on_work)
                return
            except Exception as exc:  # noqa: BLE001 - logged; polling covers the gap
                if anyio.current_time() - opened > 60:
                    delay = _LISTEN_RETRY  # it had been working: not a failing streak
                log.warning("retold engine lost its store listener (%s); reopening in %.1f s", exc, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _on_work(self, kind: str) -> None:
        if kind == "workflow":
            self.wake_workflows.set()
        elif kind == "activity":
            self.wake_activities.set()
        elif kind == "closed":
            self.wake_closed.set()

    async def _timer_loop(self) -> None:
        while True:
            fired = await self.runs.fire_timers(256)
            if fired:
                self.wake_workflows.set()
                self.feeds.notify(None)
                continue
            due = await self.store.next_wakeup()
            now = self.store.now()
            wait = self.poll_interval
            if due is not None and due <= now:
                # A retry or a lease came due: let the workers look. (It stays
                # due if it is work this engine does not host, hence no spin.)
                self.wake_activities.set()
                self.wake_workflows.set()
            elif due is not None:
                wait = min(wait, due - now)
            await self.wake_timers.wait(wait)

    async def _closed_watch_loop(self) -> None:
        # Runs closed by other processes: one query for every waited-on run,
        # instead of one poll per waiter. Runs this engine closes notify at once.
        while True:
            await self.wake_closed.wait(self.poll_interval)
            if self._closed_waiters:
                for run_id in await self.store.closed_among(list(self._closed_waiters)):
                    self.notify_closed(run_id)

    async def _lease_loop(self) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            await self._register_and_reap()  # a sibling process that died since
            if self.workflow_worker is not None and self.workflow_worker.processing:
                await self.store.renew_workflow_leases(
                    self.worker_id, list(self.workflow_worker.processing), self.lease
                )
            for worker in self._activity_workers:
                ids = list(worker.running)
                lost = await self.store.renew_leases(self.worker_id, ids, self.lease)
                for task_id in lost:
                    scope = worker.running.get(task_id)
                    if scope is not None:
                        scope.cancel()
                        self.telemetry.lease_lost("activity")

    async def _retention_loop(self) -> None:
        # Due times are on the store's clock (a test's fake clock moves them);
        # the loop looks every poll interval whether one has come.
        assert self.retention is not None
        due = self.store.now()
        while True:
            if self.store.now() >= due:
                report = await self.purge(self.retention)
                if report.runs or report.kept:
                    log.info("retention purged %d runs older than %s (%d events); kept %d with a run still running",
                             report.runs, timedelta(seconds=self.retention), report.events, report.kept)
                due = self.store.now() + _PURGE_EVERY
            await anyio.sleep(self.poll_interval)

    async def purge(
        self, older_than: timedelta | float, *, statuses: Iterable[str] | None = None,
        workflow: str | None = None, dry_run: bool = False,
    ) -> PurgeReport:
        """Delete finished runs that closed more than ``older_than`` ago, with their histories.

        Runs go in small transactions, so engines sharing the store keep
        working meanwhile; a running run is never touched. A run goes with
        its children and, if it is the last run of its workflow id, with the
        earlier runs of its continue-as-new chain and the id itself (which
        can then be started again); one that goes with a run still running
        is kept for a later purge (``PurgeReport.kept``). docs/operations.md
        has the details.

        Args:
            older_than: how long ago (store clock) a run must have closed.
            statuses: only runs with these statuses (completed, failed,
                cancelled, continued); default: all of them.
            workflow: only runs of this workflow name.
            dry_run: count what would go, and delete nothing.

        Raises:
            ConfigurationError: a negative ``older_than``, or a status that
                is not a finished run's.
        """
        self._check_open()
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else float(older_than)
        if seconds < 0:
            raise ConfigurationError(f"purge older_than must not be negative, got {seconds}")
        chosen = None if statuses is None else sorted(set(statuses))
        bad = [s for s in chosen or () if s not in _CLOSED_STATUSES]
        if bad:
            raise ConfigurationError(
                f"purge statuses must be among {', '.join(_CLOSED_STATUSES)} (running runs are never purged), "
                f"got {', '.join(map(repr, bad))}"
            )
        return await self.store.purge(self.store.now() - seconds, statuses=chosen, workflow=workflow,
                                      batch_size=_PURGE_BATCH, dry_run=dry_run)

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

    # -- the client API --------------------------------------------------------------

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
        other processes host (untyped); then the keywords ``id=`` and
        ``idempotency_key=`` are the start's options, the others arguments.
        A client-only engine (``run_workers=False``) starts any workflow
        function; an engine that runs workers refuses one it does not host,
        since that is most often a forgotten registration: pass its name to
        mean "hosted elsewhere".

        Starting again with the same id (or idempotency key) and the same
        input returns the existing run instead of a new one.

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
        options: dict[str, Any] = kwargs
        workflow_id = idempotency_key = None
        if isinstance(workflow, str):
            options = dict(kwargs)
            workflow_id, idempotency_key = options.pop("id", None), options.pop("idempotency_key", None)
        elif isinstance(workflow, Workflow):
            workflow_id, idempotency_key = workflow.id, workflow.idempotency_key
        handle: RunHandle[R] = await self._start(workflow, args, options, workflow_id, idempotency_key)
        return handle

    async def _start(
        self, workflow: Workflow[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        id: str | None, idempotency_key: str | None,  # noqa: A002 - the public name
    ) -> RunHandle[Any]:
        self._check_open()
        result_type: Any = Any
        typed: Workflow[..., Any] | None = None
        if isinstance(workflow, str):
            if not workflow:
                raise RetoldError("a workflow name must not be empty")
            name = workflow
            typed = self.workflows.get(name)
        elif isinstance(workflow, Workflow):
            name = workflow.name
            hosted = self.workflows.get(name)
            if self._run_workers and (hosted is None or not hosted.same(workflow)):
                raise NotRegisteredError("workflow", name)
            typed = workflow
        else:
            what = getattr(workflow, "__qualname__", None) or repr(workflow)
            raise ConfigurationError(
                f"engine.start() needs a workflow, got {what!r}, which is not one: decorate it with "
                f"@retold.workflow (and pass it to Engine(workflows=[...])), or pass a workflow's "
                f"registered name to start one hosted elsewhere"
            )
        check_id("workflow id", id)
        check_id("idempotency key", idempotency_key)
        if typed is not None:
            # What the run's first workflow task will decode, checked before anything is stored.
            payload = typed.types.encode_input(self.codec, "workflow", name, args, kwargs)
            typed.types.validate("workflow", name, self.codec, payload)
            result_type = typed.types.return_type
        else:
            payload = self.codec.encode(pack_input(args, kwargs))
        digest = hashlib.sha256(name.encode() + b"\0" + _plain_form(self.codec, payload)).hexdigest()
        with self.telemetry.starting(name) as headers:  # the trace context, recorded in the run
            request = StartRequest(
                workflow=name,
                workflow_id=id or str(uuid.uuid4()),
                input=payload,
                input_hash=digest,
                idempotency_key=idempotency_key,
                headers=headers,
            )
            # The fast path: a run this engine hosts, started while it has a free
            # slot, has its first workflow task done here and stored with the start.
            worker, definition = self.workflow_worker, self.workflows.get(name)
            pending = await worker.prepare_start(definition, request) if worker and definition else None
            created = False
            try:
                record, created = await self.runs.start(request, pending.step if pending else None)
            finally:
                if pending is not None and worker is not None:
                    worker.finish_step(pending, created)
            if created and (pending is None or not pending.step.stepped):
                self.wake_workflows.set()
        if created:
            self.telemetry.run_started(name)
        return RunHandle(self, record.workflow_id, record.run_id, result_type, created=created)

    async def start_by_name(
        self,
        workflow: str,
        args: Sequence[Any] = (),
        *,
        id: str | None = None,  # noqa: A002 - the public name
        idempotency_key: str | None = None,
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
        self._check_open()
        definition = self.workflows.get(workflow)
        if definition is None:
            raise NotRegisteredError("workflow", workflow)
        converted, keywords = definition.types.validate(
            "workflow", workflow, self.codec, self.codec.encode(list(args))
        )
        return await self._start(definition, converted, keywords, id, idempotency_key)

    def get_handle(self, workflow_or_run_id: str) -> RunHandle[Any]:
        """A handle on an existing run, by workflow id or run id."""
        self._check_open()
        return RunHandle(self, workflow_or_run_id, None, Any)

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the engine's task group (for its workers and feeds)."""
        assert self._task_group is not None
        self._task_group.start_soon(fn, *args)

    def _check_open(self) -> None:
        if self._task_group is None:
            raise RetoldError("the engine is not open: use `async with retold.Engine(...) as engine:`")

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None,
        limit: int = 100, offset: int = 0, id_prefix: str | None = None,
        started_after: datetime | None = None, started_before: datetime | None = None,
    ) -> list[RunDescription]:
        """Runs newest first, optionally filtered.

        Args:
            status: only runs with this status.
            workflow: only runs of this workflow name.
            limit: at most this many runs.
            offset: skip the newest ``offset`` runs that match.
            id_prefix: only runs whose workflow id or run id starts with this.
            started_after: only runs started at or after this time (aware datetime).
            started_before: only runs started before this time (aware datetime).

        Raises:
            ValueError: a naive datetime (without a time zone).
        """
        self._check_open()
        bounds = []
        for name, when in (("started_after", started_after), ("started_before", started_before)):
            if when is not None and when.tzinfo is None:
                raise ValueError(f"list_runs {name} must be an aware datetime (with a time zone)")
            # Less half a microsecond: run times are shown to the microsecond (rounded), so a bound
            # copied from a run's started_at takes that run in (after) or leaves it out (before).
            bounds.append(None if when is None else when.timestamp() - 5e-7)
        records = await self.store.list_runs(
            status=status, workflow=workflow, limit=limit, offset=offset,
            id_prefix=id_prefix, started_after=bounds[0], started_before=bounds[1],
        )
        return [RunDescription.from_record(r) for r in records]

    # -- used by RunHandle -----------------------------------------------------------

    def notify_closed(self, run_id: str) -> None:
        """Wake everyone waiting for ``run_id`` to close."""
        waiter = self._closed_waiters.pop(run_id, None)
        if waiter is not None:
            waiter.set()

    async def wait_closed(self, ident: str, *, run_id: bool = False) -> RunRecord:
        """Wait until the run (following continue-as-new) is closed.

        ``run_id`` says ``ident`` is a run id, not a workflow id: the waiter
        is registered before the first read, which then suffices.
        """
        self._check_open()
        register = run_id
        while True:
            waiter = self._closed_waiters.setdefault(ident, anyio.Event()) if register else None
            record = await self.store.get_run(ident)
            if record.status == "continued" and record.next_run_id:
                ident, register = record.next_run_id, True
                continue
            if record.status != "running":
                return record
            if waiter is None:
                # Not registered yet (a workflow id, or just woken): register
                # under the run id, then read once more so a close in between is seen.
                ident, register = record.run_id, True
                continue
            await waiter.wait()
            register = False  # woken because it closed: read it without registering again

    async def signal(self, ident: str, name: str, value: Any) -> None:
        """Append a signal to a running run."""
        self._check_open()
        if not name:
            raise RetoldError("a signal name must not be empty")
        payload = self.codec.encode(value)
        with self.telemetry.client_call("Signal", name, ident):
            if any(workflow.signals for workflow in self.workflows.values()):
                await self._check_signal(ident, name, payload)
            self.feeds.notify(await self.runs.signal(ident, name, payload))
        self.wake_workflows.set()

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

    async def cancel(self, ident: str, reason: str) -> None:
        """Ask a running run to cancel."""
        self._check_open()
        self.feeds.notify(await self.runs.request_cancel(ident, reason))
        self.wake_workflows.set()

    async def terminate(self, ident: str, reason: str = "") -> None:
        """Close a run at once without running its code; see :meth:`RunHandle.terminate`."""
        self._check_open()
        run_id = await self.runs.terminate(ident, reason)
        self.cache.drop(run_id)
        self.feeds.notify(run_id)
        self.notify_closed(run_id)
        self.wake_workflows.set()  # its parent and children have work

    async def query(self, ident: str, name: str, args: tuple[Any, ...]) -> Any:
        """Answer a query from the run's replayed state; writes nothing.

        A finished run is answered too, from its whole stored history: the
        state its code was in when it ended.
        """
        self._check_open()
        with self.telemetry.client_call("Query", name, ident):
            return await self._query(ident, name, args)

    async def _query(self, ident: str, name: str, args: tuple[Any, ...]) -> Any:
        record = await self.store.get_run(ident)
        definition = self.workflows.get(record.workflow)
        if definition is None:
            raise NotRegisteredError("workflow", record.workflow)
        cached = self.cache.peek(record.run_id)
        if cached is not None:
            _, pending = await self.store.load(record.run_id, cached.last_seq)
            # Still cached after the load: not taken meanwhile by a step that
            # may advance it past what is committed (the fast path).
            if not pending and self.cache.peek(record.run_id) is cached:
                return self._roundtrip(cached.query(name, args))
        _, events = await self.store.load(record.run_id, 0)
        replica, completion = await self.steps.run(
            record.run_id, lambda: replay(definition, record.run_id, self.codec, events, replay_only=True))
        try:
            completion.unwrap()
            return self._roundtrip(replica.query(name, args))
        finally:
            replica.close()

    def _roundtrip(self, value: Any) -> Any:
        return self.codec.decode(self.codec.encode(value))

    async def history(self, ident: str) -> History:
        """Every event of the run, in order, as a :class:`History`."""
        self._check_open()
        record = await self.store.get_run(ident)
        _, events = await self.store.load(record.run_id, 0)
        return History(events, workflow=record.workflow, workflow_id=record.workflow_id, run_id=record.run_id)

    def watch(self, ident: str, after_seq: int) -> EventStream:
        """Follow a run's events after ``after_seq``; see :meth:`RunHandle.watch`."""
        self._check_open()
        if after_seq < 0:
            raise RetoldError(f"after_seq must not be negative, got {after_seq}")

        async def resolve() -> str:
            return (await self.store.get_run(ident)).run_id

        return EventStream(self.feeds, resolve, after_seq)
