"""The demo the README's first command runs: one order, told as it happens.

It is written against the public API only, like any user program.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import anyio
import orjson

from retold import (
    ActivityError,
    Engine,
    RetryPolicy,
    RunHandle,
    activity,
    activity_info,
    execute,
    now,
    set_query_handler,
    wait_signal,
    workflow,
)
from retold.history.export import Event, event_to_dict

DEFAULT_URL = "sqlite:///retold.db"

__all__ = ["run_demo"]

_flaky = random.Random()


@activity(retry=RetryPolicy(initial_interval=timedelta(milliseconds=200), max_attempts=5))
async def reserve_stock(sku: str, quantity: int) -> str:
    """Reserve stock; fails now and then, and is retried."""
    info = activity_info()
    if info.attempt == 1 and _flaky.random() < 0.5:
        raise ConnectionError("warehouse API timed out")
    await anyio.sleep(0.05)
    return f"reservation-{sku}-{quantity}"


@activity(start_to_close=timedelta(seconds=10))
async def charge_card(order_id: str, cents: int) -> str:
    """Charge the customer."""
    await anyio.sleep(0.05)
    return f"charge-{order_id}-{cents}"


@activity
def send_email(to: str, subject: str) -> None:
    """Send an email (a plain function: runs in a worker thread)."""


@workflow(name="demo-order")
async def demo_order(order_id: str, sku: str, cents: int) -> str:
    """Reserve, charge, wait for shipping confirmation (or give up), email."""
    status = "reserving"
    set_query_handler("status", lambda: status)
    reservation, charge = await asyncio.gather(
        execute(reserve_stock, sku, 1), execute(charge_card, order_id, cents)
    )
    status = "awaiting shipment"
    tracking = await wait_signal("shipped", str, timeout=timedelta(seconds=30))
    status = "cooling off"
    await asyncio.sleep(1)  # a durable timer: survives crashes
    await execute(send_email, "customer@example.com", f"order {order_id} shipped: {tracking}")
    status = "done"
    return f"{order_id}: {reservation}, {charge}, tracking {tracking}, closed at {now():%H:%M:%S}"


def _line(event: Event) -> str:
    fields = event_to_dict(event)
    if event.type == "ActivityScheduled":
        detail = f"ActivityScheduled({fields['activity']}{orjson.dumps(fields['input']).decode()})"
    elif event.type == "WorkflowStarted":
        detail = f"WorkflowStarted({fields['workflow']}{orjson.dumps(fields['input']).decode()})"
    else:
        detail = event.describe()
    if len(detail) > 96:
        detail = detail[:93] + "..."
    return f"  #{event.seq:<3} {detail}"


async def _tail(run: RunHandle[str]) -> None:
    async with run.watch() as events:  # each event as it is committed, until the last
        async for event in events:
            print(_line(event), flush=True)


async def run_demo(url: str = DEFAULT_URL) -> None:
    """Run one order workflow and print its history as it is written."""
    order_id = f"order-{random.randrange(10_000, 99_999)}"
    print(f"retold demo: workflow 'demo-order' on {url}")
    async with Engine(
        url, workflows=[demo_order], activities=[reserve_stock, charge_card, send_email], poll_interval=0.1
    ) as engine:
        run = await engine.start(demo_order.with_options(id=order_id), order_id, "sku-123", 4_999)
        print(f"started {order_id} (run {run.run_id}); its history, live:")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_tail, run)
            while await run.query("status") != "awaiting shipment":
                await anyio.sleep(0.05)
            print(f"  query status -> {await run.query('status')!r}; sending signal 'shipped'")
            await run.signal("shipped", "TRACK-1Z999")
        result = await run.result()
        print(f"result: {result}")
        failed_attempts = [
            e for e in await run.history() if e.type == "ActivityCompleted" and event_to_dict(e)["attempt"] > 1
        ]
        if failed_attempts:
            print(f"({len(failed_attempts)} activity needed a retry; the history records only the outcome)")
    print("Run it again: every run is kept in the SQLite file, with its full history.")


def main(url: str = DEFAULT_URL) -> None:
    """Entry point for ``python -m retold demo``."""
    try:
        anyio.run(run_demo, url)
    except ActivityError as exc:  # pragma: no cover - the demo's activities succeed
        raise SystemExit(f"demo failed: {exc}") from exc
