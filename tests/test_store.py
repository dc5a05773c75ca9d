"""The SQLite store: durability settings, atomic commits, leases, timers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.stores import ActivityOutcome, StartRequest
from retold.stores.sql import SqlStore
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def open_store(tmp_path: Path, clock: Clock) -> SqlStore:
    store = SqlStore(f"sqlite:///{tmp_path / 's.db'}", clock=clock)
    await store.open()
    return store


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


async def started(store: SqlStore, wid: str = "w") -> str:
    record, created = await store.start(StartRequest("wf", wid, b"[]", "h"))
    assert created
    return record.run_id


async def test_wal_and_full_synchronous(tmp_path: Path) -> None:
    store = await open_store(tmp_path, Clock())
    assert rows(tmp_path / "s.db", "PRAGMA journal_mode") == [("wal",)]
    raw = store._engine.raw_connection()
    try:
        assert raw.driver_connection.execute("PRAGMA synchronous").fetchone() == (2,)  # type: ignore[union-attr]
    finally:
        raw.close()
    await store.close()


async def test_commit_is_all_or_nothing(tmp_path: Path) -> None:
    clock = Clock()
    store = await open_store(tmp_path, clock)
    run_id = await started(store)
    assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
    good = [
        ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={"task_queue": "q"}),
        ev.TimerStarted(seq=3, at=0, duration=60.0),
    ]
    with pytest.raises(retold.ConflictError):
        await store.commit_workflow_task(run_id, "me", 5, good)  # stale expected seq
    broken = [*good, ev.TimerStarted(seq=9, at=0, duration=1.0)]  # a gap: refused mid-way
    with pytest.raises(retold.StoreError):
        await store.commit_workflow_task(run_id, "me", 1, broken)
    db = tmp_path / "s.db"
    assert rows(db, "SELECT count(*) FROM retold_events") == [(1,)]
    assert rows(db, "SELECT count(*) FROM retold_activity_tasks") == [(0,)]
    assert rows(db, "SELECT count(*) FROM retold_timers") == [(0,)]
    assert rows(db, "SELECT last_seq FROM retold_runs") == [(1,)]
    assert await store.commit_workflow_task(run_id, "me", 1, good) == 3
    assert rows(db, "SELECT count(*) FROM retold_activity_tasks") == [(1,)]
    assert rows(db, "SELECT fire_at FROM retold_timers") == [(clock.now + 60.0,)]
    assert rows(db, "SELECT count(*) FROM retold_workflow_tasks") == [(0,)]
    await store.close()


async def test_leases_expire_by_the_store_clock(tmp_path: Path) -> None:
    clock = Clock()
    store = await open_store(tmp_path, clock)
    run_id = await started(store)
    assert await store.claim_workflow_tasks("dead", ["wf"], 10, 5.0) == [run_id]
    assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == []
    clock.now += 5.1
    assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == [run_id]
    cmds = [ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={"task_queue": "q"})]
    await store.commit_workflow_task(run_id, "alive", 1, cmds)

    [task] = await store.claim_activity_tasks("dead", "q", ["a"], 10, 5.0)
    assert await store.claim_activity_tasks("alive", "q", ["a"], 10, 5.0) == []
    assert await store.renew_leases("dead", [task.id], 5.0) == set()
    raw = store._engine.raw_connection()
    try:  # lease-only transactions relax synchronous for themselves only
        assert raw.driver_connection.execute("PRAGMA synchronous").fetchone() == (2,)  # type: ignore[union-attr]
    finally:
        raw.close()
    clock.now += 5.1
    [again] = await store.claim_activity_tasks("alive", "q", ["a"], 10, 5.0)
    assert again.id == task.id
    assert (task.attempt, again.attempt) == (1, 2)  # the dead owner's attempt counted
    # The dead owner's late result is refused: the lease fences it out.
    assert not await store.finish_activity(task.id, "dead", ActivityOutcome("completed", result=b"1"))
    assert await store.renew_leases("dead", [task.id], 5.0) == {task.id}
    assert await store.finish_activity(task.id, "alive", ActivityOutcome("completed", result=b"2"))
    _, history = await store.load(run_id, 0)
    completed = [e for e in history if isinstance(e, ev.ActivityCompleted)]
    assert [c.result for c in completed] == [b"2"]
    await store.close()


async def test_timers_fire_when_due(tmp_path: Path) -> None:
    clock = Clock()
    store = await open_store(tmp_path, clock)
    run_id = await started(store)
    await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
    await store.commit_workflow_task(run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=30.0)])
    assert await store.fire_timers(10) == 0
    assert await store.next_wakeup() == clock.now + 30.0
    clock.now += 30.0
    assert await store.fire_timers(10) == 1
    _, history = await store.load(run_id, 2)
    assert [(type(e).__name__, getattr(e, "started", None)) for e in history] == [("TimerFired", 2)]
    assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
    await store.close()


@retold.workflow
async def waits_for(name: str) -> str:
    retold.set_query_handler("name", lambda: name)
    value = await retold.wait_signal("go", str)
    return f"{name}:{value}"


async def test_lru_cache_evicts_and_evicted_runs_replay(make_engine: EngineFactory) -> None:
    async with make_engine([waits_for], cache_size=2) as engine:
        runs = [await engine.start(waits_for, f"r{i}") for i in range(6)]
        with anyio.fail_after(10):
            while engine.cache.evictions < 4:
                await anyio.sleep(0.02)
        assert len(engine.cache) == 2
        assert [await r.query("name") for r in runs] == [f"r{i}" for i in range(6)]
        for r in runs:
            await r.signal("go", "x")
        assert [await r.result(timeout=10) for r in runs] == [f"r{i}:x" for i in range(6)]


@retold.workflow
async def hosted_elsewhere() -> str:
    return "ran"


async def test_engines_claim_only_what_they_host(make_engine: EngineFactory) -> None:
    """A run of a workflow this engine does not host waits for one that does."""
    async with make_engine([hosted_elsewhere], run_workers=False) as starter:
        run = await starter.start(hosted_elsewhere)
    async with make_engine([waits_for]) as other:
        await anyio.sleep(0.3)
        assert (await other.get_handle(run.workflow_id).describe()).status == "running"
        assert len(await other.get_handle(run.workflow_id).history()) == 1
    async with make_engine([hosted_elsewhere]) as host:
        assert await host.get_handle(run.workflow_id).result(timeout=10) == "ran"


bodies_started: list[str] = []


@retold.activity
async def step_of(i: int) -> int:
    return i


@retold.workflow
async def three_steps(tag: str) -> int:
    bodies_started.append(tag)  # once per instance: a replay would start it again
    total = 0
    for i in range(3):
        total += await retold.execute(step_of, i)
    return total


async def test_a_cached_run_is_not_replayed_per_event(make_engine: EngineFactory) -> None:
    bodies_started.clear()
    async with make_engine([three_steps], [step_of]) as engine:
        run = await engine.start(three_steps, "cached")
        assert await run.result(timeout=10) == 3
    assert bodies_started == ["cached"]  # four activations, one instance
