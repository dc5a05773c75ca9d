"""W1 (first cut): N workflows of 3 no-op activities started concurrently on SQLite.

Prints workflows/s and start-to-result percentiles per repetition, then the
median, and writes the figures as JSON. Durable default: WAL, synchronous=FULL.

    python benchmarks/throughput.py [--workflows 1000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import retold


@retold.activity
async def noop(i: int) -> int:
    return i


@retold.workflow
async def three_steps(i: int) -> int:
    a = await retold.execute(noop, i)
    b = await retold.execute(noop, a + 1)
    return await retold.execute(noop, b + 1)


async def one_round(n: int, db: Path) -> dict[str, Any]:
    latencies: list[float] = []
    async with retold.Engine(f"sqlite:///{db}", workflows=[three_steps], activities=[noop]) as engine:
        start = time.perf_counter()

        async def one(i: int) -> None:
            t0 = time.perf_counter()
            run = await engine.start(three_steps, i, id=f"wf-{i}")
            assert await run.result() == i + 2
            latencies.append(time.perf_counter() - t0)

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "workflows": n,
        "seconds": elapsed,
        "workflows_per_s": n / elapsed,
        "steps_per_s": 3 * n / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "db_bytes_per_workflow": sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/throughput.json"))
    args = parser.parse_args()
    rounds = []
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            figures = anyio.run(one_round, args.workflows, Path(tmp) / "bench.db")
        rounds.append(figures)
        print(f"round {r + 1}/{args.repeat}: {figures['seconds']:.2f} s, "
              f"{figures['workflows_per_s']:.0f} workflows/s, p50 {figures['p50_ms']:.0f} ms, "
              f"p99 {figures['p99_ms']:.0f} ms, {figures['db_bytes_per_workflow']:.0f} B/workflow", flush=True)
    keys = ["seconds", "workflows_per_s", "steps_per_s", "p50_ms", "p99_ms", "db_bytes_per_workflow"]
    median = {k: statistics.median(r[k] for r in rounds) for k in keys}
    print("median: " + ", ".join(f"{k}={v:.1f}" for k, v in median.items()))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rounds": rounds, "median": median}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
