"""Checks of the SQL store that read its tables: schema versions, upgrades, and creating a database.

What a store does is checked through the protocol, on every store, by the
contract suite (``retold.testing.store_contract``, run by test_contract.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

import retold
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.history.failure import Failure
from retold.stores import ActivityOutcome, StartRequest
from retold.stores.sql import SqlStore
from retold.stores.sql import _schema as t
from retold.stores.sql._migrations import migrate, schema_version
from tests.conftest import Clock
from tests.stores import schema_v10 as v10
from tests.stores.schema_v10 import as_version_10

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


async def test_a_failed_commit_leaves_no_row(sql_url: str) -> None:
    async with opened(sql_url) as store:
        run_id = await started(store)
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 5.0) == [run_id]
        broken = [schedule(2), ev.TimerStarted(seq=3, at=0, duration=60.0), ev.TimerStarted(seq=9, at=0, duration=1)]
        with pytest.raises(retold.StoreError):
            await Runs(store).commit_workflow_task(run_id, "me", 1, broken)
        assert (count(store, t.events), count(store, t.activity_tasks), count(store, t.timers)) == (1, 0, 0)
        assert (count(store, t.workflow_tasks), count(store, t.runs)) == (1, 1)


def as_version_5(store: SqlStore) -> None:
    """Take the tables back to schema version 5: workflow tasks keep no failure."""
    as_version_10(store)
    with store._engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE retold_workflow_tasks DROP COLUMN failure")
        conn.exec_driver_sql("ALTER TABLE retold_workflow_tasks DROP COLUMN failed_by")
        conn.execute(t.meta.update().values(value="5"))


def as_version_3(store: SqlStore) -> None:
    """Take the tables back to schema version 3: no inbox, no signal count, reusable task ids."""
    as_version_5(store)
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


async def test_a_version_3_database_keeps_its_tasks_and_never_reuses_their_ids(sql_url: str) -> None:
    async with opened(sql_url) as store:
        run_id = await run_with_activity(store, "old")
        as_version_3(store)
        if store.dialect == "sqlite":
            with store._engine.connect() as conn:
                assert "AUTOINCREMENT" not in conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'retold_activity_tasks'").scalar_one()
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
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


async def test_a_version_5_database_keeps_its_workflow_tasks_which_can_then_block(store_url: str) -> None:
    async with opened(store_url) as store:
        run_id = await started(store, "pending")
        as_version_5(store)
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0) == [run_id]
        failure = Failure(type="E", message="diverged", non_retryable=True, seq=1)
        assert not await Runs(store).fail_workflow_task(run_id, "me", failure, 1.0, 5, block=True, fingerprint="f1")
        record = await store.get_run(run_id)
        assert record.status == "running"
        assert record.task_failure is not None
        assert (record.task_failure.failure.message, record.task_failure.attempts) == ("diverged", 1)
        assert [r.run_id for r in await store.list_runs(status="blocked", workflow=None, limit=10, offset=0)] == [
            run_id]
        # Backed off: the same code waits, other code takes it at once.
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0, fingerprint="f1") == []
        assert await store.claim_workflow_tasks("other", ["wf"], 10, 60.0, fingerprint="f2") == [run_id]


async def test_a_version_7_database_turns_its_counted_deaths_into_suspicion(sql_url: str) -> None:
    async with opened(sql_url) as store:
        dead = await started(store, "held-by-a-dead-worker")
        fresh = await started(store, "untouched")
        as_version_10(store)
        with store._engine.begin() as conn:  # as schema version 7 left them: deaths counted at every lapse
            for table, names in ((t.workflow_tasks, ("lapses", "stepping")),
                                 (t.activity_tasks, ("lapses", "deaths", "stepping"))):
                for name in names:
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} DROP COLUMN {name}")
            conn.execute(t.workflow_tasks.update().where(t.workflow_tasks.c.run_id == dead).values(attempts=2))
            conn.execute(t.meta.update().values(value="7"))
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
        found = {run_id: (await store.load(run_id, 0))[0] for run_id in (dead, fresh)}
        assert (found[dead].task_lapses, found[dead].task_attempts) == (2, 0)  # no step was proven deadly
        assert (found[fresh].task_lapses, found[fresh].task_attempts) == (0, 0)
        # The new columns work: a suspect is claimed one at a time, and its activity tasks count deaths.
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0, suspects=0) == [fresh]
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0, suspects=1) == [dead]
        await Runs(store).commit_workflow_task(dead, "me", 1, [schedule(2)])
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)
        assert (task.suspect, task.deaths) == (False, 0)
        assert await Runs(store).mark_activity(task, "me")


async def test_a_version_7_databases_children_are_asked_to_cancel_and_new_children_keep_their_policy(
    sql_url: str,
) -> None:
    async with opened(sql_url) as store:
        runs = Runs(store)
        parent = await started(store, "parent")
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0) == [parent]
        await runs.commit_workflow_task(parent, "me", 1, [ev.ChildWorkflowStarted(
            seq=2, at=0, workflow="child", workflow_id="old-child", run_id="run-old-child", input=b"[]")])
        as_version_10(store)
        with store._engine.begin() as conn:  # as schema version 7 left it: no policies (nor later tables)
            for table in ("retold_search_attributes", "retold_schedules"):
                conn.exec_driver_sql(f"DROP TABLE {table}")
            for name in ("parent_close_policy", "search_attributes", "memo"):
                conn.exec_driver_sql(f"ALTER TABLE retold_runs DROP COLUMN {name}")
            conn.execute(t.meta.update().values(value="7"))
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
        old = await store.get_run("old-child")
        assert (old.parent_run_id, old.status, old.parent_close_policy) == (parent, "running", None)
        # The old child follows the default policy; a child started after the upgrade keeps its own.
        await Runs(store).start(StartRequest("wf", "parent-2", b"[]", "h"))
        [parent_2] = await store.claim_workflow_tasks("me", ["wf"], 10, 60.0)
        await runs.commit_workflow_task(parent_2, "me", 1, [ev.ChildWorkflowStarted(
            seq=2, at=0, workflow="child", workflow_id="new-child", run_id="run-new-child", input=b"[]",
            parent_close_policy="terminate")])
        assert (await store.get_run("new-child")).parent_close_policy == "terminate"
        for run_id in (parent, parent_2):
            await runs.terminate(run_id, "done")
        assert (await store.get_run("new-child")).status == "terminated"
        assert (await store.get_run("old-child")).status == "running"
        _, history = await store.load("run-old-child", 0)
        assert "CancelRequested" in [e.type for e in history]


async def test_a_version_8_database_keeps_its_runs_which_then_take_search_attributes(sql_url: str) -> None:
    async with opened(sql_url) as store:
        old = await started(store, "old-run")
        as_version_10(store)
        with store._engine.begin() as conn:  # as schema version 8 left it: no attributes, no memos
            conn.exec_driver_sql("DROP TABLE retold_search_attributes")
            for name in ("search_attributes", "memo"):
                conn.exec_driver_sql(f"ALTER TABLE retold_runs DROP COLUMN {name}")
            conn.execute(t.meta.update().values(value="8"))
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
        record = await store.get_run(old)
        assert (record.workflow_id, record.status, record.search_attributes, record.memo) == (
            "old-run", "running", None, None)
        assert [r.run_id for r in await store.list_runs(status=None, workflow=None, limit=10, offset=0)] == [old]
        # The old run takes attributes from its next step; new runs take them at start.
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0) == [old]
        await Runs(store).commit_workflow_task(old, "me", 1, [
            ev.SearchAttributesUpserted(seq=2, at=0, attributes={"stage": "s:migrated"})])
        new, _ = await Runs(store).start(StartRequest("wf", "new-run", b"[]", "h", search_attributes={
            "stage": "s:migrated"}, memo={"k": 1}))
        found = await store.list_runs(status=None, workflow=None, limit=10, offset=0,
                                      attributes={"stage": "s:migrated"})
        assert sorted(r.workflow_id for r in found) == ["new-run", "old-run"]
        assert (await store.get_run(new.run_id)).memo == {"k": 1}


async def test_a_version_1_database_gains_the_workers_table(sql_url: str) -> None:
    async with opened(sql_url) as store:
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


async def test_a_version_2_database_keeps_its_events_when_upgraded(sql_url: str) -> None:
    async with opened(sql_url) as store:
        run_id = await run_with_activity(store, "old")
        _, before = await store.load(run_id, 0)
        as_version_3(store)
        if store.dialect == "sqlite":
            # As schema version 2 made it: the events table had a rowid and a key index.
            old = sa.Table("retold_events", sa.MetaData(), *(
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in v10.events.columns))
            with store._engine.begin() as conn:
                rows = [dict(r._mapping) for r in conn.execute(sa.select(v10.events))]
                v10.events.drop(conn)
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


async def test_a_newer_schema_is_refused(sql_url: str) -> None:
    async with opened(sql_url) as store:
        with store._engine.begin() as conn:
            conn.execute(t.meta.update().values(value=str(t.SCHEMA_VERSION + 1)))
        with pytest.raises(retold.SchemaError, match=rf"schema version {t.SCHEMA_VERSION + 1}, newer than"):
            await store.open()


async def test_upgrades_run_in_order_in_one_transaction(sql_url: str) -> None:
    async with opened(sql_url) as store:
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


async def test_busy_timeout_from_the_url_or_the_argument(tmp_path: Any) -> None:
    path = tmp_path / "t.db"
    store = SqlStore(f"sqlite:///{path}?busy_timeout=2.5")
    assert store._d.busy_timeout == 2.5  # type: ignore[attr-defined]
    assert store.url == f"sqlite:///{path}?busy_timeout=2.5"
    await store.open()  # the file itself, not one named "t.db?busy_timeout=2.5"
    await store.close()
    assert path.exists()
    assert not any(p.name.startswith("t.db?") for p in tmp_path.iterdir())
    assert SqlStore(f"sqlite:///{path}?busy_timeout=2.5", busy_timeout=7)._d.busy_timeout == 7  # type: ignore[attr-defined]
    assert SqlStore(f"sqlite:///{path}")._d.busy_timeout == 10.0  # type: ignore[attr-defined]
    for bad in ("abc", "-1", "nan", "inf", ""):
        with pytest.raises(retold.ConfigurationError, match=f"invalid busy_timeout='{bad}' in the store URL"):
            SqlStore(f"sqlite:///{path}?busy_timeout={bad}")
    with pytest.raises(retold.StoreError, match="busy_timeout must be seconds, a number at least 0, got -1"):
        SqlStore(f"sqlite:///{path}", busy_timeout=-1)


async def test_a_version_9_database_gains_the_schedules_table_and_keeps_its_runs(sql_url: str) -> None:
    from retold.stores import ScheduleRow

    async with opened(sql_url) as store:
        run_id = await started(store, "before-schedules")
        as_version_10(store)
        with store._engine.begin() as conn:  # as schema version 9 left it: no schedules table
            t.schedules.drop(conn)
            conn.execute(t.meta.update().values(value="9"))
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
        assert (await store.get_run(run_id)).status == "running"  # the runs are still there
        await store.transact(lambda tx: tx.put_schedule(ScheduleRow("s", 1.0, b"{}")))
        assert await store.transact(lambda tx: tx.schedules()) == [ScheduleRow("s", 1.0, b"{}")]


async def test_events_are_keyed_by_the_runs_integer_key_and_typed_by_a_code(sql_url: str) -> None:
    async with opened(sql_url) as store:
        run_id = await run_with_activity(store, "keyed")
        with store._engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert inspector.get_pk_constraint("retold_events")["constrained_columns"] == ["rk", "seq"]
            columns = {c["name"]: c["type"] for c in inspector.get_columns("retold_events")}
            assert "run_id" not in columns
            assert all(isinstance(columns[name], sa.Integer) for name in ("rk", "seq", "type"))
            assert inspector.get_pk_constraint("retold_runs")["constrained_columns"] == ["rk"]
            workflow_columns = {c["name"] for c in inspector.get_columns("retold_workflows")}
            assert {"first_rk", "current_rk"} <= workflow_columns
            assert not {"first_run_id", "current_run_id"} & workflow_columns
            # The codes name the types, in a table of their own, for anyone reading the tables by hand.
            rows = conn.execute(
                sa.select(t.events.c.seq, t.event_types.c.name)
                .join(t.event_types, t.event_types.c.code == t.events.c.type)
                .join(t.runs, t.runs.c.rk == t.events.c.rk)
                .where(t.runs.c.run_id == run_id).order_by(t.events.c.seq)).all()
        assert rows == [(1, "WorkflowStarted"), (2, "ActivityScheduled")]


def test_event_codes_are_fixed_and_cover_every_event_type() -> None:
    assert set(t.EVENT_CODES) == set(ev.EVENT_TYPES)
    assert len(set(t.EVENT_CODES.values())) == len(t.EVENT_CODES)
    # Stored in every history: a code never changes its meaning.
    assert (t.EVENT_CODES["WorkflowStarted"], t.EVENT_CODES["ActivityScheduled"],
            t.EVENT_CODES["SearchAttributesUpserted"]) == (1, 2, 30)


@retold.activity
async def _noop(i: int) -> int:
    return i


@retold.workflow
async def _three_steps(i: int) -> int:
    a = await retold.execute(_noop, i)
    b = await retold.execute(_noop, a + 1)
    return await retold.execute(_noop, b + 1)


def _used_bytes(path: Any) -> int:
    """Bytes of SQLite's b-tree pages holding something (dbstat: page size less unused space)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("SELECT sum(pgsize - unused) FROM dbstat").fetchone()[0])
    finally:
        conn.close()


