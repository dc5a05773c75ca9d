"""Child process for the detached-start crash test: a worker killed after its run started another run.

Usage: ``python -m tests.crash._detached URL DIR NAME`` (from the repository root). The worker runs until
stopped. The starter's activity, run after its start command is committed, writes ``DIR/started`` and
waits until ``DIR/release`` exists, which the test creates only after it has killed the first worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import retold

FOLDER = Path(".")


@retold.activity(name="det_hold")
async def hold() -> str:
    (FOLDER / "started").touch()
    while not (FOLDER / "release").exists():
        await anyio.sleep(0.05)  # in flight until SIGKILL (the next worker finds the file)
    return "held"


@retold.workflow(name="det_report")
async def report(day: str) -> str:
    return f"report {day}"


@retold.workflow(name="det_nightly")
async def nightly(day: str) -> str:
    run_id = await retold.start_workflow(report.with_options(id=f"det-report-{day}"), day)
    await retold.execute(hold)
    return run_id


async def main(url: str) -> None:
    async with retold.Engine(url, workflows=[nightly, report], activities=[hold], poll_interval=0.05, lease=1.0):
        await anyio.sleep_forever()


if __name__ == "__main__":
    FOLDER = Path(sys.argv[2])
    anyio.run(main, sys.argv[1])
