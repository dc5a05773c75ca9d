"""A bad deploy of ``tests.shop``'s order workflow: it no longer replays runs already past their reservation."""

from __future__ import annotations

from datetime import timedelta

import retold
from tests.shop import Order, email, reserve


@retold.workflow(name="order")
async def order(item: Order) -> str:
    """Reserve, then wait for approval (new: an email first, which breaks runs started before)."""
    await retold.execute(email, "ops", f"reserving {item.sku}")
    reservation = await retold.execute(reserve, item)
    approved = await retold.wait_signal("approve", bool, timeout=timedelta(minutes=5))
    return reservation if approved else "rejected"
