"""Child process for the update crash test: an update whose handler awaits an activity, killed midway.

Usage: ``python -m tests.crash._update URL WORKFLOW_ID DIR`` (from the repository root). An engine
hosting ``upd_cart`` starts the run and sends it update ``add("apple")`` with id ``u-1``; the
handler's activity writes ``DIR/started`` and waits until ``DIR/release`` exists, which the test
creates only after it has killed this process with SIGKILL.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import retold

FOLDER = Path(".")


@retold.activity(name="upd_price")
async def price(item: str) -> int:
    (FOLDER / "started").touch()
    while not (FOLDER / "release").exists():
        await anyio.sleep(0.05)  # in flight until SIGKILL (the recovering engine finds the file)
    return len(item)


@retold.workflow(name="upd_cart")
async def cart(owner: str) -> list[str]:
    items: list[str] = [owner]

    async def add(item: str) -> int:
        await retold.execute(price, item)
        items.append(item)
        return len(items)

    retold.set_update_handler("add", add)
    await retold.wait_signal("checkout")
    return items


async def main(url: str, workflow_id: str) -> None:
    async with retold.Engine(url, workflows=[cart], activities=[price], poll_interval=0.05, lease=1.0) as engine:
        run = await engine.start(cart.with_options(id=workflow_id), "ann")
        await run.update("add", "apple", id="u-1")  # never returns: the test kills this process


if __name__ == "__main__":
    FOLDER = Path(sys.argv[3])
    anyio.run(main, sys.argv[1], sys.argv[2])
