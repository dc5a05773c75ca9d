"""Child process for the schedule tests: an engine that hosts ``sched_ping`` and fires schedules until killed.

Usage: ``python -m tests.crash._schedules URL`` (from the repository root). It prints ``ready``
once its engine is open. With ``$RETOLD_SCHEDULE_FAILPOINT`` set (``after_start``,
``before_commit``), it kills itself with SIGKILL inside its first fire's transaction.
"""

from __future__ import annotations

import sys

import anyio

import retold


@retold.workflow(name="sched_ping")
async def ping(n: int) -> int:
    return n + 1


async def main(url: str) -> None:
    async with retold.Engine(url, workflows=[ping], poll_interval=0.05):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
