"""The store reads behind stuck-work diagnostics: live_workers and pending_work, on every store.

``store`` is a MemoryStore, a SQLite file or PostgreSQL, on a fake clock
(leases and registrations are judged by it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

import retold
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.history.failure import Failure
from retold.stores import ActivityOutcome, StartRequest, Store
from retold.stores._pending import Hosting
from retold.stores.memory import MemoryStore
from retold.stores.sql import SqlStore
from retold.stores.sql import _schema as t
from retold.stores.sql._migrations import schema_version
from tests.conftest import Clock
from tests.stores.schema_v10 import as_version_10

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[Store]:
    opened: Store = MemoryStore(clock=clock) if store_url == "memory://" else SqlStore(store_url, clock=clock)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def run_with(store: Store, commands: list[ev.Event], wid: str = "w") -> str:
    """A run of ``wf`` whose first step committed ``commands`` (numbered from 2)."""
    record, _ = await Runs(store).start(StartRequest("wf", wid, b"[]", "h"))
    assert await store.claim_workflow_tasks("setup", ["wf"], 10, 5.0) == [record.run_id]
    await Runs(store).commit_workflow_task(record.run_id, "setup", 1, commands)
    return record.run_id


def activity(seq: int, queue: str = "q") -> ev.ActivityScheduled:
    return ev.ActivityScheduled(seq=seq, at=0, activity="a", input=b"[]", options={"task_queue": queue})


async def test_registrations_say_what_engines_host_until_they_run_out(store: Store, clock: Clock) -> None:
    hosting = Hosting(workflows=("wf",), queues=("q",), activities=("a", "b"))
    await store.register_worker("w1", "h", 1, "1", hosting=hosting, ttl=15.0)
    await store.register_worker("w2", "h", 2, "2", ttl=60.0)
    assert [(w.worker_id, w.hosting) for w in await store.live_workers()] == [("w1", hosting), ("w2", Hosting())]
    assert hosting.runs_activity("q", "b")
    assert not hosting.runs_activity("other", "b")
    clock.now += 20  # w1 stopped registering again (its process died on another machine)
    assert [w.worker_id for w in await store.live_workers()] == ["w2"]
    await store.register_worker("w1", "h", 1, "1", hosting=hosting, ttl=15.0)  # it renews: back
    assert [w.worker_id for w in await store.live_workers()] == ["w1", "w2"]
    await store.unregister_worker("w2")
    assert [w.worker_id for w in await store.live_workers()] == ["w1"]
    await store.reap_worker("w1")
    assert await store.live_workers() == []


async def test_pending_work_follows_an_activity_through_its_attempts(store: Store, clock: Clock) -> None:
    run_id = await run_with(store, [activity(2)])
    [row] = (await store.pending_work(run_id)).activities
    assert (row.seq, row.activity, row.queue, row.attempt, row.owner, row.started_at) == (2, "a", "q", 1, None, None)
    assert row.scheduled_at == row.visible_at == clock.now
    clock.now += 1
    [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 30.0)
    [row] = (await store.pending_work(run_id)).activities
    assert (row.owner, row.started_at) == ("me", clock.now)
    failure = Failure(type="ValueError", message="boom")
    assert await Runs(store).finish_activity(task, "me", ActivityOutcome("failed", failure=failure, retry_delay=60.0))
    work = await store.pending_work(run_id)
    [row] = work.activities
    assert (row.attempt, row.owner, row.started_at, row.last_failure) == (2, None, None, failure)
    assert row.visible_at == work.now + 60.0
    clock.now += 61
    [again] = await store.claim_activity_tasks("other", "q", ["a"], 10, 30.0)
    clock.now += 31  # its lease runs out: no attempt is running any more
    [row] = (await store.pending_work(run_id)).activities
    assert (row.attempt, row.owner, row.started_at) == (2, None, None)
    assert again.attempt == 2


async def test_pending_work_lists_timers_children_and_the_workflow_task(store: Store, clock: Clock) -> None:
    run_id = await run_with(store, [
        ev.TimerStarted(seq=2, at=0, duration=90.0),
        ev.ChildWorkflowStarted(seq=3, at=0, workflow="kid", workflow_id="kid-1", run_id="kid-run",
                                input=b"[]"),
    ])
    work = await store.pending_work(run_id)
    assert [(x.seq, x.fire_at) for x in work.timers] == [(2, clock.now + 90.0)]
    [child] = work.children
    assert (child.seq, child.workflow, child.workflow_id) == (3, "kid", "kid-1")
    assert child.run_id == "kid-run" == (await store.get_run("kid-1")).run_id
    assert work.workflow_task is None  # the step committed; nothing new to process
    assert (await store.pending_work(child.run_id)).workflow_task == (clock.now, None, 0)
    with pytest.raises(retold.RunNotFoundError):
        await store.pending_work("no-such-run")


async def test_signals_not_processed_come_from_the_history_then_the_inbox(store: Store, clock: Clock) -> None:
    run_id = await run_with(store, [ev.WorkflowTaskCompleted(seq=2, at=0)])
    await Runs(store).signal(run_id, "seen", b"1")
    assert await store.claim_workflow_tasks("me", ["wf"], 10, 30.0) == [run_id]
    await Runs(store).commit_workflow_task(run_id, "me", 3, [ev.WorkflowTaskCompleted(seq=4, at=0)])
    await Runs(store).signal(run_id, "early", b"2")  # into the history: no step in flight
    assert await store.claim_workflow_tasks("me", ["wf"], 10, 30.0) == [run_id]
    await Runs(store).signal(run_id, "late", b"3")  # into the inbox: the step is in flight
    work = await store.pending_work(run_id)
    assert [(s.name, s.seq) for s in work.signals] == [("early", 5), ("late", None)]
    assert work.signals[0].at == clock.now
    assert work.signals[1].at is None
    assert work.workflow_task is not None
    assert work.workflow_task[1] == "me"


async def test_a_version_6_database_gains_the_hosting_columns(tmp_path: pytest.TempPathFactory) -> None:
    url = f"sqlite:///{tmp_path}/v6.db"
    store = SqlStore(url, clock=Clock())
    await store.open()
    try:
        await store.register_worker("old", "h", 1, "1")
        as_version_10(store)
        with store._engine.begin() as conn:  # as schema version 6 left it
            conn.exec_driver_sql("ALTER TABLE retold_workers DROP COLUMN hosting")
            conn.exec_driver_sql("ALTER TABLE retold_workers DROP COLUMN alive_until")
            conn.exec_driver_sql("ALTER TABLE retold_activity_tasks DROP COLUMN started_at")
            conn.execute(t.meta.update().values(value="6"))
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
            assert {"hosting", "alive_until"} <= {c["name"] for c in sa.inspect(conn).get_columns("retold_workers")}
        assert await store.live_workers() == []  # the old row says nothing about liveness: not counted
        await store.register_worker("new", "h", 2, "2", hosting=Hosting(workflows=("wf",)))
        assert [w.worker_id for w in await store.live_workers()] == ["new"]
    finally:
        await store.close()
