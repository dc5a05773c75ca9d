"""What the memory store adds to the contract: synchronous transactions, in-process wake-ups, URL routing.

Everything a store must do is in the contract suite (test_contract.py), which
runs on memory:// too; these tests cover what only the memory store has.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

import retold
from retold.engine import _machine as m
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import StartRequest, Tx
from retold.stores.memory import MemoryStore
from retold.stores.sql import SqlStore
from retold.testing import WorkflowEnvironment
from tests.conftest import Clock


def start_body(workflow_id: str) -> Callable[[Tx], str]:
    def body(tx: Tx) -> str:
        decision = m.start(StartRequest("wf", workflow_id, b"[]", "h"), tx.now())
        tx.apply(decision.plan)
        return decision.plan.run_id

    return body


def test_transact_sync_needs_no_event_loop_and_is_all_or_nothing() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    run_id = store.transact_sync(start_body("w"))

    def commit_then_fail(tx: Tx) -> None:
        run = tx.run(run_id, inbox=True)
        assert run is not None
        plan = m.deliver(run, ev.SignalReceived(seq=0, at=0.0, name="s", input=b"1"), tx.now())
        assert plan is not None
        tx.apply(plan)
        state = tx.run(run_id)
        assert state is not None
        assert state.last_seq == 2  # seen inside the transaction
        raise RuntimeError("after the write")

    with pytest.raises(RuntimeError, match="after the write"):
        store.transact_sync(commit_then_fail)
    state = store.transact_sync(lambda tx: tx.run(run_id))
    assert state is not None
    assert state.last_seq == 1
    assert state.record.created_at == clock.now


def test_a_transaction_inside_another_is_refused() -> None:
    store = MemoryStore()
    with pytest.raises(retold.StoreError, match="inside another"):
        store.transact_sync(lambda tx: store.transact_sync(lambda inner: None))
    assert store.transact_sync(lambda tx: tx.entry("w")) is None  # the store is usable afterwards


def test_a_transaction_costs_the_same_in_a_big_store() -> None:
    def per_start(store: MemoryStore, prefix: str) -> float:
        best = float("inf")
        for batch in range(3):  # the best of three: a loaded machine only makes a batch slower
            t0 = time.perf_counter()
            for i in range(200):
                store.transact_sync(start_body(f"{prefix}-{batch}-{i}"))
            best = min(best, (time.perf_counter() - t0) / 200)
        return best

    small, big = MemoryStore(clock=Clock()), MemoryStore(clock=Clock())
    for i in range(10_000):
        big.transact_sync(start_body(f"w{i}"))
    # No transaction copies the store: a copy would make the big one's starts 100 times slower.
    assert per_start(big, "big") < 5 * per_start(small, "small") + 0.001


@pytest.mark.anyio
async def test_listeners_hear_committed_work_only() -> None:
    store = MemoryStore(clock=Clock())
    heard: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.listen, heard.append)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError):
            store.transact_sync(start_then_raise)
        assert heard == []
        await Runs(store).start(StartRequest("wf", "w", b"[]", "h"))
        assert heard == ["workflow"]
        tg.cancel_scope.cancel()
    heard.clear()
    await Runs(store).start(StartRequest("wf", "after", b"[]", "h"))
    assert heard == []  # a listener that stopped hears nothing


def start_then_raise(tx: Tx) -> None:
    start_body("rolled-back")(tx)
    raise RuntimeError("rolled back")


@retold.activity
async def add_one(x: int) -> int:
    return x + 1


@retold.workflow
async def bump(x: int) -> int:
    return await retold.execute(add_one, x)


@pytest.mark.anyio
async def test_engines_sharing_one_memory_store_wake_each_other_at_once() -> None:
    store = MemoryStore()
    # Polling every 60 s: only the store's wake-ups can make this quick.
    async with retold.Engine(store=store, workflows=[bump], activities=[add_one], poll_interval=60) as worker, \
            retold.Engine(store=store, workflows=[bump], run_workers=False, poll_interval=60) as client:
        await anyio.sleep(0)
        with anyio.fail_after(20):
            run = await client.start(bump, 41)
            assert await run.result() == 42
        assert worker.store is client.store


def test_urls_pick_the_store() -> None:
    assert isinstance(retold.Engine("memory://").store, MemoryStore)
    assert isinstance(retold.Engine("sqlite://").store, SqlStore)  # SQLite in memory stays reachable
    assert isinstance(WorkflowEnvironment().engine.store, MemoryStore)
    with pytest.raises(retold.StoreError, match="max_pending_signals"):
        MemoryStore(max_pending_signals=0)


@pytest.mark.anyio
async def test_sqlite_in_memory_still_runs_workflows() -> None:
    async with retold.Engine("sqlite://", workflows=[bump], activities=[add_one], poll_interval=0.05) as engine:
        run = await engine.start(bump, 1)
        with anyio.fail_after(20):
            assert await run.result() == 2
