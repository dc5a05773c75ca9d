"""Child process for the search attributes crash test: a worker hosting ``sa_order``, killed mid-run.

Usage: ``python -m tests.crash._search URL DIR NAME`` (from the repository root). The worker runs until
stopped. The workflow upserts ``stage=paid``, then its activity writes ``DIR/started`` and waits until
``DIR/release`` exists, which the test creates only after it has killed the first worker with SIGKILL.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import retold

FOLDER = Path(".")


@retold.activity(name="sa_ship")
async def ship(order: str) -> str:
    (FOLDER / "started").touch()
    while not (FOLDER / "release").exists():
        await anyio.sleep(0.05)  # in flight until SIGKILL (the next worker finds the file)
    return f"shipped {order}"


@retold.workflow(name="sa_order")
async def order(name: str) -> str:
    retold.upsert_search_attributes({"stage": "paid", "items": 3})
    shipped = await retold.execute(ship, name)
    retold.upsert_search_attributes({"stage": "shipped", "items": None})
    return shipped


async def main(url: str) -> None:
    async with retold.Engine(url, workflows=[order], activities=[ship], poll_interval=0.05, lease=1.0):
        await anyio.sleep_forever()


if __name__ == "__main__":
    FOLDER = Path(sys.argv[2])
    anyio.run(main, sys.argv[1])
