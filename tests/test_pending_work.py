"""Stuck work is visible: describe() lists what a run waits for, and says when nothing will ever run it.

Every test runs on each store (memory, a SQLite file, PostgreSQL) and both
async backends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import pytest

import retold
from tests.conftest import Clock

pytestmark = pytest.mark.anyio

T = TypeVar("T")


@retold.activity
async def not_hosted(x: int) -> int:
    return x


@retold.activity(task_queue="gpu")
async def on_gpu(x: int) -> int:
    return x


@retold.activity(retry=retold.RetryPolicy(initial_interval=timedelta(minutes=5), max_attempts=3))
async def flaky(x: int) -> int:
    raise ValueError(f"boom {x}")


GATE = threading.Event()


@retold.activity
def held(x: int) -> int:
    GATE.wait(30)
    return x


@retold.workflow
async def waits_for_missing(x: int) -> int:
    return await retold.execute(not_hosted, x)


@retold.workflow
async def waits_for_gpu(x: int) -> int:
    return await retold.execute(on_gpu, x)


@retold.workflow
async def retries(x: int) -> int:
    return await retold.execute(flaky, x)


@retold.workflow
async def holds(x: int) -> int:
    return await retold.execute(held, x)


@retold.workflow
async def naps() -> str:
    await retold.sleep(timedelta(hours=1))
    return "rested"


@retold.workflow
async def waits_for_go() -> str:
    await retold.wait_signal("go")
    return "went"


@retold.workflow
async def parent() -> str:
    return await retold.execute_child(waits_for_go.with_options(id="the-child"))


async def until(read: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 20.0) -> T:
    """Read until ``check`` holds, or fail after ``timeout`` seconds showing the last value read."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"condition not met; last read {value!r}"
        await anyio.sleep(0.02)


@asynccontextmanager
async def engine(url: str, *, store: Any = None, **kwargs: Any) -> AsyncIterator[retold.Engine]:
    kwargs.setdefault("poll_interval", 0.05)
    options = {"store": store} if store is not None else {}
    async with retold.Engine(url, **options, **kwargs) as opened:
        yield opened


def shared(url: str, first: retold.Engine) -> Any:
    """The store object a second engine shares with ``first`` (memory:// lives in one object)."""
    return first.store if url.startswith("memory:") else None


async def pending(run: retold.RunHandle[Any]) -> retold.PendingWork:
    described = await run.describe()
    assert described.pending is not None
    return described.pending


async def test_an_activity_no_running_engine_hosts_is_named_and_logged_once(
    store_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="retold.engine")
    async with engine(store_url, workflows=[waits_for_missing]) as first:
        run = await first.start(waits_for_missing, 1)
        other = await first.start(waits_for_missing, 2)
        work = await until(lambda: pending(run), lambda w: bool(w.activities))
        [activity] = work.activities
        assert (activity.activity, activity.queue, activity.attempt, activity.hosted) == (
            "not_hosted", "default", 1, False)
        assert activity.worker is None
        assert activity.started_at is None
        assert activity.next_retry_at is None
        assert work.waiting_for[0] == "waiting for activity 'not_hosted' on queue 'default': no running worker hosts it"

        def warnings() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "retold.engine" and "no running worker hosts" in r.message]

        async def logged() -> list[logging.LogRecord]:
            return warnings()

        [record] = await until(logged, bool)
        assert record.levelno == logging.WARNING
        assert "'not_hosted' on queue 'default'" in record.message
        assert str(run.run_id) in record.message
        with pytest.raises(retold.ResultTimeoutError) as caught:
            await run.result(timeout=0.2)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.run_id == run.run_id
        assert str(run.run_id) in str(caught.value)
        assert "waiting for activity 'not_hosted' on queue 'default': no running worker hosts it" in str(caught.value)
        assert len(warnings()) == 1  # the second run's activity is the same type: no second line
        # An engine that hosts it starts: the runs go on, and finish.
        async with engine(store_url, store=shared(store_url, first), activities=[not_hosted]):
            assert await run.result(timeout=30) == 1
            assert await other.result(timeout=30) == 2
        assert (await pending(run)).waiting_for == ()


async def test_an_activity_hosted_only_on_another_queue_is_not_hosted(store_url: str) -> None:
    async with engine(store_url, workflows=[waits_for_gpu]) as first:
        # It hosts the activity, but serves only the default queue.
        async with engine(store_url, store=shared(store_url, first), activities=[not_hosted],
                          activity_concurrency={"default": 4}) as other:
            assert on_gpu.options.task_queue == "gpu"
            run = await first.start(waits_for_gpu, 1)
            work = await until(lambda: pending(run), lambda w: bool(w.activities))
            assert not work.activities[0].hosted
            assert other.hosting.hosting.queues == ("default",)
        async with engine(store_url, store=shared(store_url, first), activities=[on_gpu]):
            assert await run.result(timeout=30) == 1


