"""What only the NATS store has: copies that agree, URLs, a log others can read."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest

from retold.engine._runs import Runs
from retold.errors import ConfigurationError, ConflictError, LeaseLostError
from retold.stores import StartRequest
from retold.stores.nats import NatsStore
from retold.stores.nats._store import parse_url
from retold.testing.store_contract import ManualClock

pytestmark = pytest.mark.anyio


def state(store: NatsStore) -> dict[str, Any]:
    """A process's copy of the state, in an order of its own (not the dicts')."""
    view = store._view
    return {
        "runs": sorted((r.run_id, r.status, r.last_seq) for r in view.runs.values()),
        "events": sorted((run_id, tuple(e.type for e in events)) for run_id, events in view.events.items()),
        "wfts": sorted((w.run_id, w.owner, w.expires, w.attempts, w.signals) for w in view.wfts.values()),
        "inbox": sorted((run_id, tuple(i for i, _ in items)) for run_id, items in view.inbox.items()),
    }


async def test_copies_agree_after_writers_conflict(nats_url: str) -> None:
    # Two processes claim, finish and wake 12 runs at once, all due at the same instant (the clock
    # stands still): their operations collide, and each refused one is undone in that copy (which
    # moves the keys it removed to the end of their dicts). Every copy must still decide the same.
    clock = ManualClock()
    stores = [NatsStore(nats_url, clock=clock, lease_clock=clock) for _ in range(2)]
    for store in stores:
        await store.open()
    try:
        runs = [(await Runs(stores[0]).start(StartRequest("wf", f"w{i}", b"[]", "h")))[0].run_id
                for i in range(12)]

        async def work(store: NatsStore, owner: str) -> None:
            for _ in range(30):
                for run_id in await store.claim_workflow_tasks(owner, ["wf"], 2, 60.0):
                    run = await store.get_run(run_id)
                    with contextlib.suppress(ConflictError, LeaseLostError):
                        await Runs(store).commit_workflow_task(run_id, owner, run.last_seq, [])
                    await Runs(store).signal(run_id, "again", b"1")

        async with anyio.create_task_group() as tg:
            for i, store in enumerate(stores):
                tg.start_soon(work, store, f"owner-{i}")
        # A third process folds the whole log from the start.
        third = NatsStore(nats_url, clock=clock, lease_clock=clock)
        await third.open()
        stores.append(third)
        for store in stores:
            await store.get_run(runs[0])  # caught up with the stream
        first = state(stores[0])
        assert len(first["runs"]) == 12
        assert sum(types.count("SignalReceived") for _, types in first["events"]) >= 30
        assert state(stores[1]) == first
        assert state(third) == first
    finally:
        for store in stores:
            await store.close()


async def test_a_refused_operation_undone_leaves_the_same_choices() -> None:
    # Undoing a refused operation puts the rows it removed back at the end of their dicts; the
    # copy must still choose as a copy that never saw it (the same claim, the same due timers).
    from retold.stores._plan import Plan, TaskChange, Tx
    from retold.stores.nats._store import _View

    clock = ManualClock()
    views = [_View(clock, clock), _View(clock, clock)]
    for view in views:
        for i in range(3):
            def start(tx: Tx, view: _View = view, i: int = i) -> None:
                Runs(view).start_in(tx, StartRequest("wf", f"w{i}", b"[]", "h"), run_id=f"r{i}")
                tx.apply(Plan(run_id=f"r{i}", timers=[(9, clock.now)]))

            view.transact_sync(start)
        view.take_journals()
    for table in ("wfts", "timers"):
        assert list(getattr(views[0], table)) == ["r0", "r1", "r2"]
    views[0].transact_sync(lambda tx: tx.apply(Plan(run_id="r0", task=TaskChange("done"), drop_timers=[9])))
    for journal in reversed(views[0].take_journals()):
        journal.rollback()
    assert list(views[0].wfts) == ["r1", "r2", "r0"]  # the undone removal moved r0
    claims = [await view.claim_workflow_tasks("o", ["wf"], 1, 5.0) for view in views]
    assert claims == [["r0"], ["r0"]]
    due = [view.transact_sync(lambda tx: tx.take_due_timers(1)) for view in views]
    assert due == [[("r0", 9)], [("r0", 9)]]
    assert [view.transact_sync(lambda tx: tx.leased_runs("o")) for view in views] == [["r0"], ["r0"]]


def test_urls() -> None:
    assert parse_url("nats://127.0.0.1:4222") == (["nats://127.0.0.1:4222"], "retold", 1)
    assert parse_url("nats://a:1,b:2?prefix=shop&replicas=3") == (["nats://a:1", "nats://b:2"], "shop", 3)
    with pytest.raises(ConfigurationError, match="invalid NATS store URL"):
        parse_url("nats://")
    with pytest.raises(ConfigurationError, match="unknown option"):
        parse_url("nats://a:1?replica=3")
    with pytest.raises(ConfigurationError, match="invalid prefix"):
        parse_url("nats://a:1?prefix=a.b")
    with pytest.raises(ConfigurationError, match="invalid replicas"):
        parse_url("nats://a:1?replicas=7")
