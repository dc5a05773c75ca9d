"""Child process for the take-over crash test: a worker holding many runs' activities, killed, and its successor.

Usage: ``python -m tests.crash._takeover URL DIR NAME`` (from the repository root). The worker runs until
stopped, with a 60 s lease. Worker ``a`` (the one to be killed) starts every ``hold`` activity, writes
``DIR/started-N`` and never returns. Any other worker runs each ``hold`` for 2 s, appending
``start N TIME`` and ``done N TIME`` lines to ``DIR/steps-NAME``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio

import retold

FOLDER = Path(".")
NAME = ""
LEASE = 60.0  # the dead worker's tasks are not waited out: its successor on this machine reaps it
STEP = 2.0  # seconds one hold takes in the successor


def note(line: str) -> None:
    fd = os.open(FOLDER / f"steps-{NAME}", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line} {time.time()}\n".encode())
    finally:
        os.close(fd)


@retold.activity(name="tko_hold", retry=retold.RetryPolicy(max_attempts=3))
async def hold(i: int) -> int:
    if NAME == "a":
        (FOLDER / f"started-{i}").touch()
        await anyio.sleep_forever()  # in flight until SIGKILL
    note(f"start {i}")
    await anyio.sleep(STEP)
    note(f"done {i}")
    return i


@retold.workflow(name="tko_chain")
async def chain(i: int) -> int:
    return await retold.execute(hold, i) + 1


async def main(url: str) -> None:
    async with retold.Engine(url, workflows=[chain], activities=[hold], poll_interval=0.05, lease=LEASE):
        await anyio.sleep_forever()


if __name__ == "__main__":
    FOLDER, NAME = Path(sys.argv[2]), sys.argv[3]
    anyio.run(main, sys.argv[1])
