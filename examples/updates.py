"""Updates: a durable request with a reply. A shopping cart answers "add this item" with the new total.

``retold.set_update_handler(name, handler, validator=...)`` (or the
``@retold.update_handler(name)`` decorator) registers, inside the workflow,
what an update does; ``await run.update(name, *args)`` sends one and returns
the handler's result. The validator judges the request first, on the run's
current state: a rejected update leaves no trace in the history. An accepted
one is recorded (``UpdateAccepted``) and its handler runs as workflow code,
here awaiting an activity, until ``UpdateCompleted`` holds the reply. Sent
again with the same ``id`` (a retry after a timeout, say), an update runs once
and gets the same reply.

Run it::

    python examples/updates.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio

import retold

_START = time.monotonic()
PRICES = {"tea": 4, "scones": 6, "jam": 3}


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity
async def reserve(item: str) -> int:
    """Reserve the item in the warehouse; return its price."""
    say("activity", f"reserved {item}")
    return PRICES[item]


@retold.workflow
async def cart(customer: str) -> int:
    """Take items by update until "checkout"; return the total."""
    total = 0
    items: list[str] = []

    def check(item: str) -> None:
        if item not in PRICES:
            raise ValueError(f"we do not sell {item}")
        if item in items:
            raise ValueError(f"{item} is already in the cart")

    @retold.update_handler("add", validator=check)
    async def add(item: str) -> int:
        nonlocal total
        total += await retold.execute(reserve, item)
        items.append(item)
        return total

    await retold.wait_signal("checkout")
    return total


async def run_example(db: Path) -> None:
    """Add items by update (one twice with the same id, two refused), then check out."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[cart], activities=[reserve]) as engine:
        run = await engine.start(cart.with_options(id="cart-ada"), "ada")
        say("main", f"tea -> total {await run.update('add', 'tea', result_type=int)}")
        say("main", f"scones -> total {await run.update('add', 'scones', id='req-7', result_type=int)}")
        say("main", f"scones again, same id -> total {await run.update('add', 'scones', id='req-7')}")
        for item in ("scones", "caviar"):
            try:
                await run.update("add", item)
            except retold.UpdateRejectedError as err:
                say("main", f"{item} refused: {err.cause}")
        await run.signal("checkout")
        say("main", f"paid {await run.result(timeout=60)}")
        history = await run.history()
        updates = [e.type for e in history if e.type.startswith("Update")]
        say("main", f"history: {len(updates)} update events ({', '.join(sorted(set(updates)))})")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Updates: a shopping cart that answers with its total.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
