"""Activity cancellation types: what a workflow that stops waiting for an activity does to it.

A checkout asks three services at once for a shipping quote and takes the first one under 0.2 s
(``asyncio.wait_for``). The slow quote's activity is cancelled in three ways, one per run:
``"try_cancel"`` (withdrawn, the attempt told, the wait ends at once), ``"wait_cancellation_completed"``
(the wait ends only once the attempt has stopped and reported), ``"abandon"`` (left to run; its
result is recorded for no one).

Run it::

    python examples/cancellation_types.py
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import anyio

import retold

_START = time.monotonic()


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity
async def slow_quote(kind: str) -> int:
    """A shipping quote that takes 3 s; says whether it was stopped or finished."""
    try:
        await anyio.sleep(3.0)
    except BaseException:
        say("activity", f"{kind}: stopped")
        raise
    say("activity", f"{kind}: finished anyway")
    return 1200


@retold.workflow
async def checkout(kind: retold.ActivityCancellationType) -> str:
    """Wait 0.2 s for the quote, go on with a flat rate, then wait for the payment."""
    quote = retold.execute(slow_quote.with_options(cancellation_type=kind), kind)
    try:
        shipping = f"quoted {await asyncio.wait_for(quote, 0.2)}"
    except TimeoutError:
        shipping = "flat rate"
    await retold.wait_signal("paid", str)  # the run stays open meanwhile (closing it withdraws its activities)
    return shipping


async def run_example(db: Path) -> None:
    """One checkout per cancellation type; show what each history recorded."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[checkout], activities=[slow_quote]) as engine:
        kinds: list[retold.ActivityCancellationType] = ["try_cancel", "wait_cancellation_completed", "abandon"]
        for kind in kinds:
            run = await engine.start(checkout.with_options(id=f"checkout-{kind}"), kind)
            # try_cancel and wait: the quote was given up; abandon: it ran to its end, recorded for no one.
            awaited = "ActivityCompleted" if kind == "abandon" else "ActivityCancelRequested"
            with anyio.fail_after(30):
                while awaited not in [e.type for e in await run.history()]:
                    await anyio.sleep(0.05)
            await run.signal("paid", "card")
            say("main", f"{kind}: {await run.result(timeout=60)}")
            events = [e.type for e in await run.history() if e.type.startswith("Activity")]
            say("main", f"{kind}: history {', '.join(events)}")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Activity cancellation types: try_cancel, wait, abandon.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
