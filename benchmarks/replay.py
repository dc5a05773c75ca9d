"""Replay cost: rebuild a run from a history of N sequential activities, cold.

Prints microseconds per activity for each N (median of several runs) and
writes JSON; the cost per activity should stay flat as N grows.

    python benchmarks/replay.py [--sizes 100 1000 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import orjson

import retold
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.runtime._instance import WorkflowInstance

OPTIONS = retold.ActivityOptions().to_json()


@retold.activity
async def step(i: int) -> int:
    return i


@retold.workflow
async def long_run(n: int) -> int:
    total = 0
    for i in range(n):
        total += await retold.execute(step, i)
    return total


def history(n: int) -> list[ev.Event]:
    events: list[ev.Event] = [
        ev.WorkflowStarted(seq=1, at=0.0, workflow="long_run", workflow_id="w", input=orjson.dumps([n]))
    ]
    for i in range(n):
        seq = len(events) + 1
        arg = orjson.dumps([i])
        events.append(ev.ActivityScheduled(seq=seq, at=0.0, activity="step", input=arg, options=OPTIONS))
        events.append(ev.ActivityCompleted(seq=seq + 1, at=0.0, scheduled=seq, attempt=1, result=orjson.dumps(i)))
    events.append(ev.WorkflowCompleted(seq=len(events) + 1, at=0.0, result=orjson.dumps(n * (n - 1) // 2)))
    return events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/replay.json"))
    args = parser.parse_args()
    codec = JsonCodec()
    figures = {}
    for n in args.sizes:
        events = history(n)
        timings = []
        for _ in range(args.repeat):
            instance = WorkflowInstance(long_run, "r", codec)
            t0 = time.perf_counter()
            assert instance.apply(events) == []
            timings.append(time.perf_counter() - t0)
            instance.close()
        per_activity = 1e6 * statistics.median(timings) / n
        figures[n] = {"median_s": statistics.median(timings), "us_per_activity": per_activity}
        print(f"{n:>6} activities: {statistics.median(timings) * 1000:8.1f} ms, {per_activity:6.1f} us/activity")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
