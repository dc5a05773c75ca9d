"""Fan-out / fan-in: run N activities at once and combine their results.

The workflow schedules one ``measure`` activity per shard with
``asyncio.gather``; all N are recorded in the history before any of them
runs, the engine runs them concurrently, and the workflow resumes when the
last result is in. A durable workflow can use plain asyncio for this.

Run it::

    python examples/parallel.py               # 10 shards, fresh temp database
    python examples/parallel.py --shards 25 --db parallel.db
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio

import retold

_START = time.monotonic()


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity(
    retry=retold.RetryPolicy(initial_interval=timedelta(milliseconds=100), max_attempts=3),
    start_to_close=timedelta(seconds=5),
)
async def measure(shard: int) -> int:
    """Pretend to scan one shard (a short random delay) and return its size."""
    say("activity", f"measure({shard}) started")
    await anyio.sleep(random.uniform(0.2, 0.5))
    size = shard * shard
    say("activity", f"measure({shard}) -> {size}")
    return size


@dataclass
class Report:
    """The combined result."""

    sizes: list[int]
    total: int
    largest_shard: int


@retold.workflow
async def survey(shards: int) -> Report:
    """Measure every shard in parallel, then combine the results."""
    sizes = await asyncio.gather(*(retold.execute(measure, i) for i in range(shards)))
    largest = max(range(shards), key=lambda i: sizes[i])
    return Report(sizes=list(sizes), total=sum(sizes), largest_shard=largest)


async def run_example(db: Path, shards: int) -> None:
    """Run one survey and print its report."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[survey], activities=[measure]) as engine:
        started = time.monotonic()
        run = await engine.start(survey.with_options(id=f"survey-{uuid.uuid4().hex[:8]}"), shards)
        say("main", f"started workflow {run.workflow_id} with {shards} shards")
        report = await run.result(timeout=60)
        elapsed = time.monotonic() - started
        if shards <= 20:
            say("main", f"sizes: {report.sizes}")
        say("main", f"total = {report.total}")
        say("main", f"largest shard = {report.largest_shard}")
        say("main", f"{shards} activities of 0.2-0.5 s each finished in {elapsed:.2f} s")
        scheduled = [e for e in await run.history() if e.type == "ActivityScheduled"]
        say("main", f"history: {len(scheduled)} ActivityScheduled events")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Fan-out / fan-in over N activities.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    parser.add_argument("--shards", type=int, default=10, help="how many activities to fan out to")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db: Path = args.db or Path(tmp) / "parallel.db"
        say("main", f"database: {db}")
        anyio.run(run_example, db.resolve(), args.shards)


if __name__ == "__main__":
    main()
