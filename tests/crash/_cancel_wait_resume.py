"""Child process for the resume-while-cancelling crash test.

Usage: ``python -m tests.crash._cancel_wait_resume URL DIR NAME`` (from the repository root). ``NAME``
``act`` hosts only the activity; any other name hosts only the workflow. Each runs until stopped.

The activity (a plain ``def``) writes ``DIR/started`` and heartbeats; told to stop, it writes ``DIR/told``
and acknowledges (raises) only once ``DIR/release`` exists: its cancellation takes as long as the test says.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import anyio

import retold

FOLDER = Path(".")


@retold.activity(name="cwr_slow", cancellation_type="wait_cancellation_completed")
def slow() -> str:
    (FOLDER / "started").touch()
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            retold.heartbeat()
            time.sleep(0.02)
    except asyncio.CancelledError:
        (FOLDER / "told").touch()
        while not (FOLDER / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        raise
    return "done"


@retold.workflow(name="cwr_flow")
async def flow() -> str:
    task = asyncio.ensure_future(retold.execute(slow))
    await retold.wait_signal("give-up", str)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await retold.sleep(0.01)  # a command after the wait ended: where it lands says when it ended
    return "gave up"


async def main(url: str, name: str) -> None:
    hosted: dict[str, list[object]] = {"activities": [slow]} if name == "act" else {"workflows": [flow]}
    async with retold.Engine(url, poll_interval=0.05, lease=1.0, **hosted):  # type: ignore[arg-type]
        await anyio.sleep_forever()


if __name__ == "__main__":
    FOLDER = Path(sys.argv[2])
    anyio.run(main, sys.argv[1], sys.argv[3])
