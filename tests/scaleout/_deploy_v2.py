"""A bad deploy of ``_deploy_v1``: it charges before reserving, so runs past their reservation no longer replay."""

from __future__ import annotations

import retold
from tests.scaleout._deploy_v1 import reserve, ship


@retold.activity
async def charge(order: int) -> str:
    return f"charged {order}"


@retold.workflow(name="fulfil")
async def fulfil(order: int) -> str:
    """Charge (new), reserve, wait for "go", ship."""
    await retold.execute(charge, order)
    await retold.execute(reserve, order)
    await retold.wait_signal("go")
    return await retold.execute(ship, order)


# Failed attempts retried fast, and "fail" after 2 of them were it not for blocking: runs must stay open.
APP = {"workflows": [fulfil], "activities": [charge, reserve, ship],
       "workflow_task_retry_delay": 0.2, "max_workflow_task_attempts": 2}
