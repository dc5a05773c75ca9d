"""SQLite's durability settings, and engine behaviour around the store (cache, hosting).

The store's contract (atomic commits, leases, timers, fencing) is in
``tests/stores/test_contract.py``, run against every store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from sqlalchemy import event as sa_event

import retold
from retold.engine._runs import Runs
from retold.stores import StartRequest
from retold.stores.sql import SqlStore
from tests.conftest import Clock, EngineFactory

pytestmark = pytest.mark.anyio


async def open_store(tmp_path: Path, clock: Clock) -> SqlStore:
    store = SqlStore(f"sqlite:///{tmp_path / 's.db'}", clock=clock)
    await store.open()
    return store


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


async def started(store: SqlStore, wid: str = "w") -> str:
    record, created = await Runs(store).start(StartRequest("wf", wid, b"[]", "h"))
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


async def test_lease_only_transactions_relax_synchronous_for_themselves_only(tmp_path: Path) -> None:
    store = await open_store(tmp_path, Clock())
    await started(store)
    assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)  # a lease-only transaction
    raw = store._engine.raw_connection()
    try:
        assert raw.driver_connection.execute("PRAGMA synchronous").fetchone() == (2,)  # type: ignore[union-attr]
    finally:
        raw.close()
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


async def test_group_commit_shares_transactions_and_a_failing_write_fails_alone(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'group.db'}")
    await store.open()
    transactions = 0

    def count(_conn: object) -> None:
        nonlocal transactions
        transactions += 1

    try:
        await Runs(store).start(StartRequest("wf", "taken", b"[]", "first"))
        sa_event.listen(store._engine, "begin", count)
        outcomes: dict[str, object] = {}

        async def start(workflow_id: str, input_hash: str) -> None:
            try:
                _record, created = await Runs(store).start(StartRequest("wf", workflow_id, b"[]", input_hash))
                outcomes[workflow_id] = created
            except retold.IdempotencyError as exc:
                outcomes[workflow_id] = exc

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(start, f"w{i}", "h")
            tg.start_soon(start, "taken", "other input")  # refused: rolls back alone
        assert all(outcomes[f"w{i}"] is True for i in range(40))
        assert isinstance(outcomes["taken"], retold.IdempotencyError)
        assert transactions < 41  # one transaction per write without group commit
        assert len(await store.list_runs(status=None, workflow=None, limit=100, offset=0)) == 41
    finally:
        await store.close()
