"""Id reuse policy: what a start does when its workflow id's run is closed.

Every store (memory, a SQLite file, PostgreSQL), under asyncio and trio.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

STATUSES = ["completed", "failed", "cancelled", "terminated"]
# (policy, closed status) -> True: a new run starts; False: IdempotencyError
NEW_RUN = {
    "allow_duplicate": dict.fromkeys(STATUSES, True),
    "allow_duplicate_failed_only": {"completed": False, "failed": True, "cancelled": True, "terminated": True},
    "reject_duplicate": dict.fromkeys(STATUSES, False),
}


@retold.workflow(signals={"add": str})
async def ends(how: str) -> str:
    if how == "failed":
        raise ValueError("boom")
    if how in ("cancelled", "terminated"):
        await retold.wait_signal("never")
    if how == "collect":
        item = await retold.wait_signal("add", str)
        return f"got {item}"
    return how


async def close_as(engine: retold.Engine, workflow_id: str, status: str) -> str:
    """Start a run under ``workflow_id`` and bring it to ``status``; return its run id."""
    run = await engine.start(ends.with_options(id=workflow_id), status)
    if status in ("cancelled", "terminated"):
        with anyio.fail_after(20):
            while (await run.describe()).event_count < 2:  # its first step waits for the signal
                await anyio.sleep(0.02)
        await (run.cancel("done with it") if status == "cancelled" else run.terminate("done with it"))
    with anyio.fail_after(20):
        while (await run.describe()).status == "running":
            await anyio.sleep(0.02)
    description = await run.describe()
    assert description.status == status
    return description.run_id


@pytest.mark.parametrize("policy", list(NEW_RUN))
async def test_each_policy_on_a_closed_run_of_each_status(
    make_engine: EngineFactory, store_url: str, policy: str,
) -> None:
    async with make_engine([ends], url=store_url) as engine:
        for status in STATUSES:
            wid = f"{policy}-{status}"
            old_run_id = await close_as(engine, wid, status)
            again = ends.with_options(id=wid, id_reuse_policy=policy)  # type: ignore[arg-type]
            if NEW_RUN[policy][status]:
                run = await engine.start(again, "completed")
                assert run.created
                assert run.run_id != old_run_id
                assert await run.result(timeout=20) == "completed"
                newest = await engine.get_handle(wid).describe()
                assert (newest.run_id, newest.status) == (run.run_id, "completed")
                old = await engine.get_handle(old_run_id).describe()
                assert old.status == status  # the closed run is kept as it was
                assert len(await engine.list_runs(id_prefix=wid)) == 2
            else:
                with pytest.raises(retold.IdempotencyError, match=f"id_reuse_policy '{policy}' refuses"):
                    await engine.start(again, status)
                assert (await engine.get_handle(wid).describe()).run_id == old_run_id
                assert len(await engine.list_runs(id_prefix=wid)) == 1


async def test_the_default_returns_the_closed_run_for_the_same_input(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([ends], url=store_url) as engine:
        for status in STATUSES:
            old_run_id = await close_as(engine, f"default-{status}", status)
            same = await engine.start(ends.with_options(id=f"default-{status}"), status)
            assert not same.created
            assert same.run_id == old_run_id
            with pytest.raises(retold.IdempotencyError, match="different input"):
                await engine.start(ends.with_options(id=f"default-{status}"), "other")


async def test_an_open_run_is_returned_under_every_policy(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([ends], url=store_url) as engine:
        first = await engine.start(ends.with_options(id="open"), "collect")
        for policy in NEW_RUN:
            again = await engine.start(ends.with_options(id="open", id_reuse_policy=policy), "collect")  # type: ignore[arg-type]
            assert not again.created
            assert again.run_id == first.run_id
            with pytest.raises(retold.IdempotencyError, match="different input"):
                await engine.start(ends.with_options(id="open", id_reuse_policy=policy), "other")  # type: ignore[arg-type]


async def test_signal_with_start_follows_a_closed_run_under_its_policy(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([ends], url=store_url) as engine:
        old_run_id = await close_as(engine, "sws", "completed")
        with pytest.raises(retold.RunFinishedError):
            await engine.signal_with_start(ends.with_options(id="sws"), "add", "x", "collect")
        with pytest.raises(retold.IdempotencyError, match="refuses"):
            await engine.signal_with_start(
                ends.with_options(id="sws", id_reuse_policy="allow_duplicate_failed_only"), "add", "x", "collect")
        run = await engine.signal_with_start(
            ends.with_options(id="sws", id_reuse_policy="allow_duplicate"), "add", "tea", "collect")
        assert run.created
        assert run.run_id != old_run_id
        assert await engine.get_handle("sws").result(timeout=20) == "got tea"


async def test_concurrent_starts_after_a_closed_run_make_one_new_run(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([ends], url=store_url) as engine:
        await close_as(engine, "race", "failed")
        shared = None if store_url.startswith("memory:") else store_url
        async with retold.Client(shared or "memory://", workflows=[ends],
                                 store=engine.store if shared is None else None) as client:
            made: list[Any] = []

            async def start(via: retold.Engine | retold.Client) -> None:
                run = await via.start(ends.with_options(id="race", id_reuse_policy="allow_duplicate"), "collect")
                made.append((run.created, run.run_id))

            async with anyio.create_task_group() as group:
                for i in range(6):
                    group.start_soon(start, engine if i % 2 else client)
        assert sum(created for created, _ in made) == 1
        assert len({run_id for _, run_id in made}) == 1
        assert len(await engine.list_runs(id_prefix="race")) == 2


async def test_a_bad_policy_is_refused(make_engine: EngineFactory) -> None:
    with pytest.raises(retold.ConfigurationError, match="id_reuse_policy must be one of"):
        ends.with_options(id="x", id_reuse_policy="sometimes")  # type: ignore[arg-type]
    async with make_engine([ends]) as engine:
        with pytest.raises(retold.ConfigurationError, match="id_reuse_policy must be one of"):
            await engine.start("ends", "completed", id="x", id_reuse_policy="sometimes")
        assert await engine.list_runs() == []


async def test_purge_keeps_every_run_of_the_id_while_its_newest_is_open(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([ends], url=store_url) as engine:
        old_run_id = await close_as(engine, "kept", "failed")
        again = await engine.start(ends.with_options(id="kept", id_reuse_policy="allow_duplicate"), "collect")
        report = await engine.purge(0)
        assert report.runs == 0
        assert report.kept == 1
        assert (await engine.get_handle(old_run_id).describe()).status == "failed"
        await again.signal("add", "tea")
        assert await engine.get_handle("kept").result(timeout=20) == "got tea"
        with anyio.fail_after(20):
            while (await engine.purge(0)).runs == 0:  # closed_at must be in the past by the store clock
                await anyio.sleep(0.05)
        assert await engine.list_runs(id_prefix="kept") == []
        fresh = await engine.start(ends.with_options(id="kept"), "completed")  # the id is free again
        assert fresh.created
