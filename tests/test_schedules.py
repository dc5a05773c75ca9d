"""Schedules: fire times (cron in a time zone, every), overlap policies, catch-up, pause/resume/trigger/delete.

The store's clock is a test clock moved by hand: a fire is due when the test
says so, and the tests wait on what the fire loop writes (runs, counters).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest

import retold
from retold.engine._schedules import fire_workflow_id
from tests.conftest import Clock, EngineFactory, count_calls, store_for

pytestmark = pytest.mark.anyio

T0 = 1_000_000.0  # the Clock's start


@retold.workflow(name="sched_hello")
async def hello(name: str, n: int = 1) -> str:
    return f"hello {name} x{n}"


@retold.workflow(name="sched_gate", signals={"go": str})
async def gate(name: str) -> str:
    await retold.wait_signal("go", str)
    return name


async def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Wait until ``await check()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


async def runs_of(engine: retold.Engine, schedule_id: str) -> list[retold.RunDescription]:
    return sorted(await engine.list_runs(id_prefix=f"{schedule_id}@"), key=lambda r: r.workflow_id)


async def test_every_fires_once_per_fire_time_on_every_store(make_engine: EngineFactory, store_url: str) -> None:
    clock = Clock()
    async with make_engine([hello], store=store_for(store_url, clock=clock)) as engine:
        handle = await engine.schedule(retold.Schedule("tick", every=timedelta(seconds=10)), hello, "ann", n=2)
        described = await handle.describe(next_fires=3)
        assert [t.timestamp() for t in described.next_fires] == [T0 + 10, T0 + 20, T0 + 30]
        assert await runs_of(engine, "tick") == []
        clock.now += 10
        runs = await until(lambda: runs_of(engine, "tick"), "the first fire")
        assert [r.workflow_id for r in runs] == [fire_workflow_id("tick", T0 + 10)]
        assert await engine.get_handle(runs[0].workflow_id).result(timeout=30) == "hello ann x2"
        clock.now += 10
        runs = await until(lambda: _at_least(engine, "tick", 2), "the second fire")
        assert [r.workflow_id for r in runs] == [fire_workflow_id("tick", T0 + 10), fire_workflow_id("tick", T0 + 20)]
        described = await handle.describe(next_fires=1)
        assert (described.fires, described.skipped) == (2, 0)
        assert described.next_fires[0].timestamp() == T0 + 30
        assert described.last_workflow_id == fire_workflow_id("tick", T0 + 20)


async def _at_least(engine: retold.Engine, schedule_id: str, count: int) -> list[retold.RunDescription] | None:
    runs = await runs_of(engine, schedule_id)
    return runs if len(runs) >= count else None


async def test_cron_fire_times_follow_the_time_zone_across_a_dst_change(make_engine: EngineFactory) -> None:
    clock = Clock()
    zone = ZoneInfo("America/New_York")
    clock.now = datetime(2026, 3, 6, 12, tzinfo=zone).timestamp()
    async with make_engine([hello], store=store_for("memory://", clock=clock)) as engine:
        spec = retold.Schedule("nightly", cron="30 2 * * *", timezone="America/New_York")
        handle = await engine.schedule(spec, hello, "ann")
        fires = (await handle.describe(next_fires=4)).next_fires
        # 2026-03-08 02:30 does not exist in New York (clocks jump from 02:00 to 03:00): that day fires at 03:00.
        assert [f.isoformat() for f in fires] == [
            "2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00",
        ]
        clock.now = fires[0].timestamp()
        runs = await until(lambda: runs_of(engine, "nightly"), "the 02:30 fire")
        assert [r.workflow_id for r in runs] == ["nightly@2026-03-07T07:30:00.000000Z"]


async def test_catch_up_starts_only_the_latest_missed_fires(make_engine: EngineFactory) -> None:
    clock = Clock()
    async with make_engine([hello], store=store_for("memory://", clock=clock)) as engine:
        handle = await engine.schedule(
            retold.Schedule("catchup", every=timedelta(seconds=60), catchup_limit=3, overlap="allow_all"),
            hello, "ann")
        clock.now += 600  # ten fire times passed at once (downtime)
        runs = await until(lambda: _at_least(engine, "catchup", 3), "the catch-up fires")
        assert [r.workflow_id for r in runs] == [fire_workflow_id("catchup", T0 + 60 * k) for k in (8, 9, 10)]
        described = await handle.describe()
        assert (described.fires, described.skipped) == (3, 7)
        assert described.next_fires[0].timestamp() == T0 + 660


async def _fire_twice(engine: retold.Engine, clock: Clock, overlap: str) -> retold.ScheduleHandle:
    handle = await engine.schedule(retold.Schedule(overlap, every=timedelta(seconds=10), overlap=overlap),  # type: ignore[arg-type]
                                   gate, "g")
    clock.now += 10
    await until(lambda: runs_of(engine, overlap), "the first fire")
    clock.now += 10
    await until(lambda: _described(handle, lambda d: d.next_fires[0].timestamp() == T0 + 30), "the second fire")
    return handle


async def _described(handle: retold.ScheduleHandle, check: Callable[[retold.ScheduleDescription], bool]) -> bool:
    return check(await handle.describe())


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_overlap_skip_starts_nothing_while_the_previous_run_is_open(
    make_engine: EngineFactory, store_url: str,
) -> None:
    clock = Clock()
    async with make_engine([gate], store=store_for(store_url, clock=clock)) as engine:
        handle = await _fire_twice(engine, clock, "skip")
        described = await handle.describe()
        assert (described.fires, described.skipped) == (1, 1)
        assert len(await runs_of(engine, "skip")) == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_overlap_buffer_one_starts_the_buffered_fire_when_the_previous_run_closes(
    make_engine: EngineFactory, store_url: str,
) -> None:
    clock = Clock()
    async with make_engine([gate], store=store_for(store_url, clock=clock)) as engine:
        handle = await _fire_twice(engine, clock, "buffer_one")
        described = await handle.describe()
        assert described.buffered is not None
        assert described.buffered.timestamp() == T0 + 20
        assert len(await runs_of(engine, "buffer_one")) == 1
        first = fire_workflow_id("buffer_one", T0 + 10)
        await engine.get_handle(first).signal("go", "now")
        runs = await until(lambda: _at_least(engine, "buffer_one", 2), "the buffered fire")
        assert [r.workflow_id for r in runs] == [first, fire_workflow_id("buffer_one", T0 + 20)]
        described = await handle.describe()
        assert (described.buffered, described.fires) == (None, 2)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_overlap_allow_all_starts_every_fire(
    make_engine: EngineFactory, store_url: str,
) -> None:
    clock = Clock()
    async with make_engine([gate], store=store_for(store_url, clock=clock)) as engine:
        await _fire_twice(engine, clock, "allow_all")
        runs = await runs_of(engine, "allow_all")
        assert [r.status for r in runs] == ["running", "running"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_overlap_cancel_previous_cancels_the_open_run_and_starts(
    make_engine: EngineFactory, store_url: str,
) -> None:
    clock = Clock()
    async with make_engine([gate], store=store_for(store_url, clock=clock)) as engine:
        await _fire_twice(engine, clock, "cancel_previous")
        first = engine.get_handle(fire_workflow_id("cancel_previous", T0 + 10))
        with pytest.raises(retold.WorkflowCancelledError):
            await first.result(timeout=30)
        second = await engine.get_handle(fire_workflow_id("cancel_previous", T0 + 20)).describe()
        assert second.status == "running"


async def test_pause_resume_trigger_and_delete(make_engine: EngineFactory) -> None:
    clock = Clock()
    async with make_engine([hello], store=store_for("memory://", clock=clock)) as engine:
        handle = await engine.schedule(retold.Schedule("ops", every=timedelta(seconds=10)), hello, "ann")
        await handle.pause()
        assert (await handle.describe()).paused
        clock.now += 35  # three fire times pass while paused
        workflow_id = await handle.trigger()  # a trigger fires even while paused
        assert workflow_id == fire_workflow_id("ops", T0 + 35) + "-manual"
        assert await engine.get_handle(workflow_id).result(timeout=30) == "hello ann x1"
        assert [r.workflow_id for r in await runs_of(engine, "ops")] == [workflow_id]
        await handle.resume()  # catchup_limit 1: only the latest missed fire (T0 + 30) starts
        runs = await until(lambda: _at_least(engine, "ops", 2), "the fire after resume")
        assert fire_workflow_id("ops", T0 + 30) in [r.workflow_id for r in runs]
        described = await handle.describe()
        assert (described.fires, described.skipped) == (2, 2)
        assert [s.id for s in await engine.list_schedules()] == ["ops"]
        await handle.delete()
        assert await engine.list_schedules() == []
        with pytest.raises(retold.ScheduleNotFoundError, match="no schedule with id 'ops'"):
            await handle.describe()
        with pytest.raises(retold.ScheduleNotFoundError):
            await engine.get_schedule("ops").pause()


@pytest.mark.parametrize(("options", "message"), [
    ({"cron": "61 * * * *"}, "cron expression '61 \\* \\* \\* \\*' is not valid"),
    ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "time zone 'Mars/Olympus' is not a known IANA time zone"),
    ({}, "needs exactly one of cron= and every="),
    ({"cron": "0 2 * * *", "every": timedelta(seconds=1)}, "needs exactly one of cron= and every="),
    ({"every": timedelta(0)}, "every must be positive"),
    ({"every": timedelta(seconds=1), "overlap": "sometimes"}, "overlap must be one of"),
    ({"every": timedelta(seconds=1), "catchup_limit": 0}, "catchup_limit must be an int from 1 to 10000"),
    ({"every": timedelta(microseconds=10)}, "every must be at least 0.001 seconds"),
])
async def test_bad_schedules_are_refused_and_nothing_is_written(
    make_engine: EngineFactory, options: dict[str, Any], message: str,
) -> None:
    async with make_engine([hello]) as engine:
        with pytest.raises(retold.ConfigurationError, match=message):
            await engine.schedule(retold.Schedule("bad", **options), hello, "ann")
        assert await engine.list_schedules() == []


async def test_a_taken_id_or_bad_arguments_write_nothing(make_engine: EngineFactory) -> None:
    async with make_engine([hello]) as engine:
        with pytest.raises(retold.InvalidArgumentsError):
            await engine.schedule(retold.Schedule("s", every=timedelta(seconds=5)), hello, 42)  # type: ignore[arg-type]
        assert await engine.list_schedules() == []
        await engine.schedule(retold.Schedule("s", every=timedelta(seconds=5)), hello, "ann")
        with pytest.raises(retold.ConfigurationError, match="a schedule with id 's' exists already"):
            await engine.schedule(retold.Schedule("s", cron="* * * * *"), hello, "bob")
        assert [s.every for s in await engine.list_schedules()] == [timedelta(seconds=5)]


async def test_jitter_delays_each_fire_by_an_amount_every_engine_agrees_on() -> None:
    from retold.engine import Runs, Schedules
    from retold.stores import Store

    clock = Clock()
    store: Store = store_for("memory://", clock=clock)
    await store.open()
    try:
        schedules = Schedules(store, Runs(store))
        spec = retold.Schedule("j", every=timedelta(seconds=100), jitter=timedelta(seconds=50))
        await schedules.create(spec, "sched_hello", b'["ann"]', "h")
        row = await store.transact(lambda tx: tx.schedule("j"))
        assert row is not None
        assert row.due_at is not None
        assert T0 + 100 < row.due_at < T0 + 150  # the fire at T0 + 100, delayed by its jitter
        clock.now = row.due_at - 0.001
        assert (await schedules.fire_due(10))[0] == 0
        clock.now = row.due_at
        assert (await schedules.fire_due(10))[0] == 1
        described = await schedules.describe("j")
        assert described.last_workflow_id == fire_workflow_id("j", T0 + 100)  # named by the fire time itself
        second = await store.transact(lambda tx: tx.schedule("j"))
        assert second is not None
        assert second.due_at is not None
        assert T0 + 200 <= second.due_at < T0 + 250
        assert second.due_at - (T0 + 200) != row.due_at - (T0 + 100)  # each fire has its own delay
    finally:
        await store.close()


# -- the fire loop reads, then writes only what is due ------------------------------------


async def test_polling_for_due_schedules_is_a_read(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from retold.engine import Runs, Schedules

    clock = Clock()
    store = store_for(store_url, clock=clock)
    await store.open()
    try:
        schedules = Schedules(store, Runs(store))
        writes = count_calls(store, "transact", monkeypatch)
        for _ in range(20):  # no schedule at all
            assert await schedules.fire_due(64) == (0, None)
        assert writes[0] == 0
        await schedules.create(retold.Schedule("tick", every=timedelta(seconds=10)), "sched_hello", b'["a"]', "h")
        writes[0] = 0
        for _ in range(20):  # one, not due yet
            assert await schedules.fire_due(64) == (0, T0 + 10)
        assert writes[0] == 0
        clock.now += 10
        assert await schedules.fire_due(64) == (1, T0 + 20)
        assert writes[0] == 1  # the fire: one transaction
    finally:
        await store.close()


async def test_describing_and_listing_schedules_are_reads(
    make_engine: EngineFactory, store_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    store = store_for(store_url, clock=clock)
    async with make_engine([hello], store=store) as engine:
        tick = await engine.schedule(retold.Schedule("tick", every=timedelta(seconds=10)), hello, "ann")
        await engine.schedule(retold.Schedule("nightly", cron="0 2 * * *", paused=True), hello, "bob")
        writes = count_calls(store, "transact", monkeypatch)
        described = await tick.describe(next_fires=2)
        assert [t.timestamp() for t in described.next_fires] == [T0 + 10, T0 + 20]
        assert (described.id, described.workflow, described.fires) == ("tick", "sched_hello", 0)
        listed = await engine.list_schedules(next_fires=1)
        assert [(d.id, d.paused) for d in listed] == [("nightly", True), ("tick", False)]
        assert listed[1].next_fires == described.next_fires[:1]
        assert [d.id for d in await engine.client.list_schedules()] == ["nightly", "tick"]
        with pytest.raises(retold.ScheduleNotFoundError):
            await engine.get_schedule("nope").describe()
        assert writes[0] == 0


async def test_describing_and_listing_schedules_do_not_wait_for_sqlite_write_lock(tmp_path: Any) -> None:
    import sqlite3

    from retold.engine import Runs, Schedules

    path = tmp_path / "locked.db"
    # A lock wait would take 5 s: reads that take less than 4 s did not wait, however loaded the machine.
    store = store_for(f"sqlite:///{path}?busy_timeout=5")
    await store.open()
    try:
        schedules = Schedules(store, Runs(store))
        await schedules.create(retold.Schedule("tick", every=timedelta(hours=1)), "sched_hello", b'["a"]', "h")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with anyio.fail_after(4):  # less than busy_timeout: neither waits for the lock
                assert (await schedules.describe("tick")).id == "tick"
                assert [d.id for d in await schedules.list()] == ["tick"]
        finally:
            other.execute("ROLLBACK")
            other.close()
    finally:
        await store.close()


async def test_polling_for_due_schedules_does_not_wait_for_sqlite_write_lock(tmp_path: Any) -> None:
    import sqlite3

    from retold.engine import Runs, Schedules

    path = tmp_path / "locked.db"
    store = store_for(f"sqlite:///{path}?busy_timeout=0.5")
    await store.open()
    try:
        schedules = Schedules(store, Runs(store))
        await schedules.create(retold.Schedule("tick", every=timedelta(hours=1)), "sched_hello", b'["a"]', "h")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            for _ in range(5):
                started, due = await schedules.fire_due(64)
                assert started == 0
                assert due is not None
        finally:
            other.execute("ROLLBACK")
            other.close()
    finally:
        await store.close()


# -- a buffered fire starts when the previous run closes -----------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_buffered_fire_starts_when_the_previous_run_closes_not_at_the_next_poll(
    make_engine: EngineFactory, store_url: str,
) -> None:
    url = "memory://" if store_url.startswith("memory") else store_url
    # A 30 s poll interval: only the close itself can start the buffered fire within the test's bound.
    async with make_engine([gate], url=url, poll_interval=30) as engine:
        handle = await engine.schedule(
            retold.Schedule("buf", every=timedelta(days=1), overlap="buffer_one"), gate, "g")
        first = await handle.trigger()
        assert first is not None
        assert await handle.trigger() is None  # the previous run is open: buffered
        buffered = (await handle.describe()).buffered
        assert buffered is not None
        await engine.get_handle(first).signal("go", "now")
        assert await engine.get_handle(first).result(timeout=10) == "g"
        runs = await until(lambda: _at_least(engine, "buf", 2), "the buffered fire", timeout=10)
        second = fire_workflow_id("buf", buffered.timestamp())
        assert [r.workflow_id for r in runs] == sorted([first, second])
        described = await handle.describe()
        assert (described.buffered, described.fires, described.last_workflow_id) == (None, 2, second)
        await engine.get_handle(second).signal("go", "again")  # and it runs, without a poll either
        assert await engine.get_handle(second).result(timeout=10) == "g"


# -- time skipping reaches schedules ---------------------------------------------------------


async def test_time_skipping_fires_an_hourly_schedule_at_each_hour() -> None:
    from retold.testing import WorkflowEnvironment

    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with WorkflowEnvironment([hello], start_time=start) as env:
        handle = await env.engine.schedule(retold.Schedule("hourly", cron="0 * * * *"), hello, "ann")
        await env.sleep(timedelta(minutes=30))
        assert await runs_of(env.engine, "hourly") == []
        await env.sleep(timedelta(hours=3))  # 00:30 -> 03:30: fires at 01:00, 02:00 and 03:00
        runs = await runs_of(env.engine, "hourly")
        hours = [start.timestamp() + 3600 * k for k in (1, 2, 3)]
        assert [r.workflow_id for r in runs] == [fire_workflow_id("hourly", t) for t in hours]
        assert [r.status for r in runs] == ["completed"] * 3
        for run, at in zip(runs, hours, strict=True):
            assert at <= run.started_at.timestamp() < at + 60  # started at its hour of virtual time
        described = await handle.describe()
        assert (described.fires, described.skipped) == (3, 0)
        assert env.skipped > 3 * 3600


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_close_does_not_wait_for_a_schedule_row_another_transaction_holds(
    make_engine: EngineFactory, postgres_url: str,
) -> None:
    """PostgreSQL: a fire locks the schedule, then its last run; a close locks the run, then the schedule.

    The close skips a schedule row held by another transaction (no deadlock,
    no wait); that transaction, which looks at the last run once it holds the
    row, starts the buffered fire.
    """
    import threading

    from retold.stores import Tx

    async with make_engine([gate], url=postgres_url, poll_interval=30) as engine:
        handle = await engine.schedule(
            retold.Schedule("held", every=timedelta(days=1), overlap="buffer_one"), gate, "g")
        first = await handle.trigger()
        assert first is not None
        assert await handle.trigger() is None
        buffered = (await handle.describe()).buffered
        assert buffered is not None
        locked, release = threading.Event(), threading.Event()
        schedules = engine.client._schedules()
        change = schedules._change("held", lambda tx, state: None)

        def hold(tx: Tx) -> None:
            assert tx.schedule("held") is not None  # locks the row
            locked.set()
            release.wait(60)
            change(tx)

        async with anyio.create_task_group() as group:
            group.start_soon(engine.store.transact, hold)
            await until(lambda: _true(locked.is_set()), "the row to be locked")
            await engine.get_handle(first).signal("go", "now")
            assert await engine.get_handle(first).result(timeout=20) == "g"  # the close did not wait
            assert len(await runs_of(engine, "held")) == 1
            release.set()
        runs = await until(lambda: _at_least(engine, "held", 2), "the buffered fire", timeout=10)
        assert fire_workflow_id("held", buffered.timestamp()) in [r.workflow_id for r in runs]
        assert (await handle.describe()).buffered is None


async def _true(value: bool) -> bool:
    return value


# -- changing a schedule in place --------------------------------------------------------------


async def test_update_changes_a_schedule_in_place_keeping_its_id_counters_and_runs(
    make_engine: EngineFactory, store_url: str,
) -> None:
    clock = Clock()
    async with make_engine([hello], store=store_for(store_url, clock=clock)) as engine:
        handle = await engine.schedule(retold.Schedule("edit", every=timedelta(seconds=10)), hello, "ann")
        clock.now += 10
        await until(lambda: runs_of(engine, "edit"), "the first fire")
        first = fire_workflow_id("edit", T0 + 10)
        assert await engine.get_handle(first).result(timeout=30) == "hello ann x1"
        # Every minute, at second 0 (the test clock starts at T0 = 1_000_000, i.e. second 40 of a minute).
        described = await handle.update(cron="* * * * *")
        assert (described.cron, described.every, described.fires, described.last_workflow_id) == (
            "* * * * *", None, 1, first)
        assert [t.timestamp() for t in described.next_fires[:2]] == [T0 + 20, T0 + 80]
        described = await handle.update_workflow(hello, "bob", n=3)  # typed as for engine.schedule
        assert described.workflow == "sched_hello"
        clock.now = T0 + 20
        runs = await until(lambda: _at_least(engine, "edit", 2), "the fire under the new cron")
        assert [r.workflow_id for r in runs] == [first, fire_workflow_id("edit", T0 + 20)]
        assert await engine.get_handle(runs[1].workflow_id).result(timeout=30) == "hello bob x3"
        described = await handle.update(paused=True, overlap="allow_all", catchup_limit=5,
                                        jitter=timedelta(seconds=1))
        assert (described.paused, described.overlap, described.catchup_limit, described.jitter) == (
            True, "allow_all", 5, timedelta(seconds=1))
        assert (described.fires, described.skipped) == (2, 0)
        assert [s.id for s in await engine.list_schedules()] == ["edit"]


async def test_an_interval_keeps_counting_from_its_start_when_changed(make_engine: EngineFactory) -> None:
    clock = Clock()
    async with make_engine([hello], store=store_for("memory://", clock=clock)) as engine:
        handle = await engine.schedule(retold.Schedule("iv", every=timedelta(seconds=10)), hello, "ann")
        clock.now += 25
        described = await handle.update(every=timedelta(seconds=20))
        assert [t.timestamp() for t in described.next_fires[:2]] == [T0 + 40, T0 + 60]
        described = await handle.update(every=timedelta(seconds=20), start_at=datetime.fromtimestamp(T0 + 30, UTC))
        assert [t.timestamp() for t in described.next_fires[:2]] == [T0 + 30, T0 + 50]


async def test_a_bad_update_changes_nothing(make_engine: EngineFactory) -> None:
    async with make_engine([hello], store=store_for("memory://", clock=Clock())) as engine:
        handle = await engine.schedule(retold.Schedule("s", every=timedelta(seconds=5)), hello, "ann")
        before = await handle.describe()
        with pytest.raises(retold.ConfigurationError, match="cron expression '61 \\* \\* \\* \\*' is not valid"):
            await handle.update(cron="61 * * * *")
        with pytest.raises(retold.ConfigurationError, match="needs exactly one of cron= and every="):
            await handle.update(every=None)
        with pytest.raises(retold.ConfigurationError, match="time zone 'Nowhere/Else'"):
            await handle.update(timezone="Nowhere/Else")
        with pytest.raises(retold.InvalidArgumentsError):
            await handle.update_workflow(hello, 42)  # type: ignore[arg-type]
        with pytest.raises(retold.ConfigurationError, match="has no field 'colour'"):
            await handle.update_by_name({"colour": "red"})
        assert await handle.describe() == before
        await handle.delete()
        with pytest.raises(retold.ScheduleNotFoundError):
            await handle.update(paused=True)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_paused_schedule_keeps_its_buffered_fire_until_resumed(make_engine: EngineFactory) -> None:
    async with make_engine([gate], url="memory://", poll_interval=30) as engine:
        handle = await engine.schedule(
            retold.Schedule("pb", every=timedelta(days=1), overlap="buffer_one"), gate, "g")
        first = await handle.trigger()
        assert first is not None
        assert await handle.trigger() is None
        await handle.pause()
        await engine.get_handle(first).signal("go", "now")
        assert await engine.get_handle(first).result(timeout=10) == "g"
        assert len(await runs_of(engine, "pb")) == 1
        assert (await handle.describe()).buffered is not None
        await handle.resume()
        await until(lambda: _at_least(engine, "pb", 2), "the buffered fire after the resume", timeout=10)
        assert (await handle.describe()).buffered is None
