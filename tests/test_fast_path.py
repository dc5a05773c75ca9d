"""The same-process fast path: a commit leases its new activities to its own engine."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import retold
from retold.stores.sql import SqlStore
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

running = 0
peak = 0


@retold.activity
async def work(i: int) -> int:
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        await anyio.sleep(0.02)
    finally:
        running -= 1
    return i


@retold.workflow
async def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await retold.execute(work, i)
    return total


@retold.workflow
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(retold.execute(work, i) for i in range(n))))


class CountingStore(SqlStore):
    """Counts the activity tasks handed out by claims (the slow path)."""

    claimed = 0

    async def claim_activity_tasks(self, *args: Any, **kwargs: Any) -> Any:
        tasks = await super().claim_activity_tasks(*args, **kwargs)
        CountingStore.claimed += len(tasks)
        return tasks


async def test_activities_scheduled_here_run_without_a_claim(make_engine: EngineFactory, tmp_path: Any) -> None:
    CountingStore.claimed = 0
    store = CountingStore(f"sqlite:///{tmp_path / 'fast.db'}")
    async with make_engine([chain], [work], store=store, poll_interval=30) as engine:
        run = await engine.start(chain, 20)
        assert await run.result(timeout=20) == sum(range(20))
    assert CountingStore.claimed == 0  # every one of the 20 came leased with its commit


async def test_the_fast_path_keeps_the_concurrency_limit(make_engine: EngineFactory, tmp_path: Any) -> None:
    global peak
    peak = 0
    CountingStore.claimed = 0
    store = CountingStore(f"sqlite:///{tmp_path / 'limit.db'}")
    async with make_engine([fan_out], [work], store=store, activity_concurrency=2) as engine:
        run = await engine.start(fan_out, 7)
        assert await run.result(timeout=20) == list(range(7))
    assert peak <= 2
    assert CountingStore.claimed == 5  # 2 came with the commit, the other 5 waited for a claim
