"""Child process for the signal-with-start crash test: signal-with-start twice, then SIGKILL itself.

Usage: ``python -m tests.crash._sws URL WORKFLOW_ID`` (from the repository root). An engine that
hosts ``sws_cart`` signals-with-starts ``apple`` (the run is new) and ``pear`` (it exists), prints
``returned RUN_ID`` once both calls returned, and kills itself with SIGKILL at once.
"""

from __future__ import annotations

import os
import signal
import sys

import anyio

import retold


@retold.workflow(name="sws_cart", signals={"add": str})
async def cart(customer: str) -> list[str]:
    items = [customer]
    while True:
        item = await retold.wait_signal("add", str)
        if item is None or item == "checkout":
            return items
        items.append(item)


async def main(url: str, workflow_id: str) -> None:
    async with retold.Engine(url, workflows=[cart], poll_interval=0.05) as engine:
        run = await engine.signal_with_start(cart.with_options(id=workflow_id), "add", "apple", "ann")
        await engine.signal_with_start(cart.with_options(id=workflow_id), "add", "pear", "ann")
        sys.stdout.write(f"returned {run.run_id}\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
