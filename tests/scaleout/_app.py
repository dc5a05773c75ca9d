"""What the worker processes of these tests host (``python -m retold worker tests.scaleout._app:...``).

Activities append one JSON line per start and per end to
``$RETOLD_TEST_LOG_DIR/<pid>.log``, so a test knows which process ran what.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import retold


def log_line(**record: Any) -> None:
    """Append one line to this process's log (one write: a SIGKILL never splits it)."""
    directory = os.environ.get("RETOLD_TEST_LOG_DIR")
    if not directory:
        return
    line = json.dumps({**record, "pid": os.getpid(), "t": time.time()}) + "\n"
    with Path(directory, f"{os.getpid()}.log").open("a") as f:
        f.write(line)


def read_logs(directory: Path) -> list[dict[str, Any]]:
    """Every line every process logged."""
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.log")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return lines


@retold.activity(task_queue="cpu")
async def on_cpu() -> int:
    """Runs only where the ``cpu`` queue is served."""
    log_line(ev="on_cpu")
    return os.getpid()


@retold.activity(task_queue="gpu")
async def on_gpu() -> int:
    """Runs only where the ``gpu`` queue is served."""
    log_line(ev="on_gpu")
    return os.getpid()


@retold.workflow
async def routed() -> list[int]:
    """One activity on each queue: returns the pids that ran them."""
    return [await retold.execute(on_cpu), await retold.execute(on_gpu)]


@retold.activity
def paused_step(tag: str, seconds: float) -> int:
    """A blocking step (in a thread); returns the pid of the process that ran it."""
    log_line(ev="start", tag=tag, attempt=retold.activity_info().attempt)
    time.sleep(seconds)
    log_line(ev="done", tag=tag, attempt=retold.activity_info().attempt)
    return os.getpid()


@retold.workflow
async def one_step(tag: str, seconds: float) -> int:
    """One ``paused_step``."""
    return await retold.execute(paused_step, tag, seconds)


@retold.workflow
async def timer_and_signal(seconds: float) -> str:
    """A durable timer, then a signal: both reach the run across processes."""
    await asyncio.sleep(seconds)
    value = await retold.wait_signal("go", str)
    return f"woke and got {value}"


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


@retold.workflow
async def racer(spin: int) -> str:
    """One slow activation: signals or a cancel recorded while it runs land mid-task.

    It returns every signal it received, so a completion committed over a
    signal it did not see would show in the result.
    """
    seen: list[str] = []

    async def listen() -> None:
        while True:
            seen.append(str(await retold.wait_signal("item")))

    listener = asyncio.create_task(listen())
    _burn(spin)
    for _ in range(5):
        await asyncio.sleep(0)  # let the listener take what was delivered
    listener.cancel()
    return ",".join(seen)


ROUTED_CPU = {"workflows": [routed], "activities": [on_cpu]}
ROUTED_GPU = [on_gpu]
ONE_STEP = [one_step, paused_step]
RACER = [racer]
