"""Child process for the SIGKILL test of logs and spans (test_observed_kill.py).

Usage::

    python _observed.py crash   DB OUT   # start a run under a "request" span, run until killed
    python _observed.py recover DB OUT   # open an engine, wait for the run, exit

Log records (with the run's fields) and finished spans (name, trace, span,
parent) are appended to ``OUT`` as JSON lines, each written and fsync'd
at once, so what the killed process wrote before the kill is all there.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import retold

PHASE = sys.argv[1] if len(sys.argv) > 1 else ""
OUT = sys.argv[3] if len(sys.argv) > 3 else ""
log = retold.get_logger("observed")


def append(record: dict[str, Any]) -> None:
    """One JSON line, durably."""
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps({**record, "pid": os.getpid()}) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        append({"kind": "log", "logger": record.name, "message": record.getMessage(),
                **{k: getattr(record, k, None) for k in ("workflow", "workflow_id", "run_id", "activity", "attempt")}})


class Spans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            append({"kind": "span", "name": span.name, "trace": span.context.trace_id,
                    "span": span.context.span_id, "parent": span.parent.span_id if span.parent else None})
        return SpanExportResult.SUCCESS


@retold.activity(retry=retold.RetryPolicy(max_attempts=1))
async def step(i: int) -> int:
    log.info("activity step %d", i)
    if PHASE == "crash" and i == 3:
        await anyio.sleep(3600)  # in flight until SIGKILL
    return i


@retold.workflow
async def observed(steps: int) -> int:
    total = 0
    for i in range(1, steps + 1):
        total += await retold.execute(step, i)
        log.info("after step %d", i)
    return total


async def main(db: str) -> None:
    handler = Lines()
    handler.addFilter(retold.RunContextFilter())
    logging.getLogger("observed").addHandler(handler)
    logging.getLogger("observed").setLevel(logging.INFO)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Spans()))
    async with retold.Engine(f"sqlite:///{db}", workflows=[observed], activities=[step], lease=2.0,
                             poll_interval=0.05, tracer_provider=provider) as engine:
        if PHASE == "crash":
            with provider.get_tracer("test").start_as_current_span("request"):
                await engine.start(observed.with_options(id="observed"), 4)
            await anyio.sleep(3600)
        else:
            assert await engine.get_handle("observed").result(timeout=60) == 10


if __name__ == "__main__":
    anyio.run(main, sys.argv[2])
