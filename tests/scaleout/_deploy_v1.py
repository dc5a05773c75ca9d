"""The code a fleet runs before a bad deploy (``python -m retold worker tests.scaleout._deploy_v1:APP``)."""

from __future__ import annotations

import retold


@retold.activity
async def reserve(order: int) -> str:
    return f"reserved {order}"


@retold.activity
async def ship(order: int) -> str:
    return f"shipped {order}"


@retold.workflow(name="fulfil")
async def fulfil(order: int) -> str:
    """Reserve, wait for "go", ship."""
    await retold.execute(reserve, order)
    await retold.wait_signal("go")
    return await retold.execute(ship, order)


APP = {"workflows": [fulfil], "activities": [reserve, ship]}
