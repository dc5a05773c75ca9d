"""Workflows that the HTTP and CLI tests serve (``--app tests.shop``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import retold


@dataclass
class Order:
    sku: str
    quantity: int


@retold.activity(task_queue="shop")
async def reserve(order: Order) -> str:
    """Reserve stock for an order."""
    return f"reserved {order.quantity} x {order.sku}"


@retold.activity
def email(to: str, text: str) -> None:
    """Send an email."""


@retold.workflow(name="greet")
async def greet(name: str) -> str:
    """Greet someone, by email."""
    await retold.execute(email, name, "hello")
    return f"hello, {name}"


@retold.workflow(name="order")
async def order(item: Order) -> str:
    """Reserve, then wait for approval (query 'status', signal 'approve')."""
    status = "reserving"
    retold.set_query_handler("status", lambda: status)
    retold.set_query_handler("echo", lambda *args: list(args))
    reservation = await retold.execute(reserve, item)
    status = "waiting"
    approved = await retold.wait_signal("approve", bool, timeout=timedelta(minutes=5))
    status = "done"
    return reservation if approved else "rejected"


@retold.workflow(name="ticker")
async def ticker(ticks: int, interval: float = 0.05) -> int:
    """Start and fire ``ticks`` timers, one after the other."""
    for _ in range(ticks):
        await asyncio.sleep(interval)
    return ticks


@retold.workflow(name="fails")
async def fails() -> str:
    """Fail at once."""
    raise ValueError("boom")


WORKFLOWS: list[retold.Workflow[..., Any]] = [greet, order, ticker, fails]
ACTIVITIES: list[retold.Activity[..., Any]] = [reserve, email]
