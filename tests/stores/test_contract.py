"""The store contract: the same tests against memory://, a SQLite file and PostgreSQL.

Single-store tests take ``store_url`` (all three); tests of several stores
sharing one database (processes, machines) take ``shared_url`` (SQLite file
and PostgreSQL). Time is a fake clock given to the store, so leases and
timers are judged by it on every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

import retold
from retold.engine._machine import ActivityStep, ActivityTake, StartStep
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import ActivityOutcome, StartRequest
from retold.stores.sql import SqlStore
from retold.stores.sql import _schema as t
from retold.stores.sql._migrations import migrate, schema_version
from tests.conftest import Clock

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def opened(url: str, clock: Clock | None = None) -> AsyncIterator[SqlStore]:
    store = SqlStore(url, clock=clock or Clock())
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def count(store: SqlStore, table: sa.Table) -> int:
    with store._engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


async def started(store: SqlStore, wid: str = "w") -> str:
    record, created = await Runs(store).start(StartRequest("wf", wid, b"[]", "h"))
    assert created
    return record.run_id


def schedule(seq: int, queue: str = "q") -> ev.ActivityScheduled:
    return ev.ActivityScheduled(seq=seq, at=0, activity="a", input=b"[]", options={"task_queue": queue})


async def run_with_activity(store: SqlStore, wid: str) -> str:
    """A run whose first workflow task scheduled one activity of queue ``q``."""
    run_id = await started(store, wid)
    assert await store.claim_workflow_tasks("setup", ["wf"], 1000, 5.0)
    await Runs(store).commit_workflow_task(run_id, "setup", 1, [schedule(2)])
    return run_id


# -- one store -------------------------------------------------------------------------


async def test_start_is_idempotent_by_id_and_key(store_url: str) -> None:
    async with opened(store_url) as store:
        first, created = await Runs(store).start(StartRequest("wf", "order-1", b"[1]", "h1", "key-1"))
        assert created
        again, created = await Runs(store).start(StartRequest("wf", "order-1", b"[1]", "h1"))
        assert (again.run_id, created) == (first.run_id, False)
        by_key, created = await Runs(store).start(StartRequest("wf", "order-2", b"[1]", "h1", "key-1"))
        assert (by_key.run_id, created) == (first.run_id, False)
        with pytest.raises(retold.IdempotencyError, match="different input"):
            await Runs(store).start(StartRequest("wf", "order-1", b"[2]", "h2"))
        with pytest.raises(retold.IdempotencyError, match="workflow 'wf', not 'other'"):
            await Runs(store).start(StartRequest("other", "order-1", b"[1]", "h1"))
        assert count(store, t.runs) == 1


async def test_commit_is_all_or_nothing(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        run_id = await started(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        good = [schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)]
        with pytest.raises(retold.ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 5, good)  # stale expected seq
        broken = [*good, ev.TimerStarted(seq=9, at=0, duration=1.0)]  # a gap: refused mid-way
        with pytest.raises(retold.StoreError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, broken)
        assert (count(store, t.events), count(store, t.activity_tasks), count(store, t.timers)) == (1, 0, 0)
        assert (await store.get_run(run_id)).last_seq == 1
        assert await Runs(store).commit_workflow_task(run_id, "me", 1, good) == 3
        assert (count(store, t.activity_tasks), count(store, t.workflow_tasks), count(store, t.timers)) == (1, 0, 1)


async def test_leases_expire_by_the_store_clock(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        run_id = await started(store)
        assert await store.claim_workflow_tasks("dead", ["wf"], 10, 5.0) == [run_id]
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == []
        clock.now += 5.1
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 5.0) == [run_id]
        await Runs(store).commit_workflow_task(run_id, "alive", 1, [schedule(2)])

        [task] = await store.claim_activity_tasks("dead", "q", ["a"], 10, 5.0)
        assert await store.claim_activity_tasks("alive", "q", ["a"], 10, 5.0) == []
        assert await store.renew_leases("dead", [task.id], 5.0) == set()
        clock.now += 5.1
        [again] = await store.claim_activity_tasks("alive", "q", ["a"], 10, 5.0)
        assert again.id == task.id
        assert (task.attempt, again.attempt) == (1, 2)  # the dead owner's attempt counted
        # The dead owner's late result is refused: the lease fences it out.
        assert not await Runs(store).finish_activity(task, "dead", ActivityOutcome("completed", result=b"1"))
        assert await store.renew_leases("dead", [task.id], 5.0) == {task.id}
        assert await Runs(store).finish_activity(again, "alive", ActivityOutcome("completed", result=b"2"))
        _, history = await store.load(run_id, 0)
        assert [e.result for e in history if isinstance(e, ev.ActivityCompleted)] == [b"2"]


async def test_a_reaped_worker_loses_its_leases_at_once_and_its_attempt_counts(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        assert await store.register_worker("dead", "host-a", 111, "7") == []
        assert await store.register_worker("other-host", "host-b", 222, "8") == []
        assert await store.register_worker("alive", "host-a", 333, "9") == [("dead", 111, "7")]
        run_id = await started(store)
        assert await store.claim_workflow_tasks("dead", ["wf"], 10, 60.0) == [run_id]
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 60.0) == []
        assert await store.reap_worker("dead") == 1
        assert await store.claim_workflow_tasks("alive", ["wf"], 10, 60.0) == [run_id]  # no 60 s wait
        await Runs(store).commit_workflow_task(run_id, "alive", 1, [schedule(2)])
        [task] = await store.claim_activity_tasks("dead", "q", ["a"], 10, 60.0)
        assert await store.reap_worker("dead") == 1
        [again] = await store.claim_activity_tasks("alive", "q", ["a"], 10, 60.0)
        assert (again.id, again.attempt) == (task.id, 2)  # the dead attempt counted
        assert not await Runs(store).finish_activity(task, "dead", ActivityOutcome("completed", result=b"1"))
        assert await store.register_worker("alive", "host-a", 333, "9") == []  # "dead" is forgotten
        await store.unregister_worker("alive")
        assert await store.register_worker("next", "host-a", 444, "10") == []


async def test_a_commit_after_the_lease_moved_on_is_refused(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        run_id = await started(store)
        assert await store.claim_workflow_tasks("stalled", ["wf"], 10, 5.0) == [run_id]
        clock.now += 6
        assert await store.claim_workflow_tasks("next", ["wf"], 10, 5.0) == [run_id]
        # Same expected event number: only the lease tells the two apart.
        with pytest.raises(retold.LeaseLostError, match="stalled lost its lease") as lost:
            await Runs(store).commit_workflow_task(run_id, "stalled", 1, [ev.TimerStarted(seq=2, at=0, duration=1)])
        assert lost.value.holder == "next"
        assert (await store.get_run(run_id)).last_seq == 1
        assert await Runs(store).commit_workflow_task(run_id, "next", 1, [schedule(2)]) == 2
        with pytest.raises(retold.LeaseLostError, match="no longer pending"):
            await Runs(store).commit_workflow_task(run_id, "stalled", 2, [ev.TimerStarted(seq=3, at=0, duration=1)])
        _, history = await store.load(run_id, 0)
        assert [e.type for e in history] == ["WorkflowStarted", "ActivityScheduled"]


async def test_a_signal_recorded_during_a_task_fails_its_completion(store_url: str) -> None:
    async with opened(store_url) as store:
        run_id = await started(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        await Runs(store).signal("w", "go", b"1")  # arrives while the task runs
        done = ev.WorkflowCompleted(seq=2, at=0, result=b"null")
        with pytest.raises(retold.ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, [done])
        run, pending = await store.load(run_id, 1)
        assert run.status == "running"
        assert [e.type for e in pending] == ["SignalReceived"]
        # The task is still ours: processed again with the signal, it completes.
        assert await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCompleted(
            seq=3, at=0, result=b"null")]) == 3
        _, history = await store.load(run_id, 0)
        assert [e.type for e in history] == ["WorkflowStarted", "SignalReceived", "WorkflowCompleted"]


async def test_an_activity_outcome_commits_the_runs_next_step_with_it(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        run_id = await run_with_activity(store, "w")
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 5.0)
        clock.now += 1
        outcome = ActivityOutcome("completed", result=b"7")
        seen_at = clock.now - 0.5  # when the engine fed the outcome to the run
        event = outcome.event(seq=3, at=seen_at, scheduled=task.seq, attempt=task.attempt)
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"q": 1})
        step = ActivityStep(run_id, 2, event, [schedule(4), ev.TimerStarted(seq=5, at=0, duration=60.0)], take)
        # A lost lease writes nothing, step or not.
        assert not await Runs(store).finish_activity(task, "someone-else", outcome, step)
        assert not step.stepped
        assert count(store, t.events) == 2
        assert await Runs(store).finish_activity(task, "me", outcome, step)
        assert step.stepped
        _, history = await store.load(run_id, 0)
        assert [e.type for e in history] == [
            "WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityScheduled", "TimerStarted"]
        assert history[2].at == seen_at  # the time the run saw, so a replay sees it too
        assert [(e.seq, e.result) for e in history if isinstance(e, ev.ActivityCompleted)] == [(3, b"7")]
        [leased] = take.taken  # the next activity came leased to its engine
        assert leased.seq == 4
        assert (count(store, t.workflow_tasks), count(store, t.timers), count(store, t.activity_tasks)) == (0, 1, 1)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == []  # nothing left to process
        assert await store.claim_activity_tasks("other", "q", ["a"], 10, 5.0) == []

        # An input arrives between the engine's step and the outcome's commit:
        # the outcome is recorded alone, and the workflow task processes both.
        await Runs(store).signal("w", "go", b"1")
        late = ActivityOutcome("completed", result=b"8")
        stale = ActivityStep(run_id, 5, late.event(seq=6, at=clock.now, scheduled=4, attempt=1),
                             [ev.WorkflowCompleted(seq=7, at=0, result=b"null")])
        assert await Runs(store).finish_activity(leased, "me", late, stale)
        assert not stale.stepped
        run, pending = await store.load(run_id, 5)
        assert run.status == "running"
        assert [(e.type, e.seq) for e in pending] == [("SignalReceived", 6), ("ActivityCompleted", 7)]
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]


async def test_a_start_stores_the_runs_first_step_with_it(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        request = StartRequest("wf", "first", b"[1]", "h")
        started = ev.WorkflowStarted(seq=1, at=clock.now - 0.25, workflow="wf", workflow_id="first", input=b"[1]")
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"q": 1})
        step = StartStep("run-first", started, [schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0)], take)
        record, created = await Runs(store).start(request, step)
        assert (record.run_id, record.last_seq, created, step.stepped) == ("run-first", 3, True, True)
        _, history = await store.load("run-first", 0)
        assert [e.type for e in history] == ["WorkflowStarted", "ActivityScheduled", "TimerStarted"]
        assert history[0].at == started.at
        assert [task.seq for task in take.taken] == [2]
        assert count(store, t.workflow_tasks) == 0  # nothing left for a workflow task
        assert await store.claim_activity_tasks("other", "q", ["a"], 10, 5.0) == []  # leased to "me"
        # The same id again: the existing run, and nothing of the new step is written.
        again = StartStep("run-other", started, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        record, created = await Runs(store).start(request, again)
        assert (record.run_id, created, again.stepped) == ("run-first", False, False)
        assert count(store, t.runs) == 1
        assert count(store, t.events) == 3
        # A step that does not fit its request is refused before anything is written.
        wrong = StartStep("run-x", started, [])
        with pytest.raises(retold.StoreError, match="does not fit"):
            await Runs(store).start(StartRequest("wf", "another", b"[2]", "h2"), wrong)
        assert count(store, t.runs) == 1


async def test_cancel_racing_completion_records_one_outcome(store_url: str) -> None:
    async with opened(store_url) as store:
        # Cancel first: the completion computed without it is refused.
        run_id = await started(store, "cancel-first")
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).request_cancel("cancel-first", "stop")
        with pytest.raises(retold.ConflictError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        await Runs(store).commit_workflow_task(run_id, "me", 2, [ev.WorkflowCancelled(seq=3, at=0)])
        # Completion first: the cancel is refused.
        other = await started(store, "complete-first")
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(other, "me", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        with pytest.raises(retold.RunFinishedError):
            await Runs(store).request_cancel("complete-first", "too late")
        outcomes = {}
        for rid in (run_id, other):
            _, history = await store.load(rid, 0)
            outcomes[rid] = [e.type for e in history if isinstance(e, ev.TERMINAL_TYPES)]
        assert outcomes == {run_id: ["WorkflowCancelled"], other: ["WorkflowCompleted"]}
        assert [(await store.get_run(r)).status for r in (run_id, other)] == ["cancelled", "completed"]


async def test_timers_fire_when_due(store_url: str) -> None:
    clock = Clock()
    async with opened(store_url, clock) as store:
        run_id = await started(store)
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=30.0)])
        assert await Runs(store).fire_timers(10) == 0
        assert await store.next_wakeup() == clock.now + 30.0
        clock.now += 30.0
        assert await Runs(store).fire_timers(10) == 1
        assert await Runs(store).fire_timers(10) == 0
        _, history = await store.load(run_id, 2)
        assert [(type(e).__name__, getattr(e, "started", None)) for e in history] == [("TimerFired", 2)]
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]


async def test_release_hands_back_every_lease_of_an_owner(store_url: str) -> None:
    async with opened(store_url) as store:
        await run_with_activity(store, "a")
        other = await started(store, "b")
        assert await store.claim_workflow_tasks("leaving", ["wf"], 10, 60.0) == [other]
        [task] = await store.claim_activity_tasks("leaving", "q", ["a"], 10, 60.0)
        await Runs(store).release_leases("leaving")
        assert await store.claim_workflow_tasks("staying", ["wf"], 10, 60.0) == [other]
        [again] = await store.claim_activity_tasks("staying", "q", ["a"], 10, 60.0)
        assert again.id == task.id


def as_version_3(store: SqlStore) -> None:
    """Take the tables back to schema version 3: no inbox, no signal count, reusable task ids."""
    with store._engine.begin() as conn:
        t.inbox.drop(conn)
        conn.exec_driver_sql("ALTER TABLE retold_workflow_tasks DROP COLUMN signals")
        if store.dialect == "sqlite":
            old = sa.Table("retold_activity_tasks", sa.MetaData(), *(
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in t.activity_tasks.columns), sa.Index("retold_activity_tasks_ready", "queue", "visible_at"))
            rows = [dict(r._mapping) for r in conn.execute(sa.select(t.activity_tasks))]
            t.activity_tasks.drop(conn)
            old.create(conn)
            if rows:
                conn.execute(old.insert(), rows)
        conn.execute(t.meta.update().values(value="3"))


async def test_a_version_3_database_keeps_its_tasks_and_never_reuses_their_ids(store_url: str) -> None:
    async with opened(store_url) as store:
        run_id = await run_with_activity(store, "old")
        as_version_3(store)
        if store.dialect == "sqlite":
            with store._engine.connect() as conn:
                assert "AUTOINCREMENT" not in conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'retold_activity_tasks'").scalar_one()
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION == 6
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        assert task.run_id == run_id
        # The newest task goes (its run is cancelled); the next one gets a new id.
        await Runs(store).request_cancel(run_id, "test")
        await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await Runs(store).commit_workflow_task(run_id, "me", 3, [ev.WorkflowCancelled(seq=4, at=0)])
        other = await run_with_activity(store, "new")
        [fresh] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        assert fresh.run_id == other
        assert fresh.id > task.id
        # The old attempt's outcome is refused: its task is gone.
        assert not await Runs(store).finish_activity(task, "me", ActivityOutcome("completed", result=b"1"))


async def test_a_version_1_database_gains_the_workers_table(store_url: str) -> None:
    async with opened(store_url) as store:
        await started(store)
        as_version_3(store)
        with store._engine.begin() as conn:  # as retold 0.1 with schema version 1 left it
            t.workers.drop(conn)
            conn.execute(t.meta.update().values(value="1"))
        await store.open()  # as the next engine to open it does
        assert await store.register_worker("w1", "h", 1, "1") == []
        assert count(store, t.workers) == 1
        assert count(store, t.runs) == 1  # the runs are still there
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION


async def test_a_version_2_database_keeps_its_events_when_upgraded(store_url: str) -> None:
    async with opened(store_url) as store:
        run_id = await run_with_activity(store, "old")
        _, before = await store.load(run_id, 0)
        as_version_3(store)
        if store.dialect == "sqlite":
            # As schema version 2 made it: the events table had a rowid and a key index.
            old = sa.Table("retold_events", sa.MetaData(), *(
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in t.events.columns))
            with store._engine.begin() as conn:
                rows = [dict(r._mapping) for r in conn.execute(sa.select(t.events))]
                t.events.drop(conn)
                old.create(conn)
                conn.execute(old.insert(), rows)
        with store._engine.begin() as conn:
            conn.execute(t.meta.update().values(value="2"))
        await store.open()
        _, after = await store.load(run_id, 0)
        assert after == before
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
            if store.dialect == "sqlite":
                sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'retold_events'").scalar_one()
                assert "WITHOUT ROWID" in sql


async def test_claims_take_only_hosted_activities_of_the_queue(store_url: str) -> None:
    async with opened(store_url) as store:
        run_id = await started(store)
        await store.claim_workflow_tasks("me", ["wf"], 10, 5.0)
        await Runs(store).commit_workflow_task(run_id, "me", 1, [
            ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={"task_queue": "gpu"}),
            ev.ActivityScheduled(seq=3, at=0, activity="b", input=b"[]", options={"task_queue": "gpu"}),
            ev.ActivityScheduled(seq=4, at=0, activity="a", input=b"[]", options={}),
        ])
        assert await store.claim_activity_tasks("x", "cpu", ["a", "b"], 10, 5.0) == []
        assert [task.seq for task in await store.claim_activity_tasks("x", "gpu", ["a"], 10, 5.0)] == [2]
        assert [task.seq for task in await store.claim_activity_tasks("x", "default", ["a"], 10, 5.0)] == [4]
        assert await store.claim_workflow_tasks("x", ["other"], 10, 5.0) == []


async def test_a_newer_schema_is_refused(store_url: str) -> None:
    async with opened(store_url) as store:
        with store._engine.begin() as conn:
            conn.execute(t.meta.update().values(value=str(t.SCHEMA_VERSION + 1)))
        with pytest.raises(retold.SchemaError, match=rf"schema version {t.SCHEMA_VERSION + 1}, newer than"):
            await store.open()


async def test_upgrades_run_in_order_in_one_transaction(store_url: str) -> None:
    async with opened(store_url) as store:
        extra = sa.Table("retold_extra", sa.MetaData(), sa.Column("x", sa.Integer))
        ran: list[int] = []

        def add_table(conn: Any) -> None:
            ran.append(1)
            extra.create(conn)

        def broken(conn: Any) -> None:
            ran.append(2)
            raise RuntimeError("step 2 failed")

        base = t.SCHEMA_VERSION
        with pytest.raises(RuntimeError, match="step 2 failed"), store._d.begin() as conn:
            migrate(conn, store.url, target=base + 2, upgrades={base: add_table, base + 1: broken})
        with store._d.begin() as conn:  # rolled back: no table, same version
            assert schema_version(conn) == base
            assert not sa.inspect(conn).has_table("retold_extra")
        with pytest.raises(retold.SchemaError, match=f"no upgrade from {base + 1}"), store._d.begin() as conn:
            migrate(conn, store.url, target=base + 2, upgrades={base: add_table})
        with store._d.begin() as conn:
            found = migrate(conn, store.url, target=base + 2,
                            upgrades={base: add_table, base + 1: lambda conn: ran.append(3)})
        assert found == base
        assert ran == [1, 2, 1, 1, 3]
        with store._d.begin() as conn:
            assert schema_version(conn) == base + 2
            assert sa.inspect(conn).has_table("retold_extra")


# -- several stores on one database ------------------------------------------------------


async def test_processes_opening_a_new_database_at_once_create_it_once(shared_url: str) -> None:
    stores = [SqlStore(shared_url) for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(store.open)
        with stores[0]._engine.connect() as conn:
            assert conn.execute(sa.select(t.meta.c.key, t.meta.c.value)).all() == [
                ("schema_version", str(t.SCHEMA_VERSION))]
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_starts_of_one_id_make_one_run(shared_url: str) -> None:
    async with opened(shared_url) as a, opened(shared_url) as b:
        results: list[tuple[str, bool]] = []

        async def start(store: SqlStore) -> None:
            record, created = await Runs(store).start(StartRequest("wf", "same", b"[]", "h"))
            results.append((record.run_id, created))

        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(start, (a, b)[i % 2])
        assert len({run_id for run_id, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        assert count(a, t.runs) == 1


async def test_each_task_is_claimed_by_one_worker(shared_url: str) -> None:
    async with opened(shared_url) as setup:
        for i in range(40):
            await run_with_activity(setup, f"w{i}")
        for i in range(40):
            await started(setup, f"fresh{i}")
    stores = [SqlStore(shared_url, clock=Clock()) for _ in range(4)]
    activity_claims: dict[str, list[int]] = {}
    workflow_claims: dict[str, list[str]] = {}
    try:
        for store in stores:
            await store.open()

        async def claim(name: str, store: SqlStore) -> None:
            activity_claims[name], workflow_claims[name] = [], []
            while True:
                tasks = await store.claim_activity_tasks(name, "q", ["a"], 3, 60.0)
                runs = await store.claim_workflow_tasks(name, ["wf"], 3, 60.0)
                if not tasks and not runs:
                    return
                activity_claims[name] += [task.id for task in tasks]
                workflow_claims[name] += runs

        async with anyio.create_task_group() as tg:
            for i, store in enumerate(stores):
                tg.start_soon(claim, f"worker{i}", store)
    finally:
        for store in stores:
            await store.close()
    every_activity = [task for ids in activity_claims.values() for task in ids]
    every_run = [run for ids in workflow_claims.values() for run in ids]
    assert len(every_activity) == len(set(every_activity)) == 40
    assert len(every_run) == len(set(every_run)) == 40


async def test_a_due_timer_fires_once_whoever_looks(shared_url: str) -> None:
    clock = Clock()
    async with opened(shared_url, clock) as a, opened(shared_url, clock) as b:
        run_ids = [await started(a, f"t{i}") for i in range(20)]
        await a.claim_workflow_tasks("me", ["wf"], 100, 5.0)
        for run_id in run_ids:
            await Runs(a).commit_workflow_task(run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=10.0)])
        clock.now += 10
        fired: list[int] = []

        async def fire(store: SqlStore) -> None:
            for _ in range(5):
                fired.append(await Runs(store).fire_timers(3))

        async with anyio.create_task_group() as tg:
            for store in (a, b, a, b):
                tg.start_soon(fire, store)
        # Lookers that picked the same timers wait for each other and skip what
        # was fired meanwhile: some may be left for the next look, none fires twice.
        while more := await Runs(b).fire_timers(100):
            fired.append(more)
        assert sum(fired) == 20
        for run_id in run_ids:
            _, history = await a.load(run_id, 0)
            assert [e.type for e in history].count("TimerFired") == 1
