"""Workflows the dashboard tests serve (``retold serve --app tests.dashboard.workflows``)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import retold

QUICK_RETRY = retold.RetryPolicy(initial_interval=0.05, backoff_coefficient=1.0, jitter=0.0, max_attempts=5)


@dataclass
class Parcel:
    item: str
    weight_kg: float


@retold.activity
async def pack(item: str) -> str:
    """Pack an item."""
    return f"{item} packed"


@retold.activity(retry=QUICK_RETRY)
async def hand_over(packed: str) -> str:
    """Hand a parcel to the courier; the first two attempts fail."""
    attempt = retold.activity_info().attempt
    if attempt < 3:
        raise ConnectionError(f"courier unreachable (attempt {attempt})")
    return f"{packed}, handed over on attempt {attempt}"


@retold.workflow(name="label")
async def label(item: str) -> str:
    """Print a shipping label (a child workflow)."""
    return f"label for {item}"


@retold.workflow(name="delivery")
async def delivery(item: str, wait: float = 0.4) -> str:
    """Pack, print a label (child), wait for the courier (a timer), hand over (retried until attempt 3)."""
    packed = await retold.execute(pack, item)
    await retold.execute_child(label, item)
    await asyncio.sleep(wait)
    return await retold.execute(hand_over, packed)


@retold.workflow(name="approval")
async def approval(request: str) -> str:
    """Wait for the 'approve' signal (a bool); the query 'state' tells where it is."""
    state = "waiting"
    retold.set_query_handler("state", lambda: state)
    approved = await retold.wait_signal("approve", bool)
    state = "decided"
    return f"{request}: {'approved' if approved else 'rejected'}"


@retold.workflow(name="ship")
async def ship(parcel: Parcel, express: bool = False) -> str:
    """Ship a parcel (its arguments exercise the start form's schema checks)."""
    return f"{parcel.item} ({parcel.weight_kg} kg){' express' if express else ''}"


@retold.workflow(name="refund")
async def refund(order: str) -> str:
    """Fail with a cause chain."""
    try:
        raise KeyError(order)
    except KeyError as exc:
        raise ValueError(f"no payment for order {order}") from exc


SLOW_RETRY = retold.RetryPolicy(initial_interval=60.0, backoff_coefficient=1.0, jitter=0.0, max_attempts=4)


@retold.activity(retry=SLOW_RETRY)
async def call_carrier(order: str) -> str:
    """Book a carrier: it never answers (each attempt fails; the next waits a minute)."""
    raise ConnectionError(f"carrier unreachable for {order}")


@retold.workflow(name="stuck")
async def stuck(order: str) -> str:
    """Wait on a retrying activity and a long timer side by side (pending work to show)."""
    booked, _ = await asyncio.gather(retold.execute(call_carrier, order), asyncio.sleep(3600))
    return str(booked)


@retold.workflow(name="bad_deploy")
async def bad_deploy(order: str) -> str:
    """Code that cannot run in a workflow (a sandbox violation): the run is blocked, not failed."""
    await retold.wait_signal("go")
    open("/dev/null")  # noqa: SIM115 - a bad deploy, on purpose
    return order


@retold.workflow(name="redeployed")
async def redeployed(order: str) -> str:
    """Pack, then wait for 'go'. DASHBOARD_DEPLOY=2 is a bad deploy: it hands over first instead, so a run
    started before it no longer replays (NondeterminismError at the ActivityScheduled it recorded)."""
    if os.environ.get("DASHBOARD_DEPLOY") == "2":
        await retold.execute(hand_over, order)
    else:
        await retold.execute(pack, order)
    await retold.wait_signal("go")
    return order


@retold.workflow(name="basket")
async def basket() -> int:
    """Take items by update ('add'; 'broken' fails), until the 'close' signal; return how many."""
    items: list[str] = []

    @retold.update_handler("add")
    async def add(item: str) -> int:
        packed = await retold.execute(pack, item)
        if item == "broken":
            raise ValueError("broken goods")
        items.append(packed)
        return len(items)

    await retold.wait_signal("close")
    return len(items)


WORKFLOWS: list[retold.Workflow[..., Any]] = [
    delivery, label, approval, ship, refund, stuck, bad_deploy, redeployed, basket]
ACTIVITIES: list[retold.Activity[..., Any]] = [pack, hand_over, call_carrier]
