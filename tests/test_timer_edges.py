"""Timer edges, decided and pinned: ``sleep(0)``, a timer cancelled at once, and the timer loop's polls.

- ``retold.sleep(0)`` (and ``asyncio.sleep(0)``) records no timer: it lets the
  other ready tasks run, as in asyncio.
- A timer started and cancelled in the same activation records both
  ``TimerStarted`` and ``TimerCancelled``.
- The timer loop learns what is due by a read: an idle poll opens no write
  transaction (no SQLite write lock, no PostgreSQL transaction, no NATS
  operation); the transaction that fires checks again, so a timer fired by
  another engine or cancelled since the read is not fired twice.

Live runs and replays agree on the first two.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import retold
from retold.engine import Runs
from retold.history import events as ev
from retold.stores import StartRequest, Store
from retold.testing import assert_deterministic, replay
from tests.conftest import Clock, EngineFactory, count_calls, store_for

pytestmark = pytest.mark.anyio


@retold.workflow
async def yields() -> list[str]:
    order: list[str] = []

    async def other() -> None:
        order.append("other ran")

    task = asyncio.ensure_future(other())
    await retold.sleep(0)  # lets `other` run, records nothing
    order.append("after sleep(0)")
    await asyncio.sleep(0)
    await task
    return order


@retold.workflow
async def cancelled_at_once() -> str:
    done = asyncio.get_running_loop().create_future()
    done.set_result("ready")
    # The deadline's timer is started, then cancelled when the await returns
    # at once: both events are recorded.
    value = await asyncio.wait_for(done, timeout=30)
    handle = asyncio.get_running_loop().call_later(60, lambda: None)
    handle.cancel()
    return str(value)


async def test_sleep_zero_records_no_timer_and_yields_and_replays() -> None:
    async with retold.Engine("memory://", workflows=[yields]) as engine:
        run = await engine.start(yields.with_options(id="yields"))
        with anyio.fail_after(60):
            assert await run.result() == ["other ran", "after sleep(0)"]
        history = await run.history()
    assert [type(e).__name__ for e in history.events] == ["WorkflowStarted", "WorkflowCompleted"]
    assert replay(yields, history).finished


async def test_a_timer_cancelled_in_the_activation_that_started_it_is_recorded_and_replays() -> None:
    async with retold.Engine("memory://", workflows=[cancelled_at_once]) as engine:
        run = await engine.start(cancelled_at_once.with_options(id="at-once"))
        with anyio.fail_after(60):
            assert await run.result() == "ready"
        history = await run.history()
    started = [e.seq for e in history.events if isinstance(e, ev.TimerStarted)]
    cancelled = [e.started for e in history.events if isinstance(e, ev.TimerCancelled)]
    assert len(started) == 2
    assert cancelled == started
    assert replay(cancelled_at_once, history).finished


def test_both_edges_are_deterministic_under_crashes() -> None:
    assert_deterministic(yields, max_examples=10)
    assert_deterministic(cancelled_at_once, max_examples=10)


# -- the timer loop reads, then writes only when something is due --------------------------


@retold.workflow(name="timer_naps")
async def naps(seconds: float) -> str:
    await retold.sleep(seconds)
    return "woke"


async def _until(check: Any, what: str, timeout: float = 30.0) -> None:
    """Wait until ``await check()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        while not await check():
            await anyio.sleep(0.01)
        return
    pytest.fail(f"timed out waiting for {what}")


