"""Retention on every store: only old finished runs go, all of their rows go, nothing else is touched.

The store's clock is a fake one, so "30 days later" is one assignment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

import retold
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.history.failure import Failure
from retold.stores import StartRequest
from retold.stores.sql import SqlStore
from retold.stores.sql import _schema as t
from retold.stores.sql._migrations import schema_version
from tests.conftest import Clock
from tests.stores.test_sql_only import as_version_5, opened, schedule, started

pytestmark = pytest.mark.anyio

DAY = 86_400.0

# Every table of the schema, and the column that says whose its rows are: a
# new table must be added here (and to retention) before this suite passes.
OWNER = {
    "retold_events": "rk", "retold_runs": "run_id", "retold_workflow_tasks": "run_id",
    "retold_activity_tasks": "run_id", "retold_inbox": "run_id", "retold_timers": "run_id",
    "retold_workflows": "workflow_id", "retold_meta": None, "retold_workers": None,
    "retold_search_attributes": "run_id",
    "retold_schedules": None,  # a schedule outlives the runs it started
    "retold_event_types": None,  # the names of the event codes
}


def dump(store: SqlStore) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table."""
    assert set(t.metadata.tables) == set(OWNER), "a new table: say whose its rows are in OWNER"
    with store._engine.connect() as conn:
        return {name: {tuple(row) for row in conn.execute(sa.select(table))}
                for name, table in t.metadata.tables.items()}


def without(rows: dict[str, set[tuple[Any, ...]]], run_ids: set[str], workflow_ids: set[str]) -> dict[str, Any]:
    """``rows`` less those of the given runs and workflow ids."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    run_key = list(t.runs.columns.keys())
    rks = {row[run_key.index("rk")] for row in rows["retold_runs"] if row[run_key.index("run_id")] in run_ids}
    for name, table_rows in rows.items():
        column = OWNER[name]
        if column is None:
            out[name] = table_rows
            continue
        index = list(t.metadata.tables[name].columns.keys()).index(column)
        gone = run_ids if column == "run_id" else rks if column == "rk" else workflow_ids
        out[name] = {row for row in table_rows if row[index] not in gone}
    return out


async def step(store: SqlStore, run_id: str, commands: list[ev.Event]) -> int:
    """Commit ``commands`` after the run's last event, as worker "w" (which may hold its task already)."""
    await store.claim_workflow_tasks("w", ["wf", "child"], 1000, 60.0)
    for _ in range(2):
        last = (await store.get_run(run_id)).last_seq
        numbered = [dataclasses.replace(cmd, seq=last + 1 + i) for i, cmd in enumerate(commands)]
        try:
            return await Runs(store).commit_workflow_task(run_id, "w", last, numbered)
        except retold.ConflictError:
            continue  # inputs waited in its inbox (a cancel request): they are in its history now
    raise AssertionError(f"run {run_id} keeps moving")


def done() -> ev.Event:
    return ev.WorkflowCompleted(seq=0, at=0, result=b"1")


async def completed(store: SqlStore, wid: str, key: str | None = None) -> str:
    record, created = await Runs(store).start(StartRequest("wf", wid, b"[]", "h", key))
    assert created
    await step(store, record.run_id, [schedule(0), done()])
    return record.run_id


