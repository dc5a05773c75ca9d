"""The client: start, signal, query, cancel, list, watch and wait on runs, hosting none of them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, Self, final

import anyio
from anyio.abc import TaskGroup
from typing_extensions import TypeVar

from .. import _telemetry
from .._ids import uuid4_str
from .._wake import Wakeup, keep_running
from ..authoring import ID_REUSE_POLICIES, Workflow, by_name
from ..engine import Runs, Schedule, ScheduleDescription, Schedules
from ..errors import ConfigurationError, InvalidArgumentsError, NotRegisteredError, PayloadError, RetoldError
from ..history.attributes import SearchAttributeValue, check_memo, encode_attributes
from ..history.codec import Codec, JsonCodec
from ..history.ids import check_id
from ..runtime import StepRunner, install_guard
from ..stores import PurgeReport, RunRecord, StartRequest, Store, open_store
from ._feed import EventFeeds
from ._handle import RunDescription, RunHandle
from ._host import Host
from ._listing import RunPage, decode_cursor, encode_cursor, filters_digest
from ._operations import CloseWaiter, RunOperations
from ._schedules import ScheduleHandle
from ._start import encode_start, start_options, time_limits

__all__ = ["DEFAULT_URL", "Client"]

R = TypeVar("R", default=Any)  # Any when a start by name cannot tell
P = ParamSpec("P")
log = logging.getLogger("retold.engine")

DEFAULT_URL = "sqlite:///retold.db"
_LISTEN_RETRY = 2.0  # first wait before reopening a lost listener (polling covers it)
_PURGE_BATCH = 500  # runs per purge transaction at most (the store sizes batches to take ~20 ms)
_CLOSED_STATUSES = ("completed", "failed", "cancelled", "continued", "terminated", "timed_out")  # a finished run's


def _seconds(value: timedelta | float, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ConfigurationError(f"Client {name} must be positive, got {seconds}")
    return seconds


@final
class Client(RunOperations):
    """Starts, signals, queries, cancels, lists, watches and waits on runs, executing none of them.

    For a process that drives runs hosted elsewhere (a web app, a script, a
    CLI): the workflows run in engines or ``retold worker`` processes on the
    same store. Use it as an async context manager::

        async with retold.Client("postgresql+psycopg://app@db/app", workflows=[checkout]) as client:
            run = await client.start(checkout.with_options(id="order-42"), "order-42", cents=500)
            print(await run.result())

    Args:
        url: the store, as for :class:`~retold.Engine` (``sqlite:///path.db``,
            ``postgresql+psycopg://user@host/db``, ``memory://``, or a scheme
            a store plugin registers; see :func:`retold.stores.open_store`).
        workflows: workflow definitions this client knows: ``start`` by name
            checks their arguments, signals are checked against their
            declared types, and queries replay their code here. Without a
            run's workflow, queries on it raise :class:`NotRegisteredError`.
        codec: payload codec (default :class:`~retold.JsonCodec`); the
            workers must use the same one.
        store: a store object to use instead of ``url``.
        max_pending_signals: how many signals a run may hold that it has not
            processed yet before ``signal()`` through this client raises
            :class:`~retold.SignalBufferFullError` (writing nothing). None:
            the store's (10,000 by default).
        poll_interval: how often waits and watches look for changes made by
            other processes (on PostgreSQL they are also notified).
        deadlock_timeout: how long a query's replay of workflow code may run
            without yielding (None: no limit).
        telemetry: OpenTelemetry spans and metrics for starts, signals and
            queries (docs/operations.md): None records them when OpenTelemetry
            is installed and an SDK is set up by the time the client opens;
            False never; True requires OpenTelemetry.
        tracer_provider: the OpenTelemetry tracer provider to use instead of
            the global one.
        meter_provider: the OpenTelemetry meter provider to use instead of
            the global one.
        host: for :class:`~retold.Engine` only: the engine this client belongs to.

    Attributes:
        workflows: the known workflows, by registered name.
        codec: the payload codec.
        store: the store.
        feeds: the event feeds of the runs watched through this client.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        workflows: Iterable[object] = (),
        codec: Codec | None = None,
        store: Store | None = None,
        max_pending_signals: int | None = None,
        poll_interval: timedelta | float = 0.5,
        deadlock_timeout: timedelta | float | None = 2.0,
        telemetry: bool | None = None,
        tracer_provider: object | None = None,
        meter_provider: object | None = None,
        host: Host | None = None,
    ) -> None:
        self.workflows: dict[str, Workflow[..., Any]] = by_name(workflows, Workflow, "workflow", "workflows")
        self.codec: Codec = codec or JsonCodec()
        self.store: Store = store if store is not None else open_store(url)
        self._poll_interval = _seconds(poll_interval, "poll_interval")
        limit = None if deadlock_timeout is None else _seconds(deadlock_timeout, "deadlock_timeout")
        self._host = host
        if max_pending_signals is not None and max_pending_signals < 1:
            raise ConfigurationError(f"Client max_pending_signals must be at least 1, got {max_pending_signals}")
        self._own_runs = Runs(self.store, max_pending_signals=max_pending_signals) if host is None else None
        self._steps = host.steps if host is not None else StepRunner(limit)
        self._telemetry_options = (telemetry, tracer_provider, meter_provider)
        self.telemetry = _telemetry.load(*self._telemetry_options)
        self._what = "engine" if host is not None else "client"
        self.feeds = EventFeeds(self.store, self._poll_interval, self._spawn, self._what)
        self._closed_waiters: dict[str, CloseWaiter] = {}
        self._first_looks: set[str] = set()  # runs waited on that the watch has not read yet
        self._closed_hints: set[str] = set()  # runs the store said closed, not read yet
        self._closed_scan = False  # the store said some runs closed, not which
        self._update_waiters = 0  # callers waiting for an update's reply
        self._wake_closed = Wakeup()
        self._group: TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise ConfigurationError(
                f"this {self._what.capitalize()} is already open: enter it once (async with {self._what}: ...)"
            )
        install_guard()  # queries run workflow code
        # Every step pushes its undo before the next one runs: whatever fails
        # (or is cancelled) part-way leaves nothing open behind it.
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.store.close)  # also after an open that failed half-way
            await self.store.open()
            self.telemetry = _telemetry.load(*self._telemetry_options)  # an SDK set up since __init__ counts
            group = await stack.enter_async_context(anyio.create_task_group())
            self._group = group
            stack.callback(self._forget_group)
            stack.callback(group.cancel_scope.cancel)
            self.feeds.open()
            stack.callback(self.feeds.close)
            if self._host is None:
                stack.callback(self._steps.close)
            group.start_soon(keep_running, self._closed_watch_loop, self._poll_interval, log, self._what)
            group.start_soon(self._listen_loop)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            raise ConfigurationError(f"this {self._what.capitalize()} is not open: use it as `async with ...`")
        await stack.aclose()  # close the feeds, cancel the loops, close the store

    def _forget_group(self) -> None:
        self._group = None

    def _spawn(self, fn: Any, *args: Any) -> None:
        assert self._group is not None
        self._group.start_soon(fn, *args)

    def _check_open(self) -> None:
        if self._group is None:
            what = "Engine" if self._host is not None else "Client"
            raise RetoldError(
                f"the {self._what} is not open: use `async with retold.{what}(...) as {self._what}:`"
            )

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
                log.warning("retold %s lost its store listener (%s); reopening in %.1f s", self._what, exc, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _on_work(self, kind: str) -> None:
        if kind.startswith("closed"):
            closed = kind.split()[1:]
            if closed:  # which runs closed: the watch reads those alone
                self._closed_hints.update(closed)
            else:  # some runs closed, unknown which: it reads every run waited on
                self._closed_scan = True
            self._wake_closed.set()
        elif self._host is not None:
            self._host.on_work(kind)

    async def _closed_watch_loop(self) -> None:
        # Runs closed by other processes: one read for the runs waited on,
        # which hands each waiter its run's record, instead of reads per
        # waiter. A new waiter wakes it (its first look); so does the store's
        # word that runs closed: then it reads those runs (and new waiters')
        # alone, and every run waited on once per poll interval. A host's
        # closes wake their waiters at once.
        scan_at = 0.0
        while True:
            await self._wake_closed.wait(self._poll_interval)
            hints, self._closed_hints = self._closed_hints, set()
            first, self._first_looks = self._first_looks, set()
            waiting = self._closed_waiters
            if waiting:
                now = anyio.current_time()
                if self._closed_scan or now >= scan_at:
                    self._closed_scan, scan_at = False, now + self._poll_interval
                    ids = list(waiting)
                else:
                    ids = [run_id for run_id in first | hints if run_id in waiting]
                if not ids:
                    continue
                try:
                    found = await self.store.closed_among(ids)
                except Exception:
                    for run_id in first:  # they read for themselves, and meet the error (as before)
                        self.notify_closed(run_id)
                    raise
                for run_id, record in found.items():
                    # A close committed by a step still in progress here: its end
                    # tells the waiters, with the record (no read for them).
                    if self._host is None or not self._host.stepping_here(run_id):
                        self.notify_closed(run_id, record, missing=record is None)

    # -- starting -----------------------------------------------------------------

    async def start(self, workflow: Workflow[P, R] | str, /, *args: P.args, **kwargs: P.kwargs) -> RunHandle[R]:
        """Start a run of ``workflow`` and return its handle.

        ``workflow`` is a ``@retold.workflow`` function: mypy checks the
        arguments against its signature and types the result; they are
        checked again here. Give the workflow id or an idempotency key with
        ``workflow.with_options(id=..., idempotency_key=...)``. Or
        ``workflow`` is a workflow's registered name (untyped); then the
        keywords ``id=``, ``idempotency_key=`` and ``id_reuse_policy=`` are
        the start's options, the others arguments. Starting again with the
        same id (or key) and the same input returns the existing run; once
        it is closed, ``with_options(id_reuse_policy=...)`` may start a new
        run under the id instead (docs/starting.md).

        Raises:
            ConfigurationError: ``workflow`` is not a workflow.
            InvalidArgumentsError: the arguments do not fit its signature or
                types; nothing is stored.
            PayloadError: an argument cannot be encoded.
            IdempotencyError: the id or key was used with other input.
        """
        options, workflow_id, idempotency_key, policy, limits = start_options(workflow, kwargs)
        handle: RunHandle[R] = await self._start(workflow, args, options, workflow_id, idempotency_key,
                                                 id_reuse_policy=policy, limits=limits,
                                                 found=_found_options(workflow, options))
        return handle

    async def signal_with_start(
        self, workflow: Workflow[P, R] | str, signal: str, value: Any, /, *args: P.args, **kwargs: P.kwargs,
    ) -> RunHandle[R]:
        """Send signal ``signal`` with ``value`` to the run of this workflow id, starting it first if there is none.

        One transaction: either the run existed and got the signal, or it is
        new and its history begins with ``WorkflowStarted`` then the signal,
        so its code sees the signal at its first ``wait_signal``. Two callers
        at once make one run with both signals. ``workflow`` and the
        arguments after ``value`` are as for :meth:`start` (typed by the
        workflow's signature); the workflow id is required::

            run = await client.signal_with_start(cart.with_options(id="cart-7"), "add", "apple", "cust-1")

        A run already open keeps its input (the arguments are not compared);
        ``run.created`` says whether this call started it.

        Raises:
            ConfigurationError: no workflow id, or ``workflow`` is not a workflow.
            InvalidArgumentsError: the arguments do not fit its signature or types.
            PayloadError: the value does not fit the signal's declared type.
            IdempotencyError: the id belongs to a run of another workflow.
            RunFinishedError: the id's run is closed (nothing is written).
            SignalBufferFullError: the run has too many unprocessed signals.
        """
        options, workflow_id, idempotency_key, policy, limits = start_options(workflow, kwargs)
        handle: RunHandle[R] = await self._start(workflow, args, options, workflow_id, idempotency_key,
                                                 signal=(signal, value), id_reuse_policy=policy, limits=limits,
                                                 found=_found_options(workflow, options))
        return handle

    async def _start(
        self, workflow: Workflow[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        id: str | None, idempotency_key: str | None,  # noqa: A002 - the public name
        *, signal: tuple[str, Any] | None = None, id_reuse_policy: str | None = None,
        limits: dict[str, float] | None = None,
        found: tuple[dict[str, str] | None, dict[str, Any] | None] | None = None,
    ) -> RunHandle[Any]:
        self._check_open()
        typed: Workflow[..., Any] | None = None
        if isinstance(workflow, str):
            if not workflow:
                raise RetoldError("a workflow name must not be empty")
            name = workflow
            typed = self.workflows.get(name)
        elif isinstance(workflow, Workflow) and workflow.reference:
            name = workflow.name  # by name (retold.workflow_ref): as a name string is
            typed = self.workflows.get(name)
        elif isinstance(workflow, Workflow):
            name = workflow.name
            if self._host is not None:
                self._host.check_start(workflow)
            typed = workflow
        else:
            what = getattr(workflow, "__qualname__", None) or repr(workflow)
            raise ConfigurationError(
                f"{self._what}.start() needs a workflow, got {what!r}, which is not one: decorate it with "
                f"@retold.workflow (and pass it to {self._what.capitalize()}(workflows=[...])), or pass a "
                f"workflow's registered name to start one hosted elsewhere"
            )
        check_id("workflow id", id)
        check_id("idempotency key", idempotency_key)
        if id_reuse_policy is not None and id_reuse_policy not in ID_REUSE_POLICIES:
            raise ConfigurationError(
                f"id_reuse_policy must be one of {', '.join(map(repr, ID_REUSE_POLICIES))} (or None), "
                f"not {id_reuse_policy!r}")
        signal_payload = b""
        if signal is not None:
            if not id:
                raise ConfigurationError(
                    f"signal_with_start of workflow {name!r} needs a workflow id: the run to signal is the one "
                    f"with that id (workflow.with_options(id=...), or id= with a workflow name)")
            signal_payload = self._signal_payload(typed, signal[0], signal[1], f"workflow id {id!r}")
        payload, digest, result_type = encode_start(self.codec, name, typed, args, kwargs)
        if found is None:
            found = (workflow.search_attributes, workflow.memo) if isinstance(workflow, Workflow) else (None, None)
        with self.telemetry.starting(name) as headers:  # the trace context, recorded in the run
            request = StartRequest(
                workflow=name,
                workflow_id=id or uuid4_str(),
                input=payload,
                input_hash=digest,
                idempotency_key=idempotency_key,
                headers=headers,
                id_reuse_policy=id_reuse_policy,
                search_attributes=found[0] or None,
                memo=found[1],
                **(limits or {}),
            )
            if signal is not None or request.start_delay is not None:
                # Recorded as they are (a delayed run's first step cannot be run ahead).
                if signal is not None:
                    record, created = await self._runs().signal_with_start(request, signal[0], signal_payload)
                else:
                    record, created = await self._runs().start(request)
                self.feeds.notify(record.run_id)
                if self._host is not None:
                    self._host.input_recorded(record.run_id)
            elif self._host is not None:
                record, created = await self._host.store_start(request, self.workflows.get(name))
            else:
                record, created = await self._runs().start(request)
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
        id_reuse_policy: str | None = None,
        run_timeout: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        start_delay: timedelta | float | None = None,
        search_attributes: Mapping[str, SearchAttributeValue] | None = None,
        memo: Mapping[str, Any] | None = None,
    ) -> RunHandle[Any]:
        """Start a run of the workflow registered as ``workflow``, from arguments in their JSON form.

        For callers that know workflows by name: the HTTP API, the CLI, other
        languages. ``args`` are in their JSON form (objects for dataclasses,
        strings for datetimes, ...): the codec decodes each, at every depth,
        into the type its parameter is annotated with, exactly as the run
        will read them; nothing is coerced (``"2"`` is not an ``int``).

        Raises:
            NotRegisteredError: this client does not know the workflow.
            InvalidArgumentsError: the arguments do not fit the signature or
                their annotated types; the message names the argument and the
                path of the bad value. Nothing is stored.
            IdempotencyError: the id or key was used with other input.
        """
        self._check_open()
        definition = self.workflows.get(workflow)
        if definition is None:
            raise self._unknown(workflow, "a start by name checks the arguments against its signature")
        converted, keywords = definition.types.validate(
            "workflow", workflow, self.codec, self.codec.encode(list(args))
        )
        limits = time_limits({"run_timeout": run_timeout, "execution_timeout": execution_timeout,
                               "start_delay": start_delay})
        return await self._start(definition, converted, keywords, id, idempotency_key,
                                 id_reuse_policy=id_reuse_policy, limits=limits,
                                 found=_checked_options(search_attributes, memo))

    async def signal_with_start_by_name(
        self,
        workflow: str,
        signal: str,
        value: Any,
        args: Sequence[Any] = (),
        *,
        id: str,  # noqa: A002 - the public name
        id_reuse_policy: str | None = None,
        run_timeout: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        start_delay: timedelta | float | None = None,
        search_attributes: Mapping[str, SearchAttributeValue] | None = None,
        memo: Mapping[str, Any] | None = None,
    ) -> RunHandle[Any]:
        """:meth:`signal_with_start` for callers that know workflows by name (args as for :meth:`start_by_name`)."""
        self._check_open()
        definition = self.workflows.get(workflow)
        if definition is None:
            raise self._unknown(workflow, "a start by name checks the arguments against its signature")
        converted, keywords = definition.types.validate(
            "workflow", workflow, self.codec, self.codec.encode(list(args))
        )
        limits = time_limits({"run_timeout": run_timeout, "execution_timeout": execution_timeout,
                               "start_delay": start_delay})
        return await self._start(definition, converted, keywords, id, None, signal=(signal, value),
                                 id_reuse_policy=id_reuse_policy, limits=limits,
                                 found=_checked_options(search_attributes, memo))

    def _signal_payload(self, workflow: Workflow[..., Any] | None, name: str, value: Any, to: str) -> bytes:
        """A signal's value encoded, checked against the type ``workflow`` declares for it (if any)."""
        if not name:
            raise RetoldError("a signal name must not be empty")
        payload = self.codec.encode(value)
        if workflow is not None and name in workflow.signals:
            try:
                self.codec.decode(payload, workflow.signals[name])
            except PayloadError as err:
                raise PayloadError(
                    f"signal {name!r} to {to} of workflow {workflow.name!r} was not sent: {err} (the type "
                    f"@retold.workflow(signals=...) declares for it); send a value of that type"
                ) from err
        return payload

    def _unknown(self, name: str, why: str) -> NotRegisteredError:
        if self._host is not None:
            return NotRegisteredError("workflow", name)
        return NotRegisteredError("workflow", name, f"this client ({why}: pass it to Client(workflows=[...]))")

    # -- schedules ------------------------------------------------------------------

    def _schedules(self) -> Schedules:
        return Schedules(self.store, self._runs())

    async def schedule(
        self, schedule: Schedule, workflow: Workflow[P, R] | str, /, *args: P.args, **kwargs: P.kwargs,
    ) -> ScheduleHandle:
        """Store a schedule that starts ``workflow`` with these arguments at every fire time::

            await client.schedule(retold.Schedule("nightly-report", cron="0 2 * * *", timezone="Europe/Paris"),
                                  report, "sales")

        The arguments are typed by the workflow's signature, as for
        :meth:`start`, and encoded once, now. Each fire starts one run, with
        workflow id ``<schedule id>@<fire time, UTC ISO 8601>``: one run per
        fire time, however many engines share the store. Engines that run
        workers fire schedules (docs/schedules.md).

        Raises:
            ConfigurationError: the id is taken (nothing is stored), or
                ``workflow`` is not a workflow.
            InvalidArgumentsError: the arguments do not fit its signature or types.
        """
        self._check_open()
        if not isinstance(schedule, Schedule):
            raise ConfigurationError(f"schedule() needs a retold.Schedule first, got {schedule!r}")
        name, payload, digest = self._schedule_input(workflow, args, kwargs)
        await self._schedules().create(schedule, name, payload, digest)
        return self._schedule_handle(schedule.id)

    async def schedule_by_name(self, schedule: Schedule, workflow: str, args: Sequence[Any] = ()) -> ScheduleHandle:
        """:meth:`schedule` for callers that know workflows by name, with arguments in their JSON form (HTTP, CLI).

        Raises:
            NotRegisteredError: this client does not know the workflow.
            InvalidArgumentsError: the arguments do not fit its signature or types; nothing is stored.
        """
        self._check_open()
        name, payload, digest = self._schedule_input_by_name(workflow, args)
        await self._schedules().create(schedule, name, payload, digest)
        return self._schedule_handle(schedule.id)

    def _schedule_input(
        self, workflow: Workflow[Any, Any] | str, args: Sequence[Any], kwargs: Mapping[str, Any],
    ) -> tuple[str, bytes, str]:
        """A scheduled workflow's name and its arguments encoded (checked against its signature)."""
        if isinstance(workflow, str):
            name, typed = workflow, self.workflows.get(workflow)
        elif isinstance(workflow, Workflow):
            name = workflow.name
            typed = None if workflow.reference else workflow
            if self._host is not None and typed is not None:
                self._host.check_start(workflow)
        else:
            raise ConfigurationError(f"a schedule needs a workflow, got {workflow!r}")
        payload, digest, _ = encode_start(self.codec, name, typed, tuple(args), dict(kwargs))
        return name, payload, digest

    def _schedule_input_by_name(self, workflow: str, args: Sequence[Any]) -> tuple[str, bytes, str]:
        """:meth:`_schedule_input` by name, with arguments in their JSON form."""
        definition = self.workflows.get(workflow)
        if definition is None:
            raise self._unknown(workflow, "a schedule by name checks the arguments against its signature")
        converted, keywords = definition.types.validate(
            "workflow", workflow, self.codec, self.codec.encode(list(args))
        )
        payload, digest, _ = encode_start(self.codec, workflow, definition, tuple(converted), keywords)
        return workflow, payload, digest

    def _schedule_handle(self, schedule_id: str) -> ScheduleHandle:
        return ScheduleHandle(self._schedules(), schedule_id, self._schedule_input, self._schedule_input_by_name,
                              self._schedule_changed)

    def _schedule_changed(self) -> None:
        if self._host is not None:
            self._host.schedule_changed()

    def get_schedule(self, schedule_id: str) -> ScheduleHandle:
        """A handle on a stored schedule, by id."""
        self._check_open()
        return self._schedule_handle(schedule_id)

    async def list_schedules(self, *, next_fires: int = 1) -> list[ScheduleDescription]:
        """Every schedule, by id, each with its next ``next_fires`` fire times."""
        self._check_open()
        return await self._schedules().list(next_fires)

    # -- runs -----------------------------------------------------------------------

    def get_handle(self, workflow_or_run_id: str) -> RunHandle[Any]:
        """A handle on an existing run, by workflow id or run id."""
        self._check_open()
        return RunHandle(self, workflow_or_run_id, None, Any)

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None,
        limit: int = 100, offset: int = 0, id_prefix: str | None = None,
        started_after: datetime | None = None, started_before: datetime | None = None,
        closed_after: datetime | None = None, closed_before: datetime | None = None,
        search_attributes: Mapping[str, SearchAttributeValue] | None = None, cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first, optionally filtered; a page (a list) with the cursor of the next one.

        Page through with ``cursor``: a page starts after the run the
        previous page ended with, so runs started meanwhile never push a run
        onto two pages (they come before the first page)::

            page = await client.list_runs(search_attributes={"customer": "acme"}, limit=50)
            while page.next_cursor:
                page = await client.list_runs(search_attributes={"customer": "acme"}, limit=50,
                                              cursor=page.next_cursor)

        Args:
            status: only runs with this status.
            workflow: only runs of this workflow name.
            limit: at most this many runs.
            offset: skip the newest ``offset`` runs that match (not with ``cursor``).
            id_prefix: only runs whose workflow id or run id starts with this.
            started_after: only runs started at or after this time (aware datetime).
            started_before: only runs started before this time (aware datetime).
            closed_after: only runs closed at or after this time (aware datetime).
            closed_before: only runs closed before this time (aware datetime).
            search_attributes: only runs whose search attributes hold each of
                these values (equal, and of the same type: str, int, float,
                bool or aware datetime).
            cursor: the ``next_cursor`` of the previous page, listed with the same filters.

        Raises:
            ValueError: a naive datetime (without a time zone).
            InvalidArgumentsError: a bad search attribute name or value, a
                cursor that is not one or comes from a list with other
                filters, or both ``offset`` and ``cursor``.
        """
        self._check_open()
        bounds: list[float | None] = []
        for name, when in (("started_after", started_after), ("started_before", started_before),
                           ("closed_after", closed_after), ("closed_before", closed_before)):
            if when is not None and when.tzinfo is None:
                raise ValueError(f"list_runs {name} must be an aware datetime (with a time zone)")
            # Less half a microsecond: run times are shown to the microsecond (rounded), so a bound
            # copied from a run's started_at takes that run in (after) or leaves it out (before).
            bounds.append(None if when is None else when.timestamp() - 5e-7)
        attributes = {name: value for name, value in encode_attributes(search_attributes).items()
                      if value is not None}
        digest = filters_digest([status, workflow, id_prefix, bounds, attributes])
        after = None
        if cursor is not None:
            if offset:
                raise InvalidArgumentsError("list_runs takes an offset or a cursor, not both")
            after = decode_cursor(cursor, digest)
        records = await self.store.list_runs(
            status=status, workflow=workflow, limit=limit + 1, offset=offset,
            id_prefix=id_prefix, started_after=bounds[0], started_before=bounds[1],
            closed_after=bounds[2], closed_before=bounds[3], attributes=attributes or None, after=after,
        )
        more = len(records) > limit
        records = records[:limit]
        next_cursor = encode_cursor(records[-1].created_at, records[-1].run_id, digest) if more and records else None
        return RunPage((RunDescription.from_record(r) for r in records), next_cursor)

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

    def notify_closed(self, run_id: str, record: RunRecord | None = None, *, missing: bool = False) -> None:
        """Wake every caller waiting for ``run_id`` to close (hosts call it when they close a run),
        handing them its ``record`` if known (``missing``: the store has no such run)."""
        waiter = self._closed_waiters.pop(run_id, None)
        if waiter is not None:
            if record is None:
                record = self._runs().closed.get(run_id)  # closed by this process: handed over, no read
            waiter.set(record if record is not None and record.status != "running" else None, missing=missing)

    @property
    def waiting(self) -> int:
        """How many runs callers of this client are waiting for, to close, and updates, for their reply."""
        return len(self._closed_waiters) + self._update_waiters


def _checked_options(
    search_attributes: Mapping[str, Any] | None, memo: Mapping[str, Any] | None,
) -> tuple[dict[str, str] | None, dict[str, Any] | None]:
    """A start's search attributes (stored forms) and memo, checked before anything is stored."""
    encoded = {name: value for name, value in encode_attributes(search_attributes).items() if value is not None}
    return encoded or None, None if memo is None else check_memo(memo)


def _found_options(
    workflow: Workflow[..., Any] | str, options: dict[str, Any],
) -> tuple[dict[str, str] | None, dict[str, Any] | None] | None:
    """A start by name's ``search_attributes=`` and ``memo=`` keywords (taken out of ``options``);
    None for a decorated workflow, which carries its own (``with_options``)."""
    if not isinstance(workflow, str):
        return None
    return _checked_options(options.pop("search_attributes", None), options.pop("memo", None))
