"""Child process for the wait-for-cancellation crash test: a worker hosting only the activity.

Usage: ``python -m tests.crash._cancel_wait URL DIR NAME`` (from the repository root). The worker runs
until stopped. Each attempt writes ``DIR/started-NAME`` and then waits (for longer than the test).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import retold

FOLDER = Path(".")
NAME = "?"


@retold.activity(name="cw_slow", cancellation_type="wait_cancellation_completed")
async def slow() -> str:
    (FOLDER / f"started-{NAME}").touch()
    await anyio.sleep(300)
    return "done"


async def main(url: str) -> None:
    async with retold.Engine(url, activities=[slow], poll_interval=0.05, lease=1.0):
        await anyio.sleep_forever()


if __name__ == "__main__":
    FOLDER, NAME = Path(sys.argv[2]), sys.argv[3]
    anyio.run(main, sys.argv[1])
