"""Signal-with-start: signal the run of a workflow id, starting it first if there is none, atomically.

Every store (memory, a SQLite file, PostgreSQL), under asyncio and trio.
"""

from __future__ import annotations

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import replay
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.workflow(signals={"add": str})
async def cart(customer: str) -> list[str]:
    items: list[str] = [customer]
    while True:
        item = await retold.wait_signal("add", str)
        if item == "checkout":
            return items
        assert item is not None
        items.append(item)


@retold.workflow
async def other(customer: str) -> str:
    return customer


async def test_a_new_run_starts_with_the_signal(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([cart], url=store_url) as engine:
        run = await engine.signal_with_start(cart.with_options(id="cart-1"), "add", "apple", "ann")
        assert run.created
        await engine.signal_with_start(cart.with_options(id="cart-1"), "add", "checkout", "ann")
        assert await run.result(timeout=20) == ["ann", "apple"]
        history = await run.history()
        assert [type(e) for e in history.events[:2]] == [ev.WorkflowStarted, ev.SignalReceived]
        replay(cart, history)


async def test_an_existing_run_gets_the_signal_and_keeps_its_input(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([cart], url=store_url) as engine:
        first = await engine.start(cart.with_options(id="cart-2"), "bob")
        again = await engine.signal_with_start(cart.with_options(id="cart-2"), "add", "pear", "not bob")
        assert not again.created
        assert again.run_id == first.run_id
        await engine.signal_with_start(cart.with_options(id="cart-2"), "add", "checkout", "bob")
        assert await first.result(timeout=20) == ["bob", "pear"]
        runs = await engine.list_runs(id_prefix="cart-2")
        assert len(runs) == 1


async def test_concurrent_signal_with_starts_make_one_run_with_every_signal(
    make_engine: EngineFactory, store_url: str,
) -> None:
    items = [f"item{i}" for i in range(8)]
    async with make_engine([cart], url=store_url) as engine:
        shared = None if store_url.startswith("memory:") else store_url
        async with retold.Client(shared or "memory://", workflows=[cart],
                                 store=engine.store if shared is None else None) as client:
            created: list[bool] = []

            async def send(via: retold.Engine | retold.Client, item: str) -> None:
                run = await via.signal_with_start(cart.with_options(id="cart-3"), "add", item, "cy")
                created.append(run.created)

            async with anyio.create_task_group() as group:
                for i, item in enumerate(items):
                    group.start_soon(send, engine if i % 2 else client, item)
            assert created.count(True) == 1
            await engine.signal_with_start(cart.with_options(id="cart-3"), "add", "checkout", "cy")
            result = await engine.get_handle("cart-3").result(timeout=30)
        assert result[0] == "cy"
        assert sorted(result[1:]) == items
        assert len(await engine.list_runs(id_prefix="cart-3")) == 1


async def test_a_closed_run_is_refused_and_nothing_is_written(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([cart, other], url=store_url) as engine:
        run = await engine.signal_with_start(cart.with_options(id="cart-4"), "add", "checkout", "dee")
        assert await run.result(timeout=20) == ["dee"]
        before = len((await run.history()).events)
        with pytest.raises(retold.RunFinishedError, match="completed"):
            await engine.signal_with_start(cart.with_options(id="cart-4"), "add", "late", "dee")
        with pytest.raises(retold.IdempotencyError, match="already used by a run of workflow"):
            await engine.signal_with_start(other.with_options(id="cart-4"), "add", "x", "dee")
        assert len((await run.history()).events) == before


async def test_bad_requests_write_nothing(make_engine: EngineFactory) -> None:
    async with make_engine([cart]) as engine:
        with pytest.raises(retold.ConfigurationError, match="needs a workflow id"):
            await engine.signal_with_start(cart, "add", "apple", "eve")
        with pytest.raises(retold.PayloadError, match="signal 'add' to workflow id 'cart-5'"):
            await engine.signal_with_start(cart.with_options(id="cart-5"), "add", 42, "eve")
        with pytest.raises(retold.InvalidArgumentsError):
            await engine.signal_with_start(cart.with_options(id="cart-5"), "add", "x", 42)  # type: ignore[arg-type]
        with pytest.raises(retold.RetoldError, match="signal name must not be empty"):
            await engine.signal_with_start(cart.with_options(id="cart-5"), "", "x", "eve")
        assert await engine.list_runs() == []


async def test_by_name_from_a_client(make_engine: EngineFactory, tmp_path: object) -> None:
    async with make_engine([cart]) as engine, retold.Client(store=engine.store, workflows=[cart]) as client:
        run = await client.signal_with_start_by_name("cart", "add", "fig", ["fay"], id="cart-6")
        assert run.created
        await client.signal_with_start("cart", "add", "checkout", "fay", id="cart-6")
        assert await run.result(timeout=20) == ["fay", "fig"]
