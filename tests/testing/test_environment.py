"""WorkflowEnvironment: time skipping, fakes, signals and queries on a real engine."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import retold
from retold.testing import WorkflowEnvironment

pytestmark = pytest.mark.anyio

START = datetime(2030, 1, 1, tzinfo=UTC)
calls: list[str] = []


@retold.activity
async def send_email(to: str, template: str) -> str:
    raise AssertionError("the real send_email must not run in these tests")


@retold.activity(retry=retold.RetryPolicy(initial_interval=timedelta(hours=1), max_attempts=5, jitter=0))
def flaky_charge(amount: int) -> str:
    calls.append("charge")
    if len(calls) < 3:
        raise RuntimeError("card network down")
    return f"charged {amount}"


@retold.workflow
async def trial(user: str) -> dict[str, str]:
    started = retold.now()
    status = "trial running"
    retold.set_query_handler("status", lambda: status)
    await retold.sleep(timedelta(days=30))
    status = "trial over"
    sent = await retold.execute(send_email, user, "trial-over")
    return {"started": started.isoformat(), "ended": retold.now().isoformat(), "sent": sent}


@retold.workflow
async def confirm(user: str) -> str:
    status = "waiting"
    retold.set_query_handler("status", lambda: status)
    confirmed = await retold.wait_signal("confirmed", bool, timeout=timedelta(days=7))
    status = "done"
    if confirmed:
        return await retold.execute(send_email, user, "welcome")
    return await retold.execute(send_email, user, "reminder")


@retold.workflow
async def pay(amount: int) -> str:
    return await retold.execute(flaky_charge, amount)


@retold.workflow
async def reads_wall_clock() -> float:
    return time.time()


def fake_send(to: str, template: str) -> str:
    return f"{template}->{to}"


async def test_a_thirty_day_sleep_takes_milliseconds_and_now_is_virtual() -> None:
    async with WorkflowEnvironment([trial], [send_email], fakes={send_email: fake_send}, start_time=START) as env:
        began = time.monotonic()
        run = await env.start(trial, "ada")
        result = await run.result(timeout=10)
        elapsed = time.monotonic() - began
        assert result["sent"] == "trial-over->ada"
        started, ended = datetime.fromisoformat(result["started"]), datetime.fromisoformat(result["ended"])
        assert started - START < timedelta(seconds=5)
        assert ended - started >= timedelta(days=30)
        assert env.now() - START >= timedelta(days=30)
        assert env.skipped >= 30 * 86400 - 5
        history = await run.history()
    assert elapsed < 5
    assert [e.type for e in history][:3] == ["WorkflowStarted", "TimerStarted", "TimerFired"]


async def test_sleep_moves_the_clock_and_signals_arrive_in_time() -> None:
    async with WorkflowEnvironment([confirm], [send_email], fakes={"send_email": fake_send}) as env:
        run = await env.start(confirm, "bob")
        await env.sleep(timedelta(days=6))
        assert await run.query("status") == "waiting"  # the 7-day timeout has not passed
        await run.signal("confirmed", True)
        assert await run.result(timeout=10) == "welcome->bob"


async def test_waiting_for_the_result_skips_to_the_timeout() -> None:
    async with WorkflowEnvironment([confirm], [send_email], fakes={"send_email": fake_send}) as env:
        run = await env.start(confirm, "cy")
        before = env.now()
        assert await run.result(timeout=10) == "reminder->cy"
        assert env.now() - before >= timedelta(days=7)


async def test_without_auto_skip_only_sleep_moves_time() -> None:
    async with WorkflowEnvironment([confirm], [send_email], fakes={"send_email": fake_send}, auto_skip=False) as env:
        run = await env.start(confirm, "dee")
        with pytest.raises(TimeoutError):
            await run.result(timeout=0.3)
        await env.sleep(timedelta(days=8))
        assert await run.result(timeout=10) == "reminder->dee"


async def test_retry_backoff_is_skipped_too(tmp_path: Path) -> None:
    calls.clear()
    url = f"sqlite:///{tmp_path / 'env.db'}"
    async with WorkflowEnvironment([pay], [flaky_charge], url=url) as env:
        run = await env.start(pay, 42)
        assert await run.result(timeout=10) == "charged 42"
        assert env.skipped >= 3 * 3600 - 5  # 1 h then 2 h of backoff
    assert calls == ["charge"] * 3
    assert (tmp_path / "env.db").stat().st_size > 0


async def test_strict_mode_fails_a_workflow_that_reads_the_wall_clock() -> None:
    async with WorkflowEnvironment([reads_wall_clock], max_workflow_task_attempts=2) as env:
        run = await env.start(reads_wall_clock)
        with pytest.raises(retold.WorkflowFailedError, match=r"time\.time\(\)"):
            await run.result(timeout=10)


async def test_bad_configuration_is_refused() -> None:
    with pytest.raises(retold.ConfigurationError, match="timezone-aware"):
        WorkflowEnvironment(start_time=datetime(2030, 1, 1))
    with pytest.raises(retold.ConfigurationError, match="fake for activity 'nope'"):
        WorkflowEnvironment(fakes={"nope": fake_send})
    async with WorkflowEnvironment() as env:
        with pytest.raises(ValueError, match=">= 0"):
            await env.sleep(-1)
        await anyio.sleep(0)


async def test_cancel_reaches_a_run_waiting_in_virtual_time() -> None:
    async with WorkflowEnvironment([trial], [send_email], fakes={send_email: fake_send}, auto_skip=False) as env:
        run = await env.start(trial, "eve")
        await env.sleep(timedelta(days=1))
        assert await run.query("status") == "trial running"
        await run.cancel("changed plans")
        with pytest.raises(retold.WorkflowCancelledError):
            await run.result(timeout=10)
        assert (await run.history())[-1].type == "WorkflowCancelled"
