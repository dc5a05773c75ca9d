"""Finding runs: search attributes, a memo, list filters and cursor pages.

Each order run is started with search attributes (``customer``, ``priority``)
and a memo (a note for whoever reads the run); the workflow itself records its
``stage`` as it moves (``retold.upsert_search_attributes``). Support then finds
"acme's orders waiting for payment", the urgent ones, the ones shipped since a
time, and pages through them all with a cursor, while new orders keep coming.

Run it::

    python examples/finding_runs.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

import retold

_START = time.monotonic()


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.workflow(signals={"paid": bool})
async def order(number: int) -> str:
    """An order: waits for payment, then ships; its ``stage`` attribute says where it is."""
    retold.upsert_search_attributes({"stage": "awaiting_payment"})
    await retold.wait_signal("paid", bool)
    retold.upsert_search_attributes({"stage": "shipped", "shipped_at": retold.now()})
    return f"order {number} shipped"


async def run_example(db: Path) -> None:
    """Start orders for two customers, pay some, then find them in several ways."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[order]) as engine:
        runs = []
        for number in range(1, 7):
            customer = "acme" if number % 2 else "globex"
            started = order.with_options(
                id=f"order-{number}", search_attributes={"customer": customer, "priority": 1 + number % 3},
                memo={"note": f"gift wrap order {number}" if number == 3 else "none"})
            runs.append(await engine.start(started, number))
        before_shipping = datetime.now(UTC)
        for run in runs[:3]:  # orders 1-3 are paid and ship
            await run.signal("paid", True)
            await run.result(timeout=30)
        # Orders 4-6 wait for payment: their first step recorded their stage.
        with anyio.fail_after(30):
            while len(await engine.list_runs(search_attributes={"stage": "awaiting_payment"})) < 3:
                await anyio.sleep(0.05)

        waiting = await engine.list_runs(search_attributes={"customer": "acme", "stage": "awaiting_payment"})
        say("support", f"acme awaiting payment: {[r.workflow_id for r in waiting]}")
        urgent = await engine.list_runs(search_attributes={"priority": 3})
        say("support", f"priority 3: {[r.workflow_id for r in urgent]}")
        shipped = await engine.list_runs(search_attributes={"stage": "shipped"}, closed_after=before_shipping)
        say("support", f"shipped since {before_shipping:%H:%M}: {sorted(r.workflow_id for r in shipped)}")
        three = await engine.get_handle("order-3").describe()
        say("support", f"order-3: {three.search_attributes['customer']}, memo {three.memo}")

        # Pages of 2; new orders started between pages never push one onto two pages.
        page = await engine.list_runs(id_prefix="order-", limit=2)
        pages = [[r.workflow_id for r in page]]
        while page.next_cursor is not None:
            await engine.start(order.with_options(id=f"order-new-{len(pages)}"), 100 + len(pages))
            page = await engine.list_runs(id_prefix="order-", limit=2, cursor=page.next_cursor)
            pages.append([r.workflow_id for r in page])
        say("support", f"pages: {pages}")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Finding runs: search attributes, filters, cursor pages.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
