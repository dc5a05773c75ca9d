"""Parent-close policies: what an order's close does to the children it started; and detached runs.

An order starts three children and completes while they still wait: the
packing slip is asked to cancel (``"request_cancel"``, the default: its
``finally`` runs), the reservation hold is closed at once
(``"terminate"``), and the audit trail runs on by itself (``"abandon"``)
until it gets its signal. It also starts the invoice as a run of its own
(``retold.start_workflow``, by name with ``retold.workflow_ref``, as code
that does not import the workflow would): not a child, its close does not
touch it.

Run it::

    python examples/parent_close.py
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


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.workflow
async def side_job(name: str) -> str:
    """Wait for a signal; a cancel request ends the wait."""
    try:
        await retold.wait_signal("done", str)
    except asyncio.CancelledError:
        retold.logger.info("%s: cancelled, cleaning up", name)
        raise
    return f"{name} finished"


@retold.workflow
async def order(order_id: str) -> str:
    """Start three side jobs with three policies, then complete without waiting for them."""
    policies: list[tuple[str, retold.ParentClosePolicy]] = [
        ("packing-slip", "request_cancel"), ("reservation-hold", "terminate"), ("audit-trail", "abandon")]
    for job, policy in policies:
        retold.start_child(side_job.with_options(id=f"{order_id}/{job}", parent_close_policy=policy), job)
    await retold.start_workflow(retold.workflow_ref("side_job").with_options(id=f"{order_id}/invoice"), "invoice")
    await retold.sleep(0.1)
    return f"{order_id} placed"


async def run_example(db: Path) -> None:
    """Place an order, then look at its children once it closed."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[order, side_job]) as engine:
        run = await engine.start(order.with_options(id="order-7"), "order-7")
        say("main", await run.result(timeout=60))
        for job in ("packing-slip", "reservation-hold", "audit-trail"):
            child = engine.get_handle(f"order-7/{job}")
            with anyio.fail_after(30):
                while (status := (await child.describe()).status) == "running" and job != "audit-trail":
                    await anyio.sleep(0.02)
            say("main", f"{job}: {status}")
        audit = engine.get_handle("order-7/audit-trail")
        await audit.signal("done", "ok")
        say("main", f"audit-trail, on its own: {await audit.result(timeout=60)}")
        invoice = engine.get_handle("order-7/invoice")
        say("main", f"invoice, a run of its own: {(await invoice.describe()).status}")
        await invoice.signal("done", "ok")
        say("main", f"invoice: {await invoice.result(timeout=60)}")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Parent-close policies: an order's children after it closed.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