async def test_a_completed_three_activity_workflow_takes_under_850_bytes_of_sqlite_pages(tmp_path: Any) -> None:
    """W7's workload at a smaller size: bytes used per completed workflow, net of an empty database.

    Not a timing: what the rows of one workflow take in the file's b-trees
    (free space in pages excluded, so the figure does not hinge on page
    boundaries). W7 counts whole pages: about 1.15 times this.
    """
    n = 300
    empty, full = tmp_path / "empty.db", tmp_path / "full.db"
    for path, count_ in ((empty, 0), (full, n)):
        engine = retold.Engine(f"sqlite:///{path}", workflows=[_three_steps], activities=[_noop])
        async with engine, anyio.create_task_group() as tg:
            for i in range(count_):
                tg.start_soon(_one, engine, i)
    per_workflow = (_used_bytes(full) - _used_bytes(empty)) / n
    assert per_workflow < 850, per_workflow  # 819 with schema version 11, 1,325 with version 10


async def _one(engine: retold.Engine, i: int) -> None:
    run = await engine.start(_three_steps.with_options(id=f"wf-{i}"), i)
    assert await run.result() == i + 2


async def _complete(store: SqlStore, run_id: str, owner: str = "me") -> None:
    """Finish a run whose activity (of queue ``q``) is the only thing it waits for."""
    runs = Runs(store)
    [task] = [task for task in await store.claim_activity_tasks(owner, "q", ["a"], 100, 60.0) if task.run_id == run_id]
    assert await runs.finish_activity(task, owner, ActivityOutcome("completed", result=b"7"))
    assert run_id in await store.claim_workflow_tasks(owner, ["wf"], 100, 60.0)
    record, _ = await store.load(run_id, 0)
    await runs.commit_workflow_task(run_id, owner, record.last_seq, [
        ev.WorkflowCompleted(seq=record.last_seq + 1, at=0, result=b"7")])


