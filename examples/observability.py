"""Logs and traces of a workflow: JSON log lines with the run's fields, spans in the caller's trace.

Logging goes through structlog's stdlib formatter as one JSON object per
line; ``retold.RunContextFilter`` on the handler adds ``workflow``,
``workflow_id``, ``run_id`` (and in activities ``activity``, ``attempt``) to
every record, including those of the activity's own
``logging.getLogger(__name__)``. The workflow logs with ``retold.logger``:
its lines appear once, though the engine restarts half-way and replays the
run. OpenTelemetry's SDK keeps the spans in memory; the example prints them
as a tree at the end: everything the run did is under the (pretend) HTTP
request that started it, across the restart.

Run it (``pip install 'retold[otel]' opentelemetry-sdk structlog``)::

    python examples/observability.py
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import anyio
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import retold

log = logging.getLogger("examples.observability")  # the activity's plain stdlib logger


def setup_logging() -> None:
    """JSON lines on stdout, with the run's fields on every record."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(retold.RunContextFilter())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(sort_keys=True)],
    ))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


@retold.activity(retry=retold.RetryPolicy(initial_interval=timedelta(milliseconds=50)))
async def charge(order_id: str) -> str:
    """Charge a card; the first attempt fails (retold logs it at WARNING and retries)."""
    attempt = retold.activity_info().attempt
    log.info("charging %s", order_id)
    if attempt == 1:
        raise ConnectionError("the payment service hung up")
    return f"receipt-{order_id}"


@retold.workflow
async def checkout(order_id: str) -> str:
    """Charge, wait for an approval, finish."""
    status = "charging"
    retold.set_query_handler("status", lambda: status)
    retold.logger.info("checkout of %s begins", order_id)
    receipt = await retold.execute(charge, order_id)
    retold.logger.info("charged: %s", receipt)
    status = "waiting"
    await retold.wait_signal("approve")
    retold.logger.info("approved")
    return receipt


def print_tree(spans: list[ReadableSpan]) -> None:
    """Print spans as an indented tree, children in start order."""
    children: dict[int | None, list[ReadableSpan]] = {}
    known = {span.context.span_id for span in spans}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in known else None
        children.setdefault(parent, []).append(span)

    def show(parent: int | None, depth: int) -> None:
        for span in children.get(parent, []):
            print(f"span {'  ' * depth}{span.name}", flush=True)
            show(span.context.span_id, depth + 1)

    show(None, 0)


async def main(db: Path) -> None:
    """Start a run, restart the engine, approve it, print the spans."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("the web app")
    url = f"sqlite:///{db}"
    async with retold.Engine(url, workflows=[checkout], activities=[charge], tracer_provider=provider) as engine:
        with tracer.start_as_current_span("POST /orders"):
            run = await engine.start(checkout.with_options(id="order-1"), "order-1")
        with anyio.fail_after(30):  # until the step that reached the wait is committed
            while (await run.history())[-1].type != "WorkflowTaskCompleted":
                await anyio.sleep(0.05)
    # A new engine (as after a restart or a deploy): it replays the run, logging nothing again.
    async with retold.Engine(url, workflows=[checkout], activities=[charge], tracer_provider=provider) as engine:
        with tracer.start_as_current_span("POST /orders/order-1/approve"):
            await engine.get_handle("order-1").signal("approve", True)
        await engine.get_handle("order-1").result(timeout=30)
    print_tree(list(spans.get_finished_spans()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path(tempfile.mkdtemp()) / "observability.db")
    setup_logging()
    anyio.run(main, parser.parse_args().db)
