"""Leases are judged by a clock that wall-clock steps do not move; a process never runs a task twice at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

import retold
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import StartRequest
from retold.stores.sql import SqlStore
from retold.stores.sql import _schema as t
from retold.stores.sql._sqlite import boot_clock
from tests.conftest import Clock

pytestmark = pytest.mark.anyio


async def _one_task(store: SqlStore) -> None:
    record, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
    assert await store.claim_workflow_tasks("setup", ["wf"], 10, 60.0)
    await Runs(store).commit_workflow_task(record.run_id, "setup", 1, [
        ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={"task_queue": "q"})])


async def test_wall_clock_steps_neither_end_nor_stretch_a_lease(tmp_path: Path) -> None:
    wall = Clock()
    # A stepping wall clock; leases on the clock a SQLite store uses by default.
    store = SqlStore(f"sqlite:///{tmp_path / 'clock.db'}", clock=wall, lease_clock=boot_clock)
    await store.open()
    try:
        await _one_task(store)
        # A lease long enough that a loaded machine cannot outlast it during the steps.
        # Read before the claim: the lease starts inside it, on the store's reading of this clock.
        claimed_at = boot_clock()
        [task] = await store.claim_activity_tasks("first", "q", ["a"], 10, 4.0)
        for step in (60.0, 60.0, 60.0, 3600.0, -600.0):
            wall.now += step
            refused = await store.claim_activity_tasks("second", "q", ["a"], 10, 4.0)
            assert refused == [] or boot_clock() - claimed_at >= 4.0
        # Real time, not the wall clock, ends it: four seconds from the claim.
        with anyio.fail_after(60):
            while not (again := await store.claim_activity_tasks("second", "q", ["a"], 10, 4.0)):
                await anyio.sleep(0.05)
        assert boot_clock() - claimed_at >= 4.0
        assert (again[0].id, again[0].attempt) == (task.id, 2)
    finally:
        await store.close()


async def test_a_lease_taken_on_another_boot_is_over(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'boot.db'}")
    await store.open()
    try:
        # By default a SQLite store's leases are on the boot clock, not the wall clock.
        assert abs(store._lease_now(None) - boot_clock()) < 5  # type: ignore[arg-type]
        await _one_task(store)
        [task] = await store.claim_activity_tasks("before-reboot", "q", ["a"], 10, 60.0)
        # As the previous boot left it: a boot clock far ahead of this boot's.
        with store._engine.begin() as conn:
            conn.execute(t.activity_tasks.update().values(lease_expires=boot_clock() + 30 * 86_400))
        [again] = await store.claim_activity_tasks("after-reboot", "q", ["a"], 10, 60.0)
        assert again.id == task.id
    finally:
        await store.close()


_runs: Counter[str] = Counter()
_release = threading.Event()
_started = threading.Semaphore(0)


@retold.activity
def slow(tag: str) -> str:
    """Counts its attempts; blocks (in a thread) until the test releases it."""
    _runs[tag] += 1
    _started.release()
    _release.wait(60)
    return tag


@retold.workflow
async def fan_out(n: int) -> list[str]:
    return list(await asyncio.gather(*(retold.execute(slow, f"t{i}") for i in range(n))))


class CountingClaims(SqlStore):
    claims = 0

    async def claim_activity_tasks(self, *args: Any, **kwargs: Any) -> Any:
        CountingClaims.claims += 1
        return await super().claim_activity_tasks(*args, **kwargs)


async def _claims_after(count: int) -> None:
    with anyio.fail_after(30):
        while CountingClaims.claims < count:
            await anyio.sleep(0.01)


async def test_wall_clock_steps_do_not_make_another_engine_run_activities_again(tmp_path: Path) -> None:
    """Five +60 s steps of the wall clock used to hand running attempts to the other engine."""
    _runs.clear()
    _release.clear()
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    wall = Clock()
    wall.now = time.time()
    n = 20
    try:
        store = SqlStore(url, clock=wall, lease_clock=boot_clock)
        async with retold.Engine(store=store, workflows=[fan_out], activities=[slow],
                                 lease=10.0, poll_interval=0.05) as first:
            run = await first.start(fan_out, n)
            with anyio.fail_after(30):
                for _ in range(n):
                    while not _started.acquire(blocking=False):
                        await anyio.sleep(0.01)
            async with retold.Engine(store=CountingClaims(url, clock=wall, lease_clock=boot_clock), activities=[slow],
                                     lease=10.0, poll_interval=0.05):
                for _ in range(5):
                    wall.now += 60.0
                    await _claims_after(CountingClaims.claims + 3)  # the second engine looked again
                _release.set()
                assert sorted(await run.result(timeout=60)) == sorted(f"t{i}" for i in range(n))
    finally:
        _release.set()
    assert set(_runs.values()) == {1}, _runs


@retold.activity
async def hog(seconds: float) -> None:
    """Holds the event loop (no await) longer than the lease: renewals cannot run meanwhile."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@retold.workflow
async def stall_beside(n: int) -> int:
    tasks = [asyncio.ensure_future(retold.execute(slow, f"s{i}")) for i in range(n)]
    await retold.execute(hog, 1.5)
    return len(await asyncio.gather(*tasks))


async def test_a_stalled_loop_never_makes_a_process_run_its_own_task_again(tmp_path: Path) -> None:
    _runs.clear()
    _release.clear()
    n = 10
    try:
        store = CountingClaims(f"sqlite:///{tmp_path / 'stall.db'}")
        async with retold.Engine(store=store, workflows=[stall_beside],
                                 activities=[slow, hog], lease=0.3, poll_interval=0.05) as engine:
            run = await engine.start(stall_beside, n)
            with anyio.fail_after(30):
                for _ in range(n):
                    while not _started.acquire(blocking=False):
                        await anyio.sleep(0.01)
                # The hog has run (the loop stalled for 1.5 s, five leases' worth).
                while not any(isinstance(e, ev.ActivityCompleted) for e in (await run.history()).events):
                    await anyio.sleep(0.05)
            # The claim loop looks again, with the leases of the running attempts lapsed.
            await _claims_after(CountingClaims.claims + 5)
            _release.set()
            assert await run.result(timeout=60) == n
    finally:
        _release.set()
    assert set(_runs.values()) == {1}, _runs


def test_a_lease_longer_than_an_hour_is_refused() -> None:
    with pytest.raises(retold.ConfigurationError, match="at most an hour"):
        retold.Engine("memory://", lease=7200)
