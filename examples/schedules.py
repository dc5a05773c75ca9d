"""Schedules: start a workflow every interval or on a cron expression, exactly once per fire time.

``engine.schedule(retold.Schedule(id, every=... | cron=..., ...), workflow, *args)``
stores a schedule; every engine that runs workers fires it, and each fire
time starts one run (workflow id ``<schedule id>@<fire time>``), however many
engines share the store. Here a report runs every 0.3 s with the ``skip``
overlap policy (a fire while the previous report still runs is skipped), is
paused, triggered by hand, described with its next fire times, and deleted.

Run it::

    python examples/schedules.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import anyio

import retold

_START = time.monotonic()


def say(who: str, message: str) -> None:
    """Print one progress line, prefixed with the seconds since start."""
    print(f"{time.monotonic() - _START:5.2f}s  [{who}] {message}", flush=True)


@retold.activity
async def build_report(team: str) -> str:
    """The work of one report."""
    return f"report for {team}"


@retold.workflow
async def report(team: str) -> str:
    """One scheduled run: build the team's report."""
    return await retold.execute(build_report, team)


async def run_example(db: Path) -> None:
    """Three fires of an every-0.3-s schedule, then pause, trigger, describe and change a cron schedule, delete."""
    async with retold.Engine(f"sqlite:///{db}", workflows=[report], activities=[build_report],
                             poll_interval=0.05) as engine:
        ticks = await engine.schedule(retold.Schedule("sales-report", every=timedelta(seconds=0.3)), report, "sales")
        while (await ticks.describe()).fires < 3:
            await anyio.sleep(0.05)
        await ticks.pause()
        runs = sorted(await engine.list_runs(id_prefix="sales-report@"), key=lambda r: r.workflow_id)[:3]
        for run in runs:
            say("main", f"{await engine.get_handle(run.workflow_id).result(timeout=30)} (one run per fire time)")
        manual = await ticks.trigger()
        assert manual is not None
        say("main", f"triggered by hand: {await engine.get_handle(manual).result(timeout=30)}")
        nightly = await engine.schedule(
            retold.Schedule("nightly-report", cron="0 2 * * *", timezone="Europe/Paris", overlap="buffer_one",
                            jitter=timedelta(minutes=5)),
            report, "finance")
        described = await nightly.describe(next_fires=2)
        say("main", f"nightly-report fires at 02:00 Paris time: next {described.next_fires[0].strftime('%H:%M %Z')}")
        described = await nightly.update(cron="30 3 * * *")  # in place: same id, counters and runs
        await nightly.update_workflow(report, "finance-eu")
        say("main", f"nightly-report changed in place: next {described.next_fires[0].strftime('%H:%M %Z')}")
        say("main", "schedules: " + ", ".join(s.id for s in await engine.list_schedules()))
        await ticks.delete()
        await nightly.delete()
        say("main", f"after delete: {len(await engine.list_schedules())} schedules")


def main() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(description="Schedules: every, cron, pause, trigger, update, delete.")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a fresh temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(run_example, args.db or Path(tmp) / "retold.db")


if __name__ == "__main__":
    main()
