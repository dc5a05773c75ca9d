"""Time limits: a run timeout closes a run that waited too long; a start delay starts one later.

``with_options(run_timeout=...)`` closes the run as ``timed_out`` once it has
run that long, whatever it waits for (``result()`` raises
``WorkflowTimedOutError``); ``execution_timeout`` does the same across
continue-as-new; ``start_delay`` starts the run's code later. All three are
kept in the store: an engine that restarts keeps them.

Run it::

    python examples/time_limits.py
"""

from __future__ import annotations

import argparse
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
async def approval(request: str) -> str:
    """Wait for a manager's answer, as long as it takes (the run timeout decides how long that is)."""
    answer = await retold.wait_signal("answer", str)
    return f"{request}: {answer}"


@retold.workflow
async def reminder(to: str) -> str:
    """Runs once its start delay has passed."""
    return f"reminded {to}"


async def run_example(db: Path) -> None:
    """An approval nobody answers times out; a reminder starts after its delay."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[approval, reminder]) as engine:
        run = await engine.start(approval.with_options(id="approve-laptop", run_timeout=1.0), "new laptop")
        later = await engine.start(reminder.with_options(id="remind-ada", start_delay=0.5), "ada")
        say("main", await later.result(timeout=60))
        try:
            await run.result(timeout=60)
        except retold.WorkflowTimedOutError as err:
            say("main", f"{err}".split(" of ")[-1])
        history = await run.history()
        say("main", "approval history: " + ", ".join(event.type for event in history))


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Time limits: run timeout and start delay.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
