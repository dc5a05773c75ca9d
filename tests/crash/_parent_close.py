"""Child process for the parent-close crash test: a worker killed after its run started children with policies.

Usage: ``python -m tests.crash._parent_close URL DIR NAME`` (from the repository root). The worker runs until
stopped. The parent's activity, run after its child starts are committed, writes ``DIR/started`` and waits
until ``DIR/release`` exists, which the test creates only after it has killed the first worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import retold

FOLDER = Path(".")


@retold.activity(name="pc_hold")
async def hold() -> str:
    (FOLDER / "started").touch()
    while not (FOLDER / "release").exists():
        await anyio.sleep(0.05)  # in flight until SIGKILL (the next worker finds the file)
    return "held"


@retold.workflow(name="pc_kid")
async def kid() -> str:
    await retold.wait_signal("go")
    return "kid done"


@retold.workflow(name="pc_parent")
async def parent() -> str:
    retold.start_child(kid.with_options(id="pc-terminated", parent_close_policy="terminate"))
    retold.start_child(kid.with_options(id="pc-abandoned", parent_close_policy="abandon"))
    await retold.execute(hold)
    return "parent done"


async def main(url: str) -> None:
    async with retold.Engine(url, workflows=[parent, kid], activities=[hold], poll_interval=0.05, lease=1.0):
        await anyio.sleep_forever()


if __name__ == "__main__":
    FOLDER = Path(sys.argv[2])
    anyio.run(main, sys.argv[1])
