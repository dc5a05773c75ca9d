"""OpenTelemetry spans and metrics for the engine (the ``retold[otel]`` extra).

Imported only by :func:`retold._telemetry.load` when OpenTelemetry is
installed. Spans:

* ``StartWorkflow:<workflow>``: a start, a child of the caller's current
  span (an HTTP request's, say). Its context is recorded in the run's
  ``WorkflowStarted`` event (``headers``), so every later span of the run,
  in any process and after any number of replays, has it as parent.
* ``RunWorkflow:<workflow>``: one per committed workflow task, made after
  the commit with the step's start time. A replay of recorded steps makes
  none, and a step that is not committed (a crash, a conflict) leaves none.
* ``RunActivity:<activity>``: one per attempt, current while the activity
  code runs (its own spans and outgoing calls nest under it).
* ``SignalWorkflow:<signal>`` and ``QueryWorkflow:<query>``: children of the
  caller's span.

Metrics: see docs/operations.md.
"""

from __future__ import annotations

import contextlib
import functools
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._telemetry import Attempt, NoTelemetry
from .history import events as ev

if TYPE_CHECKING:
    from .engine._engine import Engine
    from .runtime._instance import WorkflowInstance
    from .stores._protocol import ActivityTask

__all__ = ["OtelTelemetry", "configured"]

