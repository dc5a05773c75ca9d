"""Activities: retries, timeouts, heartbeats, threads, queues, idempotency keys."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import timedelta

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

FAST = retold.RetryPolicy(initial_interval=timedelta(milliseconds=10), jitter=0)
attempts: Counter[str] = Counter()
keys: list[str] = []


@pytest.fixture(autouse=True)
def _reset_counters() -> None:
    attempts.clear()
    keys.clear()


@retold.activity(retry=FAST)
async def flaky(tag: str, failures: int) -> str:
    info = retold.activity_info()
    keys.append(info.idempotency_key)
    attempts[tag] += 1
    if info.attempt <= failures:
        raise ConnectionError(f"{tag} attempt {info.attempt} failed")
    return f"{tag} ok on attempt {info.attempt}"


@retold.workflow
async def call_flaky(tag: str, failures: int) -> str:
    return await retold.execute(flaky, tag, failures)


async def test_retries_until_success_with_one_idempotency_key(make_engine: EngineFactory) -> None:
    keys.clear()
    async with make_engine([call_flaky], [flaky]) as engine:
        run = await engine.start(call_flaky.with_options(id="retry-wf"), "t1", 2)
        assert await run.result(timeout=10) == "t1 ok on attempt 3"
        history = await run.history()
    assert attempts["t1"] == 3
    assert len(set(keys)) == 1
    assert keys[0].startswith("retry-wf/")
    completed = [e for e in history if isinstance(e, ev.ActivityCompleted)]
    assert [c.attempt for c in completed] == [3]
    assert not any(isinstance(e, ev.ActivityFailed) for e in history)


@retold.workflow
async def call_flaky_limited(tag: str, failures: int) -> str:
    try:
        return await retold.execute(flaky.with_options(retry=retold.RetryPolicy(
            max_attempts=2, initial_interval=timedelta(milliseconds=10))), tag, failures)
    except retold.ActivityError as err:
        cause = err.__cause__
        assert isinstance(cause, retold.ApplicationError)
        return f"gave up: {cause.type}: {cause.message}"


async def test_max_attempts_then_activity_error(make_engine: EngineFactory) -> None:
    async with make_engine([call_flaky_limited], [flaky]) as engine:
        run = await engine.start(call_flaky_limited, "t2", 5)
        assert await run.result(timeout=10) == "gave up: ConnectionError: t2 attempt 2 failed"
        failed = [e for e in await run.history() if isinstance(e, ev.ActivityFailed)]
    assert attempts["t2"] == 2
    assert failed[0].attempt == 2
    assert failed[0].failure["type"] == "ConnectionError"


class PaymentDeclinedError(Exception):
    pass


@retold.activity(retry=retold.RetryPolicy(non_retryable_error_types=["PaymentDeclinedError"]))
def declined(card: str) -> str:
    attempts["declined"] += 1
    raise PaymentDeclinedError(f"card {card} declined")


@retold.activity
def hard_stop(card: str) -> str:
    attempts["hard_stop"] += 1
    raise retold.ApplicationError("do not retry me", non_retryable=True)


@retold.workflow
async def pay(card: str) -> list[str]:
    out = []
    for act in (declined, hard_stop):
        try:
            await retold.execute(act, card)
        except retold.ActivityError as err:
            out.append(str(err.__cause__))
    return out


async def test_non_retryable_errors_stop_at_once(make_engine: EngineFactory) -> None:
    attempts["declined"] = attempts["hard_stop"] = 0
    async with make_engine([pay], [declined, hard_stop]) as engine:
        run = await engine.start(pay, "4242")
        result = await run.result(timeout=10)
    assert result == [
        "tests.test_activities.PaymentDeclinedError: card 4242 declined", "do not retry me",
    ]
    assert attempts["declined"] == 1
    assert attempts["hard_stop"] == 1


@retold.activity(start_to_close=timedelta(milliseconds=200),
                 retry=retold.RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10)))
async def too_slow() -> str:
    attempts["too_slow"] += 1
    await anyio.sleep(5)
    return "never"


@retold.activity(schedule_to_close=timedelta(milliseconds=300),
                 retry=retold.RetryPolicy(initial_interval=timedelta(milliseconds=50), jitter=0))
async def always_fails() -> str:
    raise RuntimeError("nope")


@retold.workflow
async def timeouts() -> list[str]:
    out = []
    for act in (too_slow, always_fails):
        try:
            await retold.execute(act)
        except retold.ActivityError as err:
            out.append(f"{err.timed_out} {err.__cause__}")
    return out


async def test_start_to_close_and_schedule_to_close(make_engine: EngineFactory) -> None:
    attempts["too_slow"] = 0
    async with make_engine([timeouts], [too_slow, always_fails]) as engine:
        run = await engine.start(timeouts)
        first, second = await run.result(timeout=10)
        history = await run.history()
    assert first == "True TimeoutError: start_to_close timeout"
    assert attempts["too_slow"] == 2
    assert second == "True TimeoutError: schedule_to_close timeout"
    timed_out = [e for e in history if isinstance(e, ev.ActivityTimedOut)]
    assert [e.kind for e in timed_out] == ["start_to_close", "schedule_to_close"]
    assert timed_out[0].attempt == 2


@retold.activity(schedule_to_close=timedelta(milliseconds=300))
async def overstays() -> str:
    attempts["overstays"] += 1
    await anyio.sleep(60)  # far beyond the test's bound: only the cut ends it in time
    return "too late"


@retold.workflow
async def cut_off() -> str:
    try:
        return await retold.execute(overstays)
    except retold.ActivityError as err:
        return f"{err.timed_out} {err.__cause__}"


async def test_schedule_to_close_cuts_a_running_attempt(make_engine: EngineFactory) -> None:
    async with make_engine([cut_off], [overstays]) as engine:
        run = await engine.start(cut_off)
        with anyio.fail_after(20):  # the attempt would run 60 s if it were not cut at 0.3 s
            assert await run.result() == "True TimeoutError: schedule_to_close timeout"
    assert attempts["overstays"] == 1


class NotATimeoutError(TimeoutError):
    pass


@retold.activity(start_to_close=timedelta(seconds=10), retry=retold.RetryPolicy(max_attempts=1))
async def raises_its_own_timeout() -> str:
    raise NotATimeoutError("the upstream API timed out")


@retold.workflow
async def own_timeout() -> str:
    try:
        return await retold.execute(raises_its_own_timeout)
    except retold.ActivityError as err:
        return f"{err.timed_out} {err.__cause__}"


async def test_an_activitys_own_timeout_error_is_a_plain_failure(make_engine: EngineFactory) -> None:
    async with make_engine([own_timeout], [raises_its_own_timeout]) as engine:
        run = await engine.start(own_timeout)
        assert await run.result(timeout=10) == (
            "False tests.test_activities.NotATimeoutError: the upstream API timed out"
        )


# The margins are wide (heartbeats every 50 ms against a 1 s timeout) so that a
# loaded CI machine pausing the event loop cannot make the chatty activity miss one.
@retold.activity(heartbeat_timeout=timedelta(seconds=1),
                 retry=retold.RetryPolicy(max_attempts=1))
async def silent() -> str:
    await anyio.sleep(8)
    return "never"


@retold.activity(heartbeat_timeout=timedelta(seconds=1),
                 retry=retold.RetryPolicy(max_attempts=1))
async def chatty() -> str:
    for i in range(30):
        retold.heartbeat(i)
        await anyio.sleep(0.05)
    return "done talking"


@retold.workflow
async def heartbeats() -> list[str]:
    out = [await retold.execute(chatty)]
    try:
        await retold.execute(silent)
    except retold.ActivityError as err:
        out.append(str(err.__cause__))
    return out


async def test_heartbeat_timeout(make_engine: EngineFactory) -> None:
    async with make_engine([heartbeats], [chatty, silent]) as engine:
        run = await engine.start(heartbeats)
        result = await run.result(timeout=10)
    assert result[0] == "done talking"
    assert result[1] == "TimeoutError: heartbeat timeout"


@retold.activity
def blocking(seconds: float) -> str:
    time.sleep(seconds)  # fine in an activity: it runs in a worker thread
    return threading.current_thread().name


@retold.workflow
async def run_blocking() -> str:
    return await retold.execute(blocking, 0.01)


async def test_plain_function_activities_run_in_threads(make_engine: EngineFactory) -> None:
    async with make_engine([run_blocking], [blocking]) as engine:
        run = await engine.start(run_blocking)
        thread = await run.result(timeout=10)
    assert thread != threading.current_thread().name


running = 0
peak = 0


@retold.activity(task_queue="narrow")
async def narrow(i: int) -> int:
    global running, peak
    running += 1
    peak = max(peak, running)
    await anyio.sleep(0.05)
    running -= 1
    return i


@retold.workflow
async def fan_out(n: int) -> int:
    import asyncio

    return sum(await asyncio.gather(*(retold.execute(narrow, i) for i in range(n))))


async def test_per_queue_concurrency_limit(make_engine: EngineFactory) -> None:
    global peak
    peak = 0
    async with make_engine([fan_out], [narrow], activity_concurrency={"narrow": 2}) as engine:
        run = await engine.start(fan_out, 8)
        assert await run.result(timeout=10) == sum(range(8))
    assert peak == 2


async def test_activity_called_directly_outside_a_workflow() -> None:
    assert await charge_direct("x") == "direct x"
    assert blocking(0) == threading.current_thread().name


@retold.activity
async def charge_direct(x: str) -> str:
    return f"direct {x}"


HOG_RELEASED: list[bool] = []


@retold.activity(task_queue="single")
async def hog() -> str:
    # Holds the queue's only slot until the test has seen the queued task time
    # out (not for a fixed time that a slow machine could outlast).
    with anyio.move_on_after(30):
        while not HOG_RELEASED:
            await anyio.sleep(0.01)
    return "hogged"


@retold.activity(task_queue="single", schedule_to_close=timedelta(milliseconds=300))
async def queued_too_long() -> str:
    attempts["queued_too_long"] += 1
    return "ran"


@retold.workflow
async def starved() -> list[str]:
    first = asyncio.ensure_future(retold.execute(hog))
    await asyncio.sleep(0.05)
    try:
        second = await retold.execute(queued_too_long)
    except retold.ActivityError as err:
        second = f"{err.timed_out} {err.__cause__}"
    return [await first, second]


async def test_a_task_waiting_past_its_deadline_times_out(make_engine: EngineFactory) -> None:
    HOG_RELEASED.clear()
    async with make_engine([starved], [hog, queued_too_long], activity_concurrency={"single": 1}) as engine:
        run = await engine.start(starved)
        with anyio.fail_after(10):
            while "ActivityTimedOut" not in [e.type for e in await run.history()]:
                await anyio.sleep(0.02)
        HOG_RELEASED.append(True)
        assert await run.result(timeout=10) == ["hogged", "True TimeoutError: schedule_to_close timeout"]
    assert attempts["queued_too_long"] == 0  # it never started


def test_retry_delays_back_off_cap_and_jitter() -> None:
    policy = retold.RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff_coefficient=2, maximum_interval=timedelta(seconds=5),
        jitter=0,
    )
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    jittered = retold.RetryPolicy(initial_interval=timedelta(seconds=1), jitter=0.2)
    delays = {jittered.delay(3) for _ in range(200)}
    assert min(delays) >= 4 * 0.8
    assert max(delays) <= 4 * 1.2
    assert len(delays) > 100  # spread, not a constant
    limited = retold.RetryPolicy(max_attempts=3, non_retryable_error_types=["PaymentDeclinedError"])
    assert limited.retries_error("ConnectionError", 2)
    assert not limited.retries_error("ConnectionError", 3)
    assert not limited.retries_error("shop.PaymentDeclinedError", 1)
