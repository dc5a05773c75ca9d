"""The contract for schedules: rows stored, read back by another process, due by the store clock, fired once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ...engine import Runs, Schedule, Schedules
from ...stores import ScheduleRow, Tx
from ._common import ManualClock, StoreFactory, count_runs

__all__ = [
    "test_a_due_schedule_fires_once_whoever_looks",
    "test_a_due_schedule_keeps_a_time_skipping_store_busy",
    "test_a_failed_transaction_writes_no_schedule",
    "test_schedule_rows_are_stored_listed_due_and_deleted",
]


async def test_schedule_rows_are_stored_listed_due_and_deleted(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    now = clock.now
    async with store_factory(clock) as store:
        def put(tx: Tx) -> None:
            tx.put_schedule(ScheduleRow("b", now + 20, b'{"x": 1}'))
            tx.put_schedule(ScheduleRow("a", now + 10, b'{"x": 2}'))
            tx.put_schedule(ScheduleRow("paused", None, b"{}"))
        await store.transact(put)
    async with store_factory(clock) as store:  # another process sees them
        rows = await store.transact(lambda tx: tx.schedules())
        assert rows == [ScheduleRow("a", now + 10, b'{"x": 2}'), ScheduleRow("b", now + 20, b'{"x": 1}'),
                        ScheduleRow("paused", None, b"{}")]
        assert await store.list_schedules() == rows  # the same, by a read
        assert await store.get_schedule("b") == ScheduleRow("b", now + 20, b'{"x": 1}')
        assert await store.get_schedule("nope") is None
        assert await store.schedules_due(10) == ([], now + 10)
        clock.now += 20
        assert await store.schedules_due(10) == (["a", "b"], now + 10)
        assert await store.schedules_due(1) == (["a"], now + 10)
        assert await store.schedules_due(0) == ([], now + 10)
        await store.transact(lambda tx: tx.put_schedule(ScheduleRow("a", now + 30, b"{}")))  # replaced
        assert await store.transact(lambda tx: tx.schedule("a")) == ScheduleRow("a", now + 30, b"{}")
        assert await store.transact(lambda tx: tx.schedule("a", skip_locked=True)) == ScheduleRow("a", now + 30, b"{}")
        assert await store.schedules_due(10) == (["b"], now + 20)
        assert await store.transact(lambda tx: tx.delete_schedule("b")) is True
        assert await store.transact(lambda tx: tx.delete_schedule("b")) is False
        assert await store.transact(lambda tx: tx.schedule("b")) is None
        assert await store.get_schedule("b") is None
        assert await store.get_schedule("a") == ScheduleRow("a", now + 30, b"{}")
    async with store_factory(clock) as store:
        assert [row.schedule_id for row in await store.transact(lambda tx: tx.schedules())] == ["a", "paused"]


async def test_a_failed_transaction_writes_no_schedule(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        def fail(tx: Tx) -> None:
            tx.put_schedule(ScheduleRow("s", clock.now, b"{}"))
            raise RuntimeError("boom")
        with pytest.raises(RuntimeError, match="boom"):
            await store.transact(fail)
        assert await store.transact(lambda tx: tx.schedules()) == []


async def test_a_due_schedule_fires_once_whoever_looks(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as one, store_factory(clock) as two:
        await Schedules(one, Runs(one)).create(Schedule("s", every=timedelta(seconds=10)), "wf", b"[]", "h")
        assert await Schedules(two, Runs(two)).fire_due(10) == (0, clock.now + 10)
        clock.now += 10
        first, _ = await Schedules(one, Runs(one)).fire_due(10)
        second, _ = await Schedules(two, Runs(two)).fire_due(10)
        assert (first, second) == (1, 0)
        assert await count_runs(one) == 1
        described = await Schedules(two, Runs(two)).describe("s")
        assert described.fires == 1
        assert described.last_workflow_id is not None
        assert described.last_workflow_id.startswith("s@")


async def test_a_due_schedule_keeps_a_time_skipping_store_busy(store_factory: StoreFactory) -> None:
    clock = ManualClock()
    async with store_factory(clock) as store:
        await store.transact(lambda tx: tx.put_schedule(ScheduleRow("paused", None, b"{}")))
        assert await store.quiescence() == (False, None)  # a paused schedule is no work
        await store.transact(lambda tx: tx.put_schedule(ScheduleRow("s", clock.now + 30, b"{}")))
        assert await store.quiescence() == (False, clock.now + 30)  # its fire is the next work
        clock.now += 30
        assert (await store.quiescence())[0]  # due: busy until a fire loop fires it
