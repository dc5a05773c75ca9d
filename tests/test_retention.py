"""Retention through the engine: the loop purges on its own, and engines keep working during a purge."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import retold
from retold.stores.sql import SqlStore
from retold.stores.sql._sqlite import boot_clock
from tests.conftest import Clock, EngineFactory

pytestmark = pytest.mark.anyio

DAY = 86_400.0


@retold.activity
async def double(n: int) -> int:
    return 2 * n


@retold.workflow
async def quick(n: int) -> int:
    return n


@retold.workflow
async def with_activity(n: int) -> int:
    return await retold.execute(double, n)


@retold.workflow
async def waits(name: str) -> str:
    return f"{name}:{await retold.wait_signal('go', str)}"


def faked(url: str, clock: Clock) -> SqlStore:
    """A store whose clock the test moves; leases stay on real time, so a jump of days ends none."""
    return SqlStore(url, clock=clock, lease_clock=boot_clock)


async def finish(engine: retold.Engine, workflow: retold.Workflow[[int], Any], count: int) -> None:
    """Run ``count`` runs of ``workflow`` at once, to the end."""

    async def one(n: int) -> None:
        await (await engine.start(workflow, n)).result()

    async with anyio.create_task_group() as group:
        for n in range(count):
            group.start_soon(one, n)


async def run_ids(engine: retold.Engine) -> set[str]:
    return {r.run_id for r in await engine.list_runs(limit=10_000)}


async def test_the_engine_purges_old_runs_on_its_own(store_url: str) -> None:
    clock = Clock()
    async with retold.Engine(store=faked(store_url, clock), workflows=[quick, waits], poll_interval=0.05,
                             retention=timedelta(days=30)) as engine:
        old = [await engine.start(quick, i) for i in range(5)]
        assert [await run.result() for run in old] == list(range(5))
        waiting = await engine.start(waits, "w")  # as old, but running
        clock.now += 31 * DAY
        recent = await engine.start(quick, 99)
        assert await recent.result() == 99
        with anyio.fail_after(20):
            while await run_ids(engine) != {waiting.run_id, recent.run_id}:
                await anyio.sleep(0.05)
        await waiting.signal("go", "x")
        assert await waiting.result() == "w:x"
        with pytest.raises(retold.RunNotFoundError):
            await engine.get_handle(old[0].workflow_id).describe()


async def test_a_purge_the_clock_moved_past_while_it_ran_does_not_put_off_the_next(tmp_path: Path) -> None:
    # The engine's first purge takes its cutoff at once, then is held until the runs are done and the
    # clock has moved 31 days: the next purge is due ten minutes after that purge began, so it comes
    # at the next poll (due ten minutes after it ended, it would wait for a clock that never moves again).
    clock = Clock()
    store = faked(f"sqlite:///{tmp_path / 'store.db'}", clock)
    release = anyio.Event()
    purges: list[float] = []
    original = store.purge

    async def held(before: float, **options: Any) -> retold.PurgeReport:
        purges.append(before)
        if len(purges) == 1:
            await release.wait()
        return await original(before, **options)

    store.purge = held  # type: ignore[method-assign]
    async with retold.Engine(store=store, workflows=[quick], poll_interval=0.05,
                             retention=timedelta(days=30)) as engine:
        with anyio.fail_after(20):
            while not purges:
                await anyio.sleep(0.01)
        old = [await engine.start(quick, i) for i in range(3)]
        assert [await run.result() for run in old] == list(range(3))
        clock.now += 31 * DAY
        release.set()
        with anyio.fail_after(20):
            while await run_ids(engine):
                await anyio.sleep(0.05)
    assert len(purges) >= 2
    assert purges[0] < 1_000_000.0 < purges[1]  # the first cut before the runs closed, the second after


async def test_an_engine_keeps_working_while_a_purge_runs(shared_url: str) -> None:
    clock = Clock()
    async with retold.Engine(store=faked(shared_url, clock), workflows=[quick, with_activity],
                             activities=[double], poll_interval=0.05) as engine:
        await finish(engine, quick, 800)
        old = await run_ids(engine)
        assert len(old) == 800
        clock.now += 31 * DAY
        finished: list[float] = []
        results: list[int] = []

        async def one(n: int) -> None:
            run = await engine.start(with_activity, n)
            results.append(await run.result())
            finished.append(anyio.current_time())

        report: list[retold.PurgeReport] = []
        purged_at: list[float] = []

        async def purge() -> None:
            # Small batches: many transactions, with the engine's between them.
            report.append(await engine.store.purge(clock.now - 30 * DAY, statuses=None, workflow=None,
                                                   batch_size=10, dry_run=False))
            purged_at.append(anyio.current_time())

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                group.start_soon(purge)
                for n in range(40):
                    group.start_soon(one, n)
        assert sorted(results) == [2 * n for n in range(40)]
        assert [(r.runs, r.workflow_ids, r.events) for r in report] == [(800, 800, 1600)]
        assert min(finished) < purged_at[0], "no run finished while the purge ran"
        left = await run_ids(engine)
        assert not left & old
        assert len(left) == 40


async def test_purge_refuses_running_and_unknown_statuses(make_engine: EngineFactory) -> None:
    async with make_engine([quick]) as engine:
        with pytest.raises(retold.ConfigurationError, match="running runs are never purged"):
            await engine.purge(timedelta(days=1), statuses=["running"])
        with pytest.raises(retold.ConfigurationError, match="'done'"):
            await engine.purge(0, statuses=["completed", "done"])
        with pytest.raises(retold.ConfigurationError, match="must not be negative"):
            await engine.purge(-1.0)
    with pytest.raises(retold.ConfigurationError, match="retention must be positive"):
        retold.Engine("memory://", retention=timedelta(0))


def file_size(db: Path) -> int:
    """The file's size once the WAL is folded into it."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


@retold.workflow
async def bulky(n: int) -> str:
    return "x" * 4000 + str(n)


async def test_a_purged_sqlite_file_shrinks(make_engine: EngineFactory, tmp_path: Path) -> None:
    db = tmp_path / "shrinks.db"
    async with make_engine([bulky], url=f"sqlite:///{db}") as engine:
        await finish(engine, bulky, 300)
        full = file_size(db)
        assert (await engine.purge(0)).runs == 300
        assert file_size(db) < full / 4
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL: set on every new file
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] < 50


async def test_an_older_file_reuses_purged_space_and_takes_the_documented_vacuum(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    db = tmp_path / "older.db"
    with sqlite3.connect(db) as conn:  # made before retold set auto_vacuum: NONE
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("CREATE TABLE IF NOT EXISTS placeholder (x)")
        conn.execute("DROP TABLE placeholder")
    async with make_engine([bulky], url=f"sqlite:///{db}") as engine:
        for _ in range(2):  # the second round of runs fits in the pages the first one freed
            await finish(engine, bulky, 200)
            size = file_size(db)
            assert (await engine.purge(0)).runs == 200
        assert file_size(db) == size
    with sqlite3.connect(db, isolation_level=None) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
        conn.executescript("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")  # docs/operations.md, once, engines stopped
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    assert file_size(db) < size / 4