_SCOPE = "retold"
_CLOSED = {
    ev.WorkflowCompleted: "completed", ev.WorkflowFailed: "failed",
    ev.WorkflowCancelled: "cancelled", ev.WorkflowContinuedAsNew: "continued",
}
# The calls that record a run's progress (engine.runs: one store transaction each): their latency is the store's
# transaction latency (claims and lease renewals, many of them finding
# nothing, are left out: timing them would cost more than they tell).
_TIMED_STORE_CALLS = (
    "start", "commit_workflow_task", "fail_workflow_task", "finish_activity", "signal", "request_cancel",
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _Instruments:
    """One meter's instruments, shared by every engine that reports to it.

    Made once per meter provider: instruments are unique by name within a
    meter, and an observable's callbacks are those of its first creation,
    so the cache observables read every engine attached to it.
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self.engines: weakref.WeakSet[Engine] = weakref.WeakSet()
        self.runs_started = meter.create_counter(
            "retold.runs.started", unit="{run}", description="Runs started")
        self.runs_closed = meter.create_counter(
            "retold.runs.closed", unit="{run}", description="Runs closed, by status")
        self.workflow_task = meter.create_histogram(
            "retold.workflow_task.duration", unit="s", description="Workflow task latency (step and commit)",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS)
        self.activity_attempts = meter.create_counter(
            "retold.activity.attempts", unit="{attempt}", description="Activity attempts, by outcome")
        self.activity_duration = meter.create_histogram(
            "retold.activity.duration", unit="s", description="Activity attempt latency",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS)
        self.schedule_to_start = meter.create_histogram(
            "retold.activity.schedule_to_start", unit="s",
            description="Activity schedule-to-start lag (first attempts)",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS)
        self.store = meter.create_histogram(
            "retold.store.duration", unit="s", description="Store call latency (transactions and loads)",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS)
        self.leases_lost = meter.create_counter(
            "retold.leases.lost", unit="{lease}", description="Task leases lost to another worker")
        meter.create_observable_gauge(
            "retold.cache.size", [self._cache(len)], unit="{run}", description="Runs cached in memory")
        meter.create_observable_counter(
            "retold.cache.hits", [self._cache(lambda c: c.hits)], unit="{lookup}",
            description="Workflow tasks that found their run cached")
        meter.create_observable_counter(
            "retold.cache.misses", [self._cache(lambda c: c.misses)], unit="{lookup}",
            description="Workflow tasks that replayed their run's history")
        meter.create_observable_counter(
            "retold.cache.evictions", [self._cache(lambda c: c.evictions)], unit="{run}",
            description="Runs evicted from the cache")

    def _cache(self, read: Callable[[Any], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read(engine.cache), {"retold.engine": engine.worker_id})
                    for engine in list(self.engines)]

        return observe


_shared: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()


def configured(tracer_provider: Any, meter_provider: Any) -> bool:
    """Whether spans or metrics would go anywhere: a provider given, or a global one set up.

    OpenTelemetry's API without a configured SDK records nothing; the engine
    then uses no hooks at all rather than calls that do nothing.
    """
    if tracer_provider is not None or meter_provider is not None:
        return True
    tracing = trace.get_tracer_provider()
    meters = metrics.get_meter_provider()
    # The API's stand-ins until an SDK is set: the proxies (and their no-op twins).
    return not (
        isinstance(tracing, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
        and type(meters).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider")
    )


class OtelTelemetry(NoTelemetry):
    """The engine's hooks, recording OpenTelemetry spans and metrics."""

    enabled = True

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        instruments = _shared.get(provider)
        if instruments is None:
            instruments = _shared[provider] = _Instruments(provider.get_meter(_SCOPE))
        self.m = instruments

    # -- engines -------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        self.m.engines.add(engine)
        _time_store(engine.runs, self.m)  # each is one store transaction (and the state machine's decision)

    def detach(self, engine: Engine) -> None:
        self.m.engines.discard(engine)

    # -- the client side -------------------------------------------------------------

    @contextlib.contextmanager
    def starting(self, workflow: str) -> Iterator[dict[str, str] | None]:
        with self.tracer.start_as_current_span(
            f"StartWorkflow:{workflow}", kind=SpanKind.CLIENT, attributes={"retold.workflow": workflow},
        ) as span:
            headers: dict[str, str] = {}
            if span.get_span_context().is_valid:
                propagate.inject(headers)
            yield headers or None

    def run_started(self, workflow: str) -> None:
        self.m.runs_started.add(1, {"retold.workflow": workflow})

    @contextlib.contextmanager
    def client_call(self, kind: str, name: str, ident: str) -> Iterator[None]:
        with self.tracer.start_as_current_span(
            f"{kind}Workflow:{name}", kind=SpanKind.CLIENT, attributes={"retold.run": ident},
        ):
            yield

    # -- workflow tasks --------------------------------------------------------------

    def workflow_task(self, instance: WorkflowInstance, began: int, commands: Sequence[ev.Event]) -> None:
        if not commands:
            return  # nothing new was fed to the run: no step ran
        end = time.time_ns()
        workflow = instance.workflow.name
        self.m.workflow_task.record((end - began) / 1e9, {"retold.workflow": workflow, "outcome": "committed"})
        span = self.tracer.start_span(
            f"RunWorkflow:{workflow}", context=_parent(instance.headers), kind=SpanKind.INTERNAL,
            start_time=int(began), attributes=_run_attributes(instance, commands=len(commands)),
        )
        for cmd in commands:
            status = _CLOSED.get(type(cmd))
            if status is not None:
                self.m.runs_closed.add(1, {"retold.workflow": workflow, "status": status})
                span.set_attribute("retold.closed", status)
        span.end(end_time=end)

    def workflow_task_failed(
        self, run_id: str, instance: WorkflowInstance | None, began: int, error: BaseException,
        closed: bool,
    ) -> None:
        end = time.time_ns()
        workflow = instance.workflow.name if instance is not None else ""
        self.m.workflow_task.record((end - began) / 1e9, {"retold.workflow": workflow, "outcome": "failed"})
        if closed:
            self.m.runs_closed.add(1, {"retold.workflow": workflow, "status": "failed"})
        attributes = _run_attributes(instance) if instance is not None else {"retold.run_id": run_id}
        span = self.tracer.start_span(
            f"RunWorkflow:{workflow}", context=_parent(instance.headers if instance else None),
            start_time=int(began), attributes=attributes,
        )
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end(end_time=end)

    # -- activities --------------------------------------------------------------------

    @contextlib.contextmanager
    def activity(self, task: ActivityTask, lag: float | None) -> Iterator[Attempt]:
        attempt = Attempt()
        labels = {"retold.activity": task.activity, "retold.task_queue": task.queue}
        if lag is not None:
            self.m.schedule_to_start.record(max(lag, 0.0), {"retold.task_queue": task.queue})
        began = time.perf_counter()
        try:
            with self.tracer.start_as_current_span(
                f"RunActivity:{task.activity}", context=_parent(task.options.get("headers")),
                kind=SpanKind.INTERNAL, record_exception=False, set_status_on_exception=False,
                attributes={
                    "retold.activity": task.activity, "retold.workflow_id": task.workflow_id,
                    "retold.run_id": task.run_id, "retold.attempt": task.attempt, "retold.task_queue": task.queue,
                },
            ) as span:
                try:
                    yield attempt
                finally:
                    outcome = attempt.outcome
                    span.set_attribute("retold.outcome", "lost" if outcome is None else outcome.kind)
                    if outcome is not None and outcome.failure:
                        failure = outcome.failure
                        span.set_status(Status(StatusCode.ERROR, f"{failure.type}: {failure.message}"))
                        span.add_event("exception", {
                            "exception.type": failure.type, "exception.message": failure.message,
                            "exception.stacktrace": failure.details,
                        })
        finally:
            # Recorded outside the span: a measurement inside a sampled span
            # would also be offered as an exemplar, which costs as much again.
            labels["outcome"] = "lost" if attempt.outcome is None else attempt.outcome.kind
            self.m.activity_attempts.add(1, labels)
            self.m.activity_duration.record(time.perf_counter() - began, labels)

    def lease_lost(self, kind: str) -> None:
        self.m.leases_lost.add(1, {"kind": kind})


_ROOT = Context()  # a run with no recorded trace context: its spans are roots


def _parent(headers: dict[str, str] | None) -> Context:
    """The recorded trace context of a run.

    Never the current context: the worker's tasks inherit whatever was
    current when the engine opened, which is no parent of the run.
    """
    if not headers:
        return _ROOT
    return _extract(tuple(sorted(headers.items())))


@functools.lru_cache(maxsize=1024)
def _extract(headers: tuple[tuple[str, str], ...]) -> Context:
    # A run's spans all have the same parent: parsed once, not per span.
    return propagate.extract(dict(headers))


def _run_attributes(instance: WorkflowInstance, **more: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "retold.workflow": instance.workflow.name, "retold.workflow_id": instance.workflow_id,
        "retold.run_id": instance.run_id,
    }
    attributes.update({f"retold.{key}": value for key, value in more.items()})
    return attributes


def _time_store(store: Any, instruments: _Instruments) -> None:
    """Time the store's calls, by wrapping them on the instance (once).

    Wrapped here rather than measured in each store, so that every backend
    reports the same thing without knowing about OpenTelemetry.
    """
    if getattr(store, "_retold_timed", False):
        return
    for name in _TIMED_STORE_CALLS:
        method = getattr(store, name, None)
        if method is not None:
            setattr(store, name, _timed(method, name, instruments))
    store._retold_timed = True


def _timed(method: Callable[..., Any], name: str, instruments: _Instruments) -> Callable[..., Any]:
    labels = {"operation": name}

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            instruments.store.record(time.perf_counter() - began, labels)

    return call
