"""Child process for the time-limit crash test: start limited runs, then SIGKILL itself.

Usage: ``python -m tests.crash._limits URL`` (from the repository root). An engine that hosts the
workflows starts ``limited-sleeper`` (run timeout 3 s, sleeps an hour) and ``limited-later`` (start
delay 3 s), prints ``started AT`` (the store's clock) and kills itself with SIGKILL at once.
"""

from __future__ import annotations

import os
import signal
import sys

import anyio

import retold


@retold.workflow(name="limited_sleeper")
async def sleeper() -> str:
    await retold.sleep(3600)
    return "woke"


@retold.workflow(name="limited_later")
async def later(name: str) -> str:
    return f"hello {name} at {retold.now().timestamp():.3f}"


async def main(url: str) -> None:
    async with retold.Engine(url, workflows=[sleeper, later], poll_interval=0.05) as engine:
        await engine.start(sleeper.with_options(id="limited-sleeper", run_timeout=3))
        await engine.start(later.with_options(id="limited-later", start_delay=3), "ada")
        sys.stdout.write(f"started {engine.store.now()}\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
