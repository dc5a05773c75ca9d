"""Workflows for the poison test: one hostile kind beside many healthy runs (``tests.scaleout._poison_app:APP``)."""

from __future__ import annotations

import os
import sys

import retold


@retold.activity
async def echo(value: str) -> str:
    return value


@retold.activity(retry=retold.RetryPolicy(max_attempts=2, initial_interval=0.1))
async def deadly() -> str:
    """Kills the worker process running it, at every attempt."""
    os._exit(19)


@retold.workflow
async def healthy(n: int) -> str:
    """Two activities and a timer."""
    first = await retold.execute(echo, f"a{n}")
    await retold.sleep(0.05)
    return first + await retold.execute(echo, f"b{n}")


@retold.workflow
async def poison(kind: str) -> str:
    """Breaks its worker the way ``kind`` says, after one activity."""
    await retold.execute(echo, "before")
    if kind == "sys.exit":
        sys.exit(3)
    elif kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    elif kind == "os._exit":
        os._exit(17)
    elif kind == "activity os._exit":
        await retold.execute(deadly)
    elif kind == "endless loop":
        x = 0
        while True:
            x += 1
    return "survived"


APP = {
    "workflows": [healthy, poison],
    "activities": [echo, deadly],
    "deadlock_timeout": 1.0,
    "max_workflow_task_attempts": 3,
    "workflow_task_retry_delay": 0.1,
    "on_workflow_task_failure": "fail",
}

# The engine's default mode: a run whose workflow task keeps killing its workers is blocked, not failed.
BLOCKING = {**APP, "on_workflow_task_failure": "block", "workflow_task_retry_delay": 60.0}
