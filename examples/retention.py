"""Retention: old finished runs are deleted, running ones are kept.

An engine with ``retention=timedelta(days=30)`` deletes finished runs (and
their histories) that closed more than 30 days ago, on its own, every 10
minutes. Waiting 30 days makes a poor example, so this one gives the engine a
clock it can move: it finishes some orders, leaves one waiting for approval,
moves the clock 31 days on, and shows what a dry run would delete, then what
the engine's retention deleted, and that the waiting order still works.

Run it::

    python examples/retention.py               # fresh temp database
    python examples/retention.py --db retention.db
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import anyio

import retold

_START = time.monotonic()


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.workflow
async def order(number: int, needs_approval: bool) -> str:
    """An order; some wait for an approval signal."""
    if needs_approval:
        await retold.wait_signal("approve", bool)
    return f"order {number} done"


class MovableClock:
    """The store's clock: real time plus however far the example has moved it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def run(db: Path) -> None:
    clock = MovableClock()
    async with retold.Engine(f"sqlite:///{db}", workflows=[order], clock=clock, poll_interval=0.1,
                             retention=timedelta(days=30)) as engine:
        for n in range(3):
            say("main", await (await engine.start(order, n, False)).result())
        waiting = await engine.start(order.with_options(id="order-99"), 99, True)
        say("main", f"runs: {len(await engine.list_runs())} (one waiting for approval)")

        clock.offset += timedelta(days=31).total_seconds()
        say("main", "31 days later")
        report = await engine.purge(timedelta(days=30), dry_run=True)
        say("main", f"a dry run would delete {report.runs} runs and {report.events} events")
        with anyio.fail_after(30):
            while len(await engine.list_runs()) > 1:  # the engine's retention loop gets there on its own
                await anyio.sleep(0.1)
        left = await engine.list_runs()
        say("main", f"retention left {len(left)} run: {left[0].workflow_id} ({left[0].status})")
        await waiting.signal("approve", True)
        say("main", await waiting.result())


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Retention: old finished runs go, running ones stay.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    if args.db is not None:
        anyio.run(run, args.db)
        return
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run, Path(tmp) / "retention.db")


if __name__ == "__main__":
    main()