async def test_a_retrying_activity_shows_its_attempts_failure_and_next_retry(
    store_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="retold.activity")
    async with engine(store_url, workflows=[retries], activities=[flaky]) as opened:
        run = await opened.start(retries, 7)
        work = await until(lambda: pending(run), lambda w: bool(w.activities) and w.activities[0].attempt == 2)
        [activity] = work.activities
        assert activity.max_attempts == 3
        assert activity.hosted
        assert activity.last_failure == "ValueError: boom 7"
        assert activity.next_retry_at is not None
        wait = (activity.next_retry_at - activity.scheduled_at).total_seconds()
        assert 200 < wait < 400  # five minutes, with jitter
        assert activity.worker is None
        assert activity.started_at is None
        assert work.waiting_for[0].startswith("waiting for activity 'flaky' on queue 'default': attempt 2 of 3 due at ")
        assert work.waiting_for[0].endswith("; the last attempt failed: ValueError: boom 7")
        # The failed attempt was logged at WARNING, with the run, the activity and the error.
        [record] = [r for r in caplog.records if r.name == "retold.activity"]
        assert record.levelno == logging.WARNING
        for part in ("flaky", str(run.run_id), "attempt 1 failed", "ValueError: boom 7"):
            assert part in record.getMessage()


async def test_a_running_attempt_shows_its_worker_and_start(store_url: str) -> None:
    GATE.clear()
    try:
        async with engine(store_url, workflows=[holds], activities=[held]) as opened:
            run = await opened.start(holds, 3)
            work = await until(lambda: pending(run),
                               lambda w: bool(w.activities) and w.activities[0].worker is not None)
            [activity] = work.activities
            assert activity.worker == opened.worker_id
            assert activity.started_at is not None
            assert activity.started_at >= activity.scheduled_at
            assert f"attempt 1 running on {opened.worker_id} since " in work.waiting_for[0]
            GATE.set()
            assert await run.result(timeout=30) == 3
    finally:
        GATE.set()


async def test_a_timer_shows_when_it_is_due(store_url: str) -> None:
    async with engine(store_url, workflows=[naps]) as opened:
        run = await opened.start(naps)
        work = await until(lambda: pending(run), lambda w: bool(w.timers))
        [timer] = work.timers
        started = (await run.describe()).started_at
        assert 3590 < (timer.fire_at - started).total_seconds() < 3610
        assert work.waiting_for == (f"waiting for timer (event {timer.seq}) due at "
                                    f"{timer.fire_at.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",)
        with pytest.raises(retold.ResultTimeoutError, match="waiting for timer"):
            await run.result(timeout=0.1)


async def test_an_open_child_is_listed_until_it_closes(store_url: str) -> None:
    async with engine(store_url, workflows=[parent, waits_for_go]) as opened:
        run = await opened.start(parent)
        work = await until(lambda: pending(run), lambda w: bool(w.children))
        [child] = work.children
        assert (child.workflow, child.workflow_id) == ("waits_for_go", "the-child")
        assert child.seq is not None
        assert work.waiting_for == (f"waiting for child workflow 'waits_for_go' (workflow id 'the-child', "
                                    f"run {child.run_id})",)
        kid = opened.get_handle("the-child")
        idle = ("waiting for a signal or a cancel request (no activity, timer or child is pending)",)
        await until(lambda: pending(kid), lambda w: w.waiting_for == idle)  # once its first step is done
        await kid.signal("go")
        assert await run.result(timeout=30) == "went"
        assert (await pending(run)) == retold.PendingWork()


async def test_signals_not_processed_are_listed_in_order(store_url: str) -> None:
    # No running engine hosts the workflow: its signals wait in the history.
    async with engine(store_url, workflows=[naps]) as opened:
        run = await opened.start("waits_for_go", id="buffered")
        await run.signal("hello", 1)
        await run.signal("go", 2)
        work = await pending(run)
        assert [(s.name, s.seq) for s in work.signals] == [("hello", 2), ("go", 3)]
        assert all(s.received_at is not None for s in work.signals)
        assert work.waiting_for == (
            "waiting for workflow 'waits_for_go' to take its next step: no running worker hosts it",
            "2 signals not processed yet: 'hello', 'go'",
        )
        async with engine(store_url, store=shared(store_url, opened), workflows=[waits_for_go]):
            assert await run.result(timeout=30) == "went"
        assert await pending(run) == retold.PendingWork()


async def test_the_engine_asked_counts_itself_even_when_its_registration_looks_stale(store_url: str) -> None:
    clock = Clock()  # a test clock that jumps: the engine's registration looks run out until it renews it
    async with engine(store_url, workflows=[retries], activities=[flaky], clock=clock, lease=5.0) as opened:
        run = await opened.start(retries, 1)
        await until(lambda: pending(run), lambda w: bool(w.activities) and w.activities[0].attempt == 2)
        clock.now += 20  # past the registration's three leases, well before the retry (five minutes)
        assert [w.worker_id for w in await opened.store.live_workers()] in ([], [opened.worker_id])
        [activity] = (await pending(run)).activities
        assert activity.hosted
        assert "no running worker hosts it" not in activity.waiting_for()