async def _idle_polls_write_nothing(
    make_engine: EngineFactory, store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run sleeps an hour: the engine's timer loop polls many times with no write; then the timer fires on time."""
    polls = count_calls(store, "timers_due", monkeypatch)
    writes = count_calls(store, "transact", monkeypatch)
    async with make_engine([naps], store=store, poll_interval=0.01) as engine:
        run = await engine.start(naps.with_options(id="naps"), 3600.0)

        async def sleeping() -> bool:
            return "TimerStarted" in [e.type for e in await run.history()]

        await _until(sleeping, "the timer to be recorded")
        writes[0] = 0  # the start and the step that started the timer are done (counted before they commit)
        seen = polls[0]

        async def polled() -> bool:
            return polls[0] >= seen + 30

        await _until(polled, "30 polls of the timer loop")
        assert writes[0] == 0  # 30 idle polls, not one write transaction
        clock.now += 3600.0
        assert await run.result(timeout=30) == "woke"
        fired = [e for e in (await run.history()).events if isinstance(e, ev.TimerFired)]
        assert [e.at for e in fired] == [clock.now]  # at its due time (the clock did not move since)
        assert writes[0] >= 1  # the fire, and the step after it


async def test_idle_timer_polls_open_no_write_transaction(
    make_engine: EngineFactory, store_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    await _idle_polls_write_nothing(make_engine, store_for(store_url, clock=clock), clock, monkeypatch)


async def test_idle_timer_polls_open_no_write_transaction_on_nats(
    make_engine: EngineFactory, nats_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from retold.stores.nats import NatsStore

    clock = Clock()
    await _idle_polls_write_nothing(make_engine, NatsStore(nats_url, clock=clock), clock, monkeypatch)


async def test_a_timer_that_comes_due_during_the_timer_loops_pass_fires_without_waiting_a_poll(
    tmp_path: Any,
) -> None:
    # The loop looks for due timers, then reads when the next thing is due. A timer that comes due
    # between the two (a pass slowed by a loaded machine; here the clock moves) was taken for a
    # retry or a lease and the loop slept a whole poll interval (60 s) with the timer unfired.
    clock = Clock()
    store = store_for(f"sqlite:///{tmp_path / 'store.db'}", clock=clock)
    original = store.next_wakeup
    moved: list[float] = []

    async def slow_pass() -> float | None:
        due = await original()
        if due is not None and due > clock.now and not moved:
            clock.now = due + 1.0  # the timer comes due while the pass runs
            moved.append(due)
        return due

    store.next_wakeup = slow_pass  # type: ignore[method-assign]
    async with retold.Engine(store=store, workflows=[naps], poll_interval=60.0) as engine:
        run = await engine.start(naps, 600.0)
        assert await run.result(timeout=10) == "woke"
    assert moved


async def test_idle_timer_polls_do_not_wait_for_the_sqlite_write_lock(tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "locked.db"
    clock = Clock()
    # A lock wait would take 5 s: polls that take less than 4 s did not wait, however loaded the machine.
    store = store_for(f"sqlite:///{path}?busy_timeout=5", clock=clock)
    await store.open()
    try:
        runs = Runs(store)
        record, _ = await runs.start(StartRequest("timer_naps", "w", b"[60]", "h"))
        assert await store.claim_workflow_tasks("me", ["timer_naps"], 1, 30.0) == [record.run_id]
        await runs.commit_workflow_task(record.run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=60.0)])
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with anyio.fail_after(4):  # less than busy_timeout: no poll waits for the lock
                for _ in range(5):
                    assert await runs.fire_timers(256) == 0
        finally:
            other.execute("ROLLBACK")
            other.close()
        clock.now += 60.0
        assert await runs.fire_timers(256) == 1
    finally:
        await store.close()


async def _started_with_timer(store: Store, workflow_id: str, duration: float) -> str:
    runs = Runs(store)
    record, _ = await runs.start(StartRequest("timer_naps", workflow_id, b"[1]", "h"))
    assert await store.claim_workflow_tasks("me", ["timer_naps"], 1, 30.0) == [record.run_id]
    await runs.commit_workflow_task(record.run_id, "me", 1, [ev.TimerStarted(seq=2, at=0, duration=duration)])
    return record.run_id


async def test_a_timer_cancelled_between_the_read_and_the_write_is_not_fired(
    store_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    store = store_for(store_url, clock=clock)
    await store.open()
    try:
        run_id = await _started_with_timer(store, "w", 10.0)
        clock.now += 10.0
        read = store.timers_due

        async def then_terminated(limit: int) -> tuple[list[tuple[str, int]], list[int]]:
            found = await read(limit)
            assert found == ([(run_id, 2)], [])
            await Runs(store).terminate(run_id, "meanwhile")  # its close drops the timer
            return found

        monkeypatch.setattr(store, "timers_due", then_terminated)
        assert await Runs(store).fire_timers(256) == 0
        _, history = await store.load(run_id, 0)
        assert [e.type for e in history] == ["WorkflowStarted", "TimerStarted", "WorkflowTerminated"]
    finally:
        await store.close()


async def test_two_engines_that_both_read_a_due_timer_fire_it_once(
    shared_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    a, b = store_for(shared_url, clock=clock), store_for(shared_url, clock=clock)
    await a.open()
    await b.open()
    try:
        run_id = await _started_with_timer(a, "w", 10.0)
        clock.now += 10.0
        both_read = anyio.Event()
        readers: list[str] = []

        def after_both_read(store: Store, name: str) -> None:
            read = store.timers_due

            async def wrapped(limit: int) -> tuple[list[tuple[str, int]], list[int]]:
                found = await read(limit)
                readers.append(name)
                if len(readers) == 2:
                    both_read.set()
                await both_read.wait()  # neither writes before both have seen the timer due
                return found

            monkeypatch.setattr(store, "timers_due", wrapped)

        after_both_read(a, "a")
        after_both_read(b, "b")
        fired: list[int] = []

        async def fire(store: Store) -> None:
            fired.append(await Runs(store).fire_timers(256))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(fire, a)
                tg.start_soon(fire, b)
        assert sorted(fired) == [0, 1]
        _, history = await a.load(run_id, 0)
        assert [e.type for e in history].count("TimerFired") == 1
    finally:
        await b.close()
        await a.close()
