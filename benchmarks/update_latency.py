"""Updates: the time of one ``run.update()`` whose handler returns at once, as the run's history grows.

An engine hosts one run (so it validates on its cached copy of the run); the
script sends ``--updates`` updates one after another and reports the mean
time per update, and the means of the first and last 50 (each update adds
two events to the history, and the reply is read through an event feed that
loads it). ``--replay`` validates every update by a replay of the history
instead, as a client that does not host the run does.

    python benchmarks/update_latency.py --updates 500 [--replay] \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints one line per store.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import retold
from _common import postgres_schema


@retold.workflow
async def counter() -> int:
    count = 0

    def bump(by: int) -> int:
        nonlocal count
        count += by
        return count

    retold.set_update_handler("bump", bump)
    await retold.wait_signal("stop")
    return count


async def measure(url: str, updates: int, replay: bool) -> dict[str, float]:
    async with retold.Engine(url, workflows=[counter], poll_interval=0.05) as engine:
        # With --replay the caller is a client that hosts nothing (on the engine's store object, so
        # that memory:// is shared): it validates each update on a replay of the history.
        caller = retold.Client(workflows=[counter], store=engine.store, poll_interval=0.05) if replay else None
        async with contextlib.AsyncExitStack() as stack:
            if caller is not None:
                await stack.enter_async_context(caller)
            run = await (caller or engine).start(counter.with_options(id="counter"))
            times = []
            for _ in range(updates):
                began = time.perf_counter()
                await run.update("bump", 1, timeout=60)
                times.append(time.perf_counter() - began)
            await run.signal("stop")
    head, tail = times[:50], times[-50:]
    return {"mean_ms": 1000 * sum(times) / len(times), "first_50_ms": 1000 * sum(head) / len(head),
            "last_50_ms": 1000 * sum(tail) / len(tail)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--replay", action="store_true", help="validate by replay (no cached copy)")
    parser.add_argument("--postgres", help="also measure on this PostgreSQL (in a schema of its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls: dict[str, Any] = {"memory": "memory://", "sqlite": f"sqlite:///{Path(tmp) / 'updates.db'}"}
        if args.postgres:
            urls["postgres"] = stack.enter_context(postgres_schema(args.postgres, "bench_updates"))
        for name, url in urls.items():
            got = anyio.run(measure, url, args.updates, args.replay)
            print(f"{name:8} {args.updates} updates: {got['mean_ms']:.1f} ms each "
                  f"(first 50: {got['first_50_ms']:.1f} ms, last 50: {got['last_50_ms']:.1f} ms)", flush=True)


if __name__ == "__main__":
    main()
