"""What the OpenTelemetry hooks cost: W1 and W3 with telemetry off, with the API alone, with an SDK.

One process runs the configurations in turn, round after round, each on a
fresh SQLite file, so that the machine's load drifts over all of them alike;
it prints the median wall time and process CPU time of each, and the ratio
to ``off`` (``Engine(telemetry=False)``: the hooks are the no-op object that
an engine uses when OpenTelemetry is not installed).

* ``off``: ``telemetry=False``.
* ``api``: OpenTelemetry installed, no SDK configured (its no-op providers).
* ``sdk``: the SDK's providers: spans to a batch processor whose exporter
  drops them, metrics to an in-memory reader (nothing exported).

    python benchmarks/telemetry.py --rounds 7 --workflows 200 --steps 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import retold
from sut_retold import ACTIVITIES, WORKFLOWS, long_run, three_steps


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def options(config: str) -> dict[str, Any]:
    """Engine keyword arguments of a configuration."""
    if config == "off":
        return {"telemetry": False}
    if config == "api":
        return {}
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return {"tracer_provider": tracer_provider, "meter_provider": meter_provider}


async def w1(url: str, config: str, n: int) -> None:
    async with retold.Engine(url, workflows=WORKFLOWS, activities=ACTIVITIES, **options(config)) as engine:

        async def one(i: int) -> None:
            run = await engine.start(three_steps.with_options(id=f"wf-{i}"), i)
            assert await run.result() == i + 2

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)


async def w3(url: str, config: str, n: int) -> None:
    async with retold.Engine(url, workflows=WORKFLOWS, activities=ACTIVITIES, **options(config)) as engine:
        run = await engine.start(long_run.with_options(id="long"), n)
        assert await run.result() == n * (n - 1) // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workflows", type=int, default=200, help="W1: workflows of 3 activities at once")
    parser.add_argument("--steps", type=int, default=200, help="W3: activities of one workflow")
    parser.add_argument("--configs", default="off,api,sdk")
    args = parser.parse_args()
    configs = args.configs.split(",")
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for workload, fn, size in (("W1", w1, args.workflows), ("W3", w3, args.steps)):
                for config in configs:
                    url = f"sqlite:///{Path(folder) / f'{workload}-{config}-{round_}.db'}"
                    wall, cpu = time.perf_counter(), time.process_time()
                    anyio.run(fn, url, config, size)
                    times.setdefault((workload, config), []).append(
                        (time.perf_counter() - wall, time.process_time() - cpu))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"{'workload':8} {'config':6} {'wall s (median)':>16} {'vs off':>8} {'cpu s (median)':>15} {'vs off':>8}")
    for workload in ("W1", "W3"):
        base_wall = statistics.median(w for w, _ in times[(workload, configs[0])])
        base_cpu = statistics.median(c for _, c in times[(workload, configs[0])])
        for config in configs:
            wall = statistics.median(w for w, _ in times[(workload, config)])
            cpu = statistics.median(c for _, c in times[(workload, config)])
            print(f"{workload:8} {config:6} {wall:16.3f} {wall / base_wall - 1:+8.1%} "
                  f"{cpu:15.3f} {cpu / base_cpu - 1:+8.1%}")


if __name__ == "__main__":
    main()
