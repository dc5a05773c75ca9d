"""Activity cancellation types: what a workflow that stops waiting for an activity does to it.

A shipment workflow gives each of three activities 0.2 s (``asyncio.wait_for``) and
gives up on each, with a different ``cancellation_type``:

- ``"try_cancel"`` (the default): the task is withdrawn and the attempt told; the
  workflow's wait ends at once;
- ``"wait_cancellation_completed"``: the attempt is told, and the workflow's wait
  ends only once the attempt has ended (its end, a cancellation, is recorded);
- ``"abandon"``: the attempt is not told; it runs to its end, its result recorded
  for no one, and the workflow's wait ends at once.

The run stays open until the abandoned attempt has ended (a run's close withdraws
every activity task it has). The history of each activity is printed at the end.

Run it::

    python examples/activity_cancellation.py
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import anyio

import retold

_START = time.monotonic()
TYPES: tuple[retold.ActivityCancellationType, ...] = ("try_cancel", "wait_cancellation_completed", "abandon")


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity
async def pack(kind: str) -> str:
    """Take long (the abandoned one 1 s, the others until told to stop)."""
    say("activity", f"{kind}: started")
    try:
        await anyio.sleep(1.0 if kind == "abandon" else 60)
    except BaseException:
        say("activity", f"{kind}: told to stop")
        raise
    say("activity", f"{kind}: finished, for no one")
    return f"{kind} packed"


@retold.workflow
async def shipment() -> list[str]:
    """Give each activity 0.2 s, one cancellation type after another."""
    seen = []
    for kind in TYPES:
        try:
            seen.append(await asyncio.wait_for(retold.execute(pack.with_options(cancellation_type=kind), kind), 0.2))
        except TimeoutError:
            seen.append(f"{kind}: gave up")
    await retold.wait_signal("close", str)  # the run's close would withdraw the abandoned task
    return seen


async def run_example(db: Path) -> None:
    """Run the shipment, wait for the abandoned activity's end, print each activity's events."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[shipment], activities=[pack]) as engine:
        run = await engine.start(shipment.with_options(id="shipment-1"))
        with anyio.fail_after(60):  # the abandoned attempt runs on: wait for its end to be recorded
            while "ActivityCompleted" not in [e.type for e in await run.history()]:
                await anyio.sleep(0.02)
        await run.signal("close", "now")
        seen = await run.result(timeout=60)
        say("main", f"the workflow saw: {seen}")
        history = await run.history()
        for scheduled in (e for e in history if e.type == "ActivityScheduled"):
            events = [e.type for e in history if getattr(e, "scheduled", None) == scheduled.seq]
            kind = TYPES[len([e for e in history[:scheduled.seq] if e.type == "ActivityScheduled"]) - 1]
            say("main", f"{kind}: {', '.join(['ActivityScheduled', *events])}")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Activity cancellation types: try_cancel, "
                                                 "wait_cancellation_completed, abandon.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
