"""OpenTelemetry: spans in the caller's trace across a restart and replay, none twice; metrics."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import retold
from retold.history import events as ev
from retold.testing import Replayer
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self, prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(prefix)]

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == name
            for point in metric.data.data_points
        ]

    def total(self, name: str, **attributes: str) -> float:
        return float(sum(
            p.value for p in self.points(name)
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        ))


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(spans, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@retold.activity(retry=retold.RetryPolicy(initial_interval=timedelta(milliseconds=10), jitter=0))
async def reserve(item: str) -> str:
    if retold.activity_info().attempt == 1 and item == "flaky":
        raise ConnectionError("try again")
    return f"reserved {item}"


@retold.workflow
async def order(item: str) -> str:
    status = "reserving"
    retold.set_query_handler("status", lambda: status)
    first = await retold.execute(reserve, item)
    status = "waiting"
    await retold.wait_signal("approve")
    second = await retold.execute(reserve, "gift wrap")
    return f"{first}, {second}"


async def wait_status(engine: retold.Engine, workflow_id: str, status: str) -> None:
    """Wait until the run reports ``status`` and its step to there is committed (it waits for a signal)."""
    handle = engine.get_handle(workflow_id)
    with anyio.fail_after(20):
        while True:
            history = await handle.history()
            if history[-1].type == "WorkflowTaskCompleted" and await handle.query("status") == status:
                return
            await anyio.sleep(0.02)


async def test_spans_form_one_trace_under_the_callers_span_across_a_restart(
    make_engine: EngineFactory, otel: Otel
) -> None:
    tracer = otel.tracer_provider.get_tracer("the web app")
    providers = {"tracer_provider": otel.tracer_provider, "meter_provider": otel.meter_provider}
    async with make_engine([order], [reserve], cache_size=1, **providers) as engine:
        with tracer.start_as_current_span("POST /orders"):
            run = await engine.start(order.with_options(id="traced"), "book")
        await engine.start(order.with_options(id="other"), "pen")  # evicts "traced" from the cache of one
        await wait_status(engine, "traced", "waiting")
        await wait_status(engine, "other", "waiting")
    # A restart: the new engine replays the run from its history.
    async with make_engine([order], [reserve], **providers) as engine:
        with tracer.start_as_current_span("POST /approve"):
            await engine.get_handle("traced").signal("approve", True)
        assert await engine.get_handle("traced").result(timeout=20) == "reserved book, reserved gift wrap"
        history = await engine.get_handle("traced").history()

    request = one(otel.finished("POST /orders"))
    start = one(s for s in otel.finished("StartWorkflow:order") if s.parent == request.context)
    trace_id = request.context.trace_id
    assert start.context.trace_id == trace_id
    # The start's context is recorded in the history, for every later span of the run.
    started = history[0]
    assert isinstance(started, ev.WorkflowStarted)
    assert started.headers is not None
    assert f"{trace_id:032x}" in started.headers["traceparent"]
    assert f"{start.context.span_id:016x}" in started.headers["traceparent"]

    in_trace = [s for s in otel.finished() if s.context.trace_id == trace_id]
    tasks = [s for s in in_trace if s.name == "RunWorkflow:order"]
    activities = [s for s in in_trace if s.name == "RunActivity:reserve"]
    # One span per real workflow task (start; first activity done; signal; second done):
    # the restart's replay of the first two made none.
    assert len(tasks) == 4
    assert len(activities) == 2
    for span in tasks + activities:
        assert span.parent is not None
        assert span.parent.span_id == start.context.span_id
        assert span.attributes is not None
        assert span.attributes["retold.run_id"] == run.run_id
    assert [s.attributes["retold.attempt"] for s in activities if s.attributes] == [1, 1]
    assert [s.attributes.get("retold.closed") for s in tasks if s.attributes].count("completed") == 1
    signal = one(otel.finished("SignalWorkflow:approve"))
    assert signal.parent is not None
    assert signal.parent.span_id == one(otel.finished("POST /approve")).context.span_id
    assert otel.finished("QueryWorkflow:status")


async def test_metrics_count_runs_tasks_attempts_and_the_store(make_engine: EngineFactory, otel: Otel) -> None:
    async with make_engine([order], [reserve], meter_provider=otel.meter_provider,
                           tracer_provider=otel.tracer_provider) as engine:
        run = await engine.start(order.with_options(id="measured"), "flaky")
        await wait_status(engine, "measured", "waiting")
        await run.signal("approve", True)
        await run.result(timeout=20)
        assert otel.total("retold.cache.size") >= 0  # observed while the engine is open
        cache_points = otel.points("retold.cache.size")
    assert cache_points
    assert otel.total("retold.runs.started", **{"retold.workflow": "order"}) == 1
    assert otel.total("retold.runs.closed", status="completed") == 1
    assert otel.total("retold.activity.attempts", outcome="failed") == 1
    assert otel.total("retold.activity.attempts", outcome="completed") == 2
    # A failed attempt's span says why.
    failed = [s for s in otel.finished("RunActivity:reserve") if s.attributes and s.attributes["retold.attempt"] == 1
              and s.attributes["retold.outcome"] == "failed"]
    assert one(failed).status.description == "ConnectionError: try again"
    assert sum(p.count for p in otel.points("retold.workflow_task.duration")) == 4
    assert sum(p.count for p in otel.points("retold.activity.duration")) == 3
    assert sum(p.count for p in otel.points("retold.activity.schedule_to_start")) == 2  # first attempts
    operations = {p.attributes["operation"] for p in otel.points("retold.store.duration")}
    assert {"start", "signal", "finish_activity"} <= operations


@retold.workflow
async def parent_of_one() -> str:
    return await retold.execute_child(order, "kite")


async def test_a_child_runs_in_its_parents_trace(make_engine: EngineFactory, otel: Otel) -> None:
    async with make_engine([parent_of_one, order], [reserve], tracer_provider=otel.tracer_provider) as engine:
        run = await engine.start(parent_of_one.with_options(id="family"))
        child = f"family/{(await run.describe()).run_id}/child-2"
        await wait_status(engine, child, "waiting")
        await engine.get_handle(child).signal("approve", True)
        await run.result(timeout=20)
    start = one(otel.finished("StartWorkflow:parent_of_one"))
    child_spans = otel.finished("RunWorkflow:order") + otel.finished("RunActivity:reserve")
    assert len(child_spans) == 6
    assert {s.context.trace_id for s in child_spans} == {start.context.trace_id}


async def test_without_telemetry_the_history_has_no_headers_and_old_histories_replay(
    make_engine: EngineFactory,
) -> None:
    async with make_engine([order], [reserve], telemetry=False) as engine:
        assert not engine.telemetry.enabled
        run = await engine.start(order.with_options(id="untraced"), "book")
        await wait_status(engine, "untraced", "waiting")
        await run.signal("approve", True)
        await run.result(timeout=20)
        history = await run.history()
    exported = orjson.loads(history.to_json())
    assert all("headers" not in event for event in exported["events"])  # the JSON form of before
    assert all("headers" not in event.get("options", {}) for event in exported["events"])
    Replayer([order]).replay(retold.History.from_json(history.to_json()))


async def test_a_traced_history_round_trips_and_replays(make_engine: EngineFactory, otel: Otel) -> None:
    async with make_engine([order], [reserve], tracer_provider=otel.tracer_provider) as engine:
        run = await engine.start(order.with_options(id="traced-json"), "book")
        await wait_status(engine, "traced-json", "waiting")
        await run.signal("approve", True)
        await run.result(timeout=20)
        history = await run.history()
    again = retold.History.from_json(history.to_json())
    assert again == history
    assert isinstance(again[0], ev.WorkflowStarted)
    assert again[0].headers
    count = len(otel.finished())
    Replayer([order]).replay(again)
    assert len(otel.finished()) == count  # a replay records no spans


def test_without_opentelemetry_nothing_imports_it_and_runs_work(tmp_path: Any) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if the extra were not installed
        import anyio, retold

        @retold.activity
        async def hello(name: str) -> str:
            return "hello " + name

        @retold.workflow
        async def greet(name: str) -> str:
            return await retold.execute(hello, name)

        async def main() -> None:
            async with retold.Engine("sqlite:///{tmp_path / 'r.db'}", workflows=[greet], activities=[hello]) as e:
                assert not e.telemetry.enabled
                run = await e.start(greet, "ada")
                assert await run.result(timeout=20) == "hello ada"
            try:
                retold.Engine("memory://", telemetry=True)
            except retold.ConfigurationError as err:
                print("refused:", err)
            loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
            print("loaded:", loaded)

        anyio.run(main)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "refused: Engine telemetry needs OpenTelemetry" in done.stdout
    assert "pip install 'retold[otel]'" in done.stdout
    assert "loaded: ['opentelemetry']" in done.stdout  # only the None placed above


def one(items: Any) -> ReadableSpan:
    found = list(items)
    assert len(found) == 1, [getattr(s, "name", s) for s in found]
    span: ReadableSpan = found[0]
    return span


async def test_hooks_only_when_an_sdk_would_record(make_engine: EngineFactory, otel: Otel) -> None:
    # This process sets up no global provider: OpenTelemetry's API alone records nothing, so no hooks.
    async with make_engine([order], [reserve]) as engine:
        assert not engine.telemetry.enabled
    async with make_engine([order], [reserve], telemetry=True) as engine:
        assert engine.telemetry.enabled
    async with make_engine([order], [reserve], meter_provider=otel.meter_provider) as engine:
        assert engine.telemetry.enabled


@retold.workflow
async def reads_a_file() -> str:
    with open(__file__) as f:  # the sandbox refuses it: the workflow task fails
        return f.read()


async def test_a_failed_workflow_task_has_an_error_span_and_counts(make_engine: EngineFactory, otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("the web app")
    async with make_engine([reads_a_file], max_workflow_task_attempts=1, on_workflow_task_failure="fail",
                           tracer_provider=otel.tracer_provider,
                           meter_provider=otel.meter_provider) as engine:
        with tracer.start_as_current_span("an engine opened inside a span"):
            pass
        run = await engine.start(reads_a_file.with_options(id="sandboxed"))
        with pytest.raises(retold.WorkflowFailedError):
            await run.result(timeout=20)
    failed = one(otel.finished("RunWorkflow:reads_a_file"))
    assert failed.status.description is not None
    assert "WorkflowSandboxError" in failed.status.description
    start = one(otel.finished("StartWorkflow:reads_a_file"))
    assert failed.parent is not None
    assert failed.parent.span_id == start.context.span_id
    assert otel.total("retold.runs.closed", status="failed") == 1
    durations = otel.points("retold.workflow_task.duration")
    assert sum(p.count for p in durations if p.attributes["outcome"] == "failed") == 1


async def test_spans_of_a_run_without_recorded_context_are_roots(make_engine: EngineFactory, otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("the web app")
    with tracer.start_as_current_span("opening the engine"):  # the workers' tasks inherit this context
        async with make_engine([order], [reserve], tracer_provider=otel.tracer_provider) as engine:
            with tracer.start_as_current_span("unrelated"):
                pass
    async with make_engine([order], [reserve], telemetry=False) as engine:  # recorded without a trace
        await engine.start(order.with_options(id="no-trace"), "book")
        await wait_status(engine, "no-trace", "waiting")
    with tracer.start_as_current_span("opening the engine again"):
        async with make_engine([order], [reserve], tracer_provider=otel.tracer_provider) as engine:
            await engine.get_handle("no-trace").signal("approve", True)
            await engine.get_handle("no-trace").result(timeout=20)
    runs = otel.finished("RunWorkflow:order") + otel.finished("RunActivity:reserve")
    assert len(runs) == 3  # the signal's task, the second activity, the last task
    assert all(span.parent is None for span in runs)