async def test_only_old_finished_runs_go_with_every_row_of_theirs(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        old_done = await completed(store, "old-done", key="key-1")
        old_failed = await started(store, "old-failed")
        await step(store, old_failed, [ev.WorkflowFailed(seq=0, at=0, failure=Failure(type="", message="no"))])
        running = await started(store, "running")  # as old, but running: with a task, a timer, an inbox
        await step(store, running, [schedule(0), ev.TimerStarted(seq=0, at=0, duration=10 * DAY)])
        assert await store.claim_workflow_tasks("w", ["wf"], 10, 60.0) == []
        await Runs(store).signal(running, "go", b"1")
        clock.now += 20 * DAY
        recent = await completed(store, "recent")
        # Rows a closed run should not have, left over all the same: they go with it.
        with store._engine.begin() as conn:
            conn.execute(t.inbox.insert().values(run_id=old_done, type="SignalReceived", meta=b"{}", payload=None))
            conn.execute(t.timers.insert().values(run_id=old_done, seq=99, fire_at=0.0))
            # Search attributes (the index table's rows) go with their run, and stay with a running one.
            for run_id in (old_done, running):
                conn.execute(t.search_attributes.insert().values(run_id=run_id, name="customer", value="s:acme"))
        clock.now += 15 * DAY
        before = dump(store)

        report = await store.purge(clock.now - 30 * DAY)

        assert dump(store) == without(before, {old_done, old_failed}, {"old-done", "old-failed"})
        assert (report.runs, report.workflow_ids, report.inbox, report.timers, report.kept) == (2, 2, 1, 1, 0)
        assert report.events == 3 + 2  # started, scheduled, completed; started, failed
        # The running run goes on; the recent one is there; the freed id and key can be used again.
        await Runs(store).signal(running, "again", b"2")
        assert (await store.get_run(recent)).status == "completed"
        record, created = await Runs(store).start(StartRequest("wf", "other-id", b"[]", "h", "key-1"))
        assert created
        assert record.run_id != old_done


async def test_a_dry_run_counts_and_writes_nothing(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        for i in range(7):
            await completed(store, f"wf-{i}")
        await started(store, "running")
        clock.now += 1.0
        before = dump(store)
        counted = await store.purge(clock.now, batch_size=3, dry_run=True)
        assert dump(store) == before
        assert counted.dry_run
        done_ = await store.purge(clock.now, batch_size=3)
        assert not done_.dry_run
        assert counted.as_dict() | {"dry_run": False} == done_.as_dict()
        assert (done_.runs, done_.events) == (7, 21)


async def test_filters_by_status_and_workflow(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        ok = await completed(store, "ok")
        bad = await started(store, "bad")
        await step(store, bad, [ev.WorkflowFailed(seq=0, at=0, failure=Failure(type="", message="no"))])
        record, _ = await Runs(store).start(StartRequest("other", "other", b"[]", "h"))
        assert await store.claim_workflow_tasks("w", ["other"], 10, 60.0) == [record.run_id]
        await Runs(store).commit_workflow_task(record.run_id, "w", 1, [ev.WorkflowCompleted(seq=2, at=0, result=b"1")])
        clock.now += 1.0
        assert (await store.purge(clock.now, statuses=["failed"])).runs == 1
        assert (await store.purge(clock.now, workflow="other")).runs == 1
        assert [r.run_id for r in await store.list_runs(status=None, workflow=None, limit=10, offset=0)] == [ok]


async def test_a_continue_as_new_chain_goes_from_its_oldest_end(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        first = await started(store, "chain")
        ids = [first]
        for _ in range(2):  # first -> second -> third (running)
            clock.now += DAY
            new = f"run-{len(ids)}"
            await step(store, ids[-1], [ev.WorkflowContinuedAsNew(seq=0, at=0, new_run_id=new, input=b"[]")])
            ids.append(new)
        clock.now += 40 * DAY
        report = await store.purge(clock.now - 30 * DAY)
        assert (report.runs, report.workflow_ids) == (2, 0)
        # The workflow id lives on, its row naming the run that is left.
        assert (await store.get_run("chain")).run_id == ids[2]
        again, created = await Runs(store).start(StartRequest("wf", "chain", b"[]", "h"))
        assert (again.run_id, created) == (ids[2], False)
        assert (await store.purge(clock.now)).runs == 0  # running: never

        # The last run closes: it goes with the id, which is free again.
        await step(store, ids[2], [done()])
        clock.now += 1.0
        report = await store.purge(clock.now)
        assert (report.runs, report.workflow_ids) == (1, 1)
        fresh, created = await Runs(store).start(StartRequest("wf", "chain", b"[]", "h"))
        assert created
        assert fresh.run_id not in ids


async def test_the_last_run_of_a_chain_takes_the_earlier_ones_with_it(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        first = await started(store, "chain")
        await step(store, first, [ev.WorkflowContinuedAsNew(seq=0, at=0, new_run_id="second", input=b"[]")])
        await step(store, "second", [done()])
        clock.now += 1.0
        before = dump(store)
        # Only completed runs: the continued one goes too, or the id's row would name a run that is gone.
        report = await store.purge(clock.now, statuses=["completed"])
        assert (report.runs, report.workflow_ids) == (2, 1)
        assert dump(store) == without(before, {first, "second"}, {"chain"})


def child(seq_hint: str, run_id: str) -> ev.ChildWorkflowStarted:
    return ev.ChildWorkflowStarted(seq=0, at=0, workflow="child", workflow_id=f"child-{seq_hint}", run_id=run_id,
                                   input=b"[]")


async def test_a_parent_goes_with_its_children_once_none_is_running(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        parent = await started(store, "parent")
        await step(store, parent, [child("a", "kid-a"), child("b", "kid-b")])
        await step(store, "kid-a", [done()])  # kid-b is still running when the parent ends
        await step(store, parent, [done()])
        clock.now += 40 * DAY
        before = dump(store)
        report = await store.purge(clock.now - 30 * DAY)
        # kid-a is old and finished, but goes with its parent, which waits for kid-b.
        assert (report.runs, report.kept) == (0, 2)
        assert dump(store) == before
        await step(store, "kid-b", [ev.WorkflowCancelled(seq=0, at=0)])  # the parent asked it to cancel
        report = await store.purge(clock.now - 30 * DAY)
        # kid-b closed just now, after the cut-off: it goes with its parent all the same.
        assert (report.runs, report.workflow_ids, report.kept) == (3, 3, 0)
        assert dump(store) == without(before, {parent, "kid-a", "kid-b"}, {"parent", "child-a", "child-b"}) | {
            "retold_workflow_tasks": set()}  # kid-b's task, finished meanwhile


async def test_a_finished_child_of_a_running_parent_goes_alone(sql_url: str) -> None:
    clock = Clock()
    async with opened(sql_url, clock) as store:
        parent = await started(store, "parent")
        await step(store, parent, [child("a", "kid-a")])
        await step(store, "kid-a", [done()])
        clock.now += 40 * DAY
        report = await store.purge(clock.now - 30 * DAY)
        assert (report.runs, report.workflow_ids) == (1, 1)
        # The parent saw its child's outcome before it went, and finishes.
        _, history = await store.load(parent, 0)
        assert isinstance(history[-1], ev.ChildWorkflowCompleted)
        await step(store, parent, [done()])
        assert (await store.get_run(parent)).status == "completed"


async def test_a_version_4_database_gains_the_close_time_index(sql_url: str) -> None:
    async with opened(sql_url) as store:
        await completed(store, "old")
        as_version_5(store)
        with store._engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX retold_runs_closed")
            conn.execute(t.meta.update().values(value="4"))
        await store.open()
        with store._engine.connect() as conn:
            assert schema_version(conn) == t.SCHEMA_VERSION
            assert "retold_runs_closed" in {ix["name"] for ix in sa.inspect(conn).get_indexes("retold_runs")}
        assert (await store.purge(store.now() + 1)).runs == 1


async def test_two_purges_at_once_share_the_work(shared_url: str) -> None:
    clock = Clock()
    async with opened(shared_url, clock) as first, opened(shared_url, clock) as second:
        for i in range(120):
            await completed(first, f"wf-{i}")
        clock.now += 1.0
        reports: list[Any] = []

        async def purge(store: SqlStore) -> None:
            reports.append(await store.purge(clock.now, batch_size=5))

        async with anyio.create_task_group() as group:
            group.start_soon(purge, first)
            group.start_soon(purge, second)
        assert sum(r.runs for r in reports) == 120
        assert sum(r.workflow_ids for r in reports) == 120
        assert sum(r.events for r in reports) == 360
        assert {name: rows for name, rows in dump(first).items() if OWNER[name]} == {
            name: set() for name in OWNER if OWNER[name]}
