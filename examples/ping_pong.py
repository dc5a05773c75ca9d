"""Two workflows talk through signals: an order tells its shipment it is paid, the shipment answers.

``retold.signal_workflow(workflow_id, name, value)`` sends a signal from
workflow code. It is recorded with the step that sends it, delivered in the
same transaction, and sent exactly once: a crash or a replay matches the
recorded ``ExternalSignalRequested`` instead of sending it again.

Run it::

    python examples/ping_pong.py
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


@retold.activity
async def charge(order_id: str, amount: int) -> str:
    say("activity", f"charge {order_id}: {amount} EUR")
    return f"pay-{order_id}"


@retold.activity
async def pack(order_id: str) -> str:
    say("activity", f"pack {order_id}")
    return f"parcel-{order_id}"


@retold.workflow
async def shipment(order_id: str) -> str:
    """Wait until the order is paid, pack it, tell the order which parcel it is."""
    payment = await retold.wait_signal("paid", str, timeout=timedelta(days=7))
    if payment is None:
        return "never paid"
    parcel = await retold.execute(pack, order_id)
    await retold.signal_workflow(f"order-{order_id}", "shipped", parcel)
    return parcel


@retold.workflow
async def order(order_id: str, amount: int) -> str:
    """Charge, tell the shipment, wait for its answer."""
    payment = await retold.execute(charge, order_id, amount)
    await retold.signal_workflow(f"shipment-{order_id}", "paid", payment)
    parcel = await retold.wait_signal("shipped", str)
    return f"{order_id} paid ({payment}) and shipped as {parcel}"


async def run_example(db: Path) -> None:
    """Start both workflows and wait for the order's result."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[order, shipment], activities=[charge, pack]) as engine:
        await engine.start(shipment.with_options(id="shipment-A7"), "A7")
        run = await engine.start(order.with_options(id="order-A7"), "A7", 30)
        say("main", await run.result(timeout=60))
        history = await run.history()
        say("main", "order history: " + ", ".join(event.type for event in history))


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Two workflows signalling each other.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db: Path = args.db or Path(tmp) / "ping_pong.db"
        anyio.run(run_example, db.resolve())


if __name__ == "__main__":
    main()
