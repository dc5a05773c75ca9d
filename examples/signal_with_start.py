"""Signal-with-start: every "add to cart" signals the customer's cart, starting it on the first one.

``engine.signal_with_start(workflow.with_options(id=...), signal, value, *args)``
signals the run with that workflow id, starting it first (with ``args``) if
there is none, in one transaction: no "start, then signal" race where two
requests both start, or a signal lands before the run exists. A new run's
history begins ``WorkflowStarted, SignalReceived``; an open run just gets the
signal (its input is not compared).

Run it::

    python examples/signal_with_start.py
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
async def place_order(customer: str, items: list[str]) -> str:
    say("activity", f"order for {customer}: {', '.join(items)}")
    return f"order-{customer}-{len(items)}"


@retold.workflow(signals={"add": str})
async def cart(customer: str) -> str:
    """Collect items until "checkout" (or a day without one), then place the order."""
    items: list[str] = []
    while True:
        item = await retold.wait_signal("add", str, timeout=timedelta(days=1))
        if item is None or item == "checkout":
            break
        items.append(item)
    return await retold.execute(place_order, customer, items)


async def add_to_cart(engine: retold.Engine, customer: str, item: str) -> None:
    """What a web handler does for "add to cart": no need to know whether the cart exists yet."""
    run = await engine.signal_with_start(cart.with_options(id=f"cart-{customer}"), "add", item, customer)
    say("main", f"{item} -> cart-{customer} ({'started' if run.created else 'signalled'})")


async def run_example(db: Path) -> None:
    """Add three items (the first starts the cart), then check out."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[cart], activities=[place_order]) as engine:
        for item in ("tea", "scones", "checkout"):
            await add_to_cart(engine, "ada", item)
        run = engine.get_handle("cart-ada")
        say("main", await run.result(timeout=60))
        history = await run.history()
        say("main", "history starts: " + ", ".join(event.type for event in list(history)[:2]))


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Signal-with-start: a shopping cart.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
