"""Id reuse policy: run "the nightly report" again under the same workflow id once the last one closed.

By default a workflow id names one run for good: starting it again with the
same input returns that run, even closed. ``with_options(id_reuse_policy=...)``
lets a new run follow a closed one (``allow_duplicate``), only a failed,
cancelled or terminated one (``allow_duplicate_failed_only``: retry a job
that did not succeed, never redo one that did), or never
(``reject_duplicate``). ``get_handle(id)`` follows the newest run.

Run it::

    python examples/id_reuse.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio

import retold

_START = time.monotonic()
ATTEMPTS = {"n": 0}


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity(retry=retold.RetryPolicy(max_attempts=1))
async def build_report(day: str) -> str:
    ATTEMPTS["n"] += 1
    if ATTEMPTS["n"] == 1:
        say("activity", f"report for {day}: the database is down")
        raise ConnectionError("database is down")
    say("activity", f"report for {day}: built")
    return f"report-{day}.pdf"


@retold.workflow
async def nightly_report(day: str) -> str:
    """Build the day's report (one attempt per run: the run fails if it fails)."""
    return await retold.execute(build_report, day)


async def run_example(db: Path) -> None:
    """The first run fails; a start under the same id runs again, once; a third start is refused."""
    once = nightly_report.with_options(id="report-2026-11-28", id_reuse_policy="allow_duplicate_failed_only")
    async with retold.Engine(f"sqlite:///{db}", workflows=[nightly_report], activities=[build_report]) as engine:
        first = await engine.start(once, "2026-11-28")
        try:
            await first.result(timeout=60)
        except retold.WorkflowFailedError as err:
            say("main", "run 1 failed: " + str(err).split("failed: ")[-1])
        second = await engine.start(once, "2026-11-28")
        say("main", f"run 2 is a new run: {second.created and second.run_id != first.run_id}")
        say("main", f"run 2 result: {await second.result(timeout=60)}")
        try:
            await engine.start(once, "2026-11-28")
        except retold.IdempotencyError as err:
            say("main", f"run 3 refused: {err}")
        newest = await engine.get_handle("report-2026-11-28").describe()
        say("main", f"report-2026-11-28 is now run 2: {newest.run_id == second.run_id} ({newest.status})")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Id reuse policy: a nightly report retried under its id.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