async def test_a_version_10_database_keeps_every_event_and_its_runs_carry_on(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        runs = Runs(store)
        done = await run_with_activity(store, "done")
        await _complete(store, done)
        waiting = await run_with_activity(store, "waiting")
        keyed, _ = await runs.start(StartRequest("wf", "keyed", b"[1]", "h1", idempotency_key="k-1"))
        await runs.signal("keyed", "go", b"1")
        before = {run_id: await store.load(run_id, 0) for run_id in (done, waiting, keyed.run_id)}
        assert [e.type for e in before[done][1]] == [
            "WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "WorkflowCompleted"]
        as_version_10(store)
        with store._engine.connect() as conn:  # what version 10 left: events keyed by run id strings
            assert schema_version(conn) == 10
            assert "run_id" in {c["name"] for c in sa.inspect(conn).get_columns("retold_events")}
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION == 11
            tables = set(sa.inspect(conn).get_table_names())
            assert not {name for name in tables if name.endswith("_v10")}
            if store.dialect == "sqlite":
                assert "WITHOUT ROWID" in conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'retold_events'").scalar_one()
        for run_id, (record, history) in before.items():
            assert await store.load(run_id, 0) == (record, history)
            assert await store.load(run_id, 1, 1) == (record, history[1:2])
        assert (await store.get_run("waiting")).run_id == waiting
        assert [r.run_id for r in await store.list_runs(status="completed", workflow=None, limit=10, offset=0)] == [
            done]
        # The same idempotency key finds the old run; the workflow id is still taken.
        again, created = await runs.start(StartRequest("wf", "other-id", b"[1]", "h1", idempotency_key="k-1"))
        assert (again.run_id, created) == (keyed.run_id, False)
        # The open run carries on where it was; a run started now gets a key of its own.
        await _complete(store, waiting)
        record, history = await store.load(waiting, 0)
        assert record.status == "completed"
        assert history[:2] == before[waiting][1][:2]
        assert [e.seq for e in history] == [1, 2, 3, 4]
        fresh = await run_with_activity(store, "fresh")
        await _complete(store, fresh)
        assert [e.type for e in (await store.load(fresh, 0))[1]] == [e.type for e in before[done][1]]
        assert (await store.load(done, 0)) == before[done]
        # Retention finds the old runs' events through the new key.
        clock.now += 10
        report = await store.purge(clock.now, statuses=["completed"])
        assert (report.runs, report.events) == (3, 12)
        assert count(store, t.events) == len((await store.load(keyed.run_id, 0))[1])
