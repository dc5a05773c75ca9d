"""Child process for the update crash test: a worker hosting ``upd_cart``, killed while an update runs.

Usage: ``python -m tests.crash._update URL DIR NAME`` (from the repository root). The worker runs until
stopped. The update handler's activity writes ``DIR/started`` and waits until ``DIR/release``
exists, which the test creates only after it has killed the first worker with SIGKILL.
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
        await anyio.sleep(0.05)  # in flight until SIGKILL (the next worker finds the file)
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


async def main(url: str) -> None:
    async with retold.Engine(url, workflows=[cart], activities=[price], poll_interval=0.05, lease=1.0):
        await anyio.sleep_forever()


if __name__ == "__main__":
    FOLDER = Path(sys.argv[2])
    anyio.run(main, sys.argv[1])
