"""Why is my run not moving? ``describe()`` says what it waits for, and when nothing will run it.

The web process below hosts the ``checkout`` workflow and the ``charge``
activity, but not ``ship``: that one belongs to a warehouse worker that is
not running yet. The run charges (the first attempt fails, the retry waits),
then schedules ``ship`` and waits; ``describe()`` and the engine's log say
that no running worker hosts it. When the warehouse worker starts, the run
finishes.

Run it::

    python examples/stuck_work.py
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
_CALLS = {"charge": 0}


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity(retry=retold.RetryPolicy(initial_interval=timedelta(seconds=2), jitter=False))
async def charge(order_id: str) -> str:
    _CALLS["charge"] += 1
    if _CALLS["charge"] == 1:
        raise ConnectionError("the payment service hung up")
    return f"pay-{order_id}"


@retold.activity(task_queue="warehouse")
async def ship(order_id: str) -> str:
    say("warehouse", f"ship {order_id}")
    return f"parcel-{order_id}"


@retold.workflow
async def checkout(order_id: str) -> str:
    """Charge, then have the warehouse ship."""
    payment = await retold.execute(charge, order_id)
    parcel = await retold.execute(ship, order_id)
    return f"{order_id}: {payment}, {parcel}"


async def show(run: retold.RunHandle[str], until: str) -> None:
    """Print what the run waits for once a line containing ``until`` appears."""
    with anyio.fail_after(30):
        while True:
            described = await run.describe()
            assert described.pending is not None
            if any(until in line for line in described.pending.waiting_for):
                for line in described.pending.waiting_for:
                    say("describe", line)
                return
            await anyio.sleep(0.05)


async def run_example(db: Path) -> None:
    """Start a checkout on a web engine without the warehouse, look at it, then start the warehouse."""
    url = f"sqlite:///{db}"
    async with retold.Engine(url, workflows=[checkout], activities=[charge], poll_interval=0.05) as web:
        run = await web.start(checkout.with_options(id="order-42"), "order-42")
        await show(run, "the last attempt failed")
        await show(run, "no running worker hosts it")
        try:
            await run.result(timeout=0.5)
        except retold.ResultTimeoutError as exc:
            say("main", f"ResultTimeoutError: {exc}")
        async with retold.Engine(url, activities=[ship], activity_concurrency={"warehouse": 10}, poll_interval=0.05):
            say("main", await run.result(timeout=30))


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Pending work and work that no worker hosts.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db: Path = args.db or Path(tmp) / "stuck_work.db"
        anyio.run(run_example, db.resolve())


if __name__ == "__main__":
    main()
