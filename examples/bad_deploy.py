"""A bad deploy blocks a run instead of failing it; the rollback resumes it.

Version 1 of a shipping workflow packs an order, then waits for the courier
(a signal). Version 2, deployed while the run waits, weighs the parcel
before packing: the run's history (``pack`` first) no longer replays through
it. The run is *blocked*: still open, its history untouched, ``describe()``
naming the diverging event. Rolling back to version 1 resumes it at once
(an engine running other code than the one that failed takes it without
waiting for the retry), and it completes as if nothing had happened.

Each "deploy" is an engine opened on the same SQLite file, as a new release
of a worker process would be.

Run it::

    python examples/bad_deploy.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio

import retold

_START = time.monotonic()


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity
async def pack(order: str) -> str:
    say("activity", f"pack {order}")
    return f"parcel-{order}"


@retold.activity
async def weigh(order: str) -> float:
    say("activity", f"weigh {order}")
    return 1.5


@retold.activity
async def ship(parcel: str) -> str:
    say("activity", f"ship {parcel}")
    return f"tracking-{parcel}"


@retold.workflow(name="shipment")
async def shipment_v1(order: str) -> str:
    """Pack, wait for the courier, ship."""
    parcel = await retold.execute(pack, order)
    await retold.wait_signal("courier")
    return await retold.execute(ship, parcel)


@retold.workflow(name="shipment")
async def shipment_v2(order: str) -> str:
    """Weigh first (new), pack, wait for the courier, ship: runs already packed no longer replay."""
    await retold.execute(weigh, order)
    parcel = await retold.execute(pack, order)
    await retold.wait_signal("courier")
    return await retold.execute(ship, parcel)


def deploy(url: str, workflow: retold.Workflow[[str], str]) -> retold.Engine:
    # A long retry delay: the rollback below does not wait for it.
    return retold.Engine(url, workflows=[workflow], activities=[pack, weigh, ship], poll_interval=0.05,
                         workflow_task_retry_delay=60)


async def run_example(db: Path) -> None:
    """Start under v1, break it with v2, roll back to v1."""
    url = f"sqlite:///{db}"
    async with deploy(url, shipment_v1) as engine:
        say("deploy", f"v1 (code {engine.fingerprint})")
        run = await engine.start(shipment_v1.with_options(id="order-42"), "42")
        while "ActivityCompleted" not in [e.type for e in await run.history()]:
            await anyio.sleep(0.02)
        say("main", "order-42 is packed and waits for the courier")

    async with deploy(url, shipment_v2) as engine:
        say("deploy", f"v2 (code {engine.fingerprint})")
        run = engine.get_handle("order-42")
        await run.signal("courier")
        while (described := await run.describe()).blocked is None:
            await anyio.sleep(0.02)
        blocked = described.blocked
        assert blocked is not None
        say("main", f"order-42 is {described.status}: {blocked.type} at event {blocked.seq}")
        say("main", f"blocked runs: {[r.workflow_id for r in await engine.list_runs(status='blocked')]}")

    async with deploy(url, shipment_v1) as engine:
        say("deploy", f"rollback to v1 (code {engine.fingerprint})")
        run = engine.get_handle("order-42")
        say("main", f"order-42 completed: {await run.result(timeout=30)}")
        history = [e.type for e in await run.history()]
        say("main", f"history: {', '.join(history)}")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="A bad deploy blocks a run; the rollback resumes it.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db: Path = args.db or Path(tmp) / "bad_deploy.db"
        anyio.run(run_example, db.resolve())


if __name__ == "__main__":
    main()
