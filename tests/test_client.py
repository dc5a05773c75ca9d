"""retold.Client: drives runs that an engine elsewhere hosts, hosting nothing itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import retold
from retold.history import events as ev
from tests import shop
from tests.shop import Order

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def host(url: str) -> AsyncIterator[retold.Engine]:
    """The process that runs the shop: an engine with its own store object on the same file."""
    async with retold.Engine(url, workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES, poll_interval=0.05) as engine:
        yield engine


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'client.db'}"


async def wait_for_status(run: retold.RunHandle[Any], expected: str) -> None:
    with anyio.fail_after(30):
        while await run.query("status") != expected:
            await anyio.sleep(0.02)


async def test_a_client_starts_signals_queries_and_waits_on_runs_hosted_elsewhere(url: str) -> None:
    async with host(url), retold.Client(url, workflows=shop.WORKFLOWS, poll_interval=0.05) as client:
        typed = await client.start(shop.order.with_options(id="o-1"), Order("tea", 2))
        assert typed.created
        assert typed.workflow_id == "o-1"
        await wait_for_status(typed, "waiting")  # the query replays the run's history here
        await typed.signal("approve", True)
        assert await typed.result(timeout=30) == "reserved 2 x tea"
        assert (await typed.describe()).status == "completed"

        by_name = await client.start_by_name("greet", ["ada"], id="g-1")
        assert await by_name.result(timeout=30) == "hello, ada"
        again = await client.start_by_name("greet", ["ada"], id="g-1")
        assert not again.created
        assert again.run_id == by_name.run_id

        untyped = await client.start("greet", "bob", id="g-2")  # a name: untyped, hosted elsewhere
        assert await untyped.result(timeout=30) == "hello, bob"

        listed = await client.list_runs(workflow="greet")
        assert {r.workflow_id for r in listed} == {"g-1", "g-2"}
        history = await client.get_handle("g-1").history()
        assert isinstance(history.events[0], ev.WorkflowStarted)
        assert isinstance(history.events[-1], ev.WorkflowCompleted)


async def test_a_client_cancels_and_watches_runs_hosted_elsewhere(url: str) -> None:
    async with host(url), retold.Client(url, workflows=shop.WORKFLOWS, poll_interval=0.05) as client:
        run = await client.start(shop.order.with_options(id="o-2"), Order("tea", 1))
        async with run.watch() as stream:
            seen: list[ev.Event] = []
            with anyio.fail_after(30):
                async for event in stream:
                    seen.append(event)
                    if isinstance(event, ev.ActivityCompleted):
                        await run.cancel("changed my mind")
        assert isinstance(seen[0], ev.WorkflowStarted)
        assert isinstance(seen[-1], ev.WorkflowCancelled)
        with pytest.raises(retold.WorkflowCancelledError):
            await run.result(timeout=30)
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))


async def test_a_client_answers_queries_only_for_workflows_it_knows(url: str) -> None:
    async with host(url), retold.Client(url, poll_interval=0.05) as client:
        run = await client.start("order", {"sku": "tea", "quantity": 1}, id="o-3")
        with pytest.raises(retold.NotRegisteredError, match=r"this client \(queries replay.*Client\(workflows="):
            await run.query("status")
        with pytest.raises(retold.NotRegisteredError, match=r"Client\(workflows="):
            await client.start_by_name("order", [{"sku": "tea", "quantity": 1}])
        await run.cancel()
        with pytest.raises(retold.WorkflowCancelledError):
            await run.result(timeout=30)


async def test_a_client_refuses_bad_input_before_storing_anything(url: str) -> None:
    async with retold.Client(url, workflows=shop.WORKFLOWS) as client:
        with pytest.raises(retold.InvalidArgumentsError):
            await client.start_by_name("greet", [3])
        with pytest.raises(retold.ConfigurationError, match=r"client\.start\(\) needs a workflow"):
            await client.start(print)  # type: ignore[arg-type]
        assert await client.list_runs() == []


async def test_a_client_hosts_nothing(url: str) -> None:
    async with retold.Client(url, workflows=shop.WORKFLOWS, poll_interval=0.05) as client:
        run = await client.start(shop.greet, "nobody")
        with anyio.move_on_after(0.5):
            await run.result()
        described = await run.describe()
        assert described.status == "running"
        assert described.event_count == 1
    async with host(url), retold.Client(url, poll_interval=0.05) as client:  # an engine comes along and runs it
        assert await client.get_handle(run.workflow_id).result(timeout=30) == "hello, nobody"


async def test_a_client_must_be_open_and_opened_once(url: str) -> None:
    client = retold.Client(url)
    with pytest.raises(retold.RetoldError, match=r"the client is not open: use `async with retold\.Client"):
        client.get_handle("x")
    async with client:
        with pytest.raises(retold.ConfigurationError, match="already open"):
            await client.__aenter__()
    with pytest.raises(retold.RetoldError, match="the client is not open"):
        await client.start(shop.greet, "late")


async def test_an_unknown_store_scheme_is_refused_with_the_known_ones() -> None:
    with pytest.raises(retold.StoreError, match=r"unsupported store URL 'mysql://x'.*known schemes are .*sqlite"):
        retold.Client("mysql://x")


async def test_a_stream_ends_with_an_error_naming_the_client_that_closed(url: str) -> None:
    failure: list[BaseException] = []

    async def follow(stream: retold.EventStream) -> None:
        try:
            await stream.__anext__()
        except retold.RetoldError as exc:
            failure.append(exc)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group, \
                retold.Client(url, workflows=shop.WORKFLOWS, poll_interval=0.05) as client:
            run = await client.start(shop.greet, "never run")
            # After WorkflowStarted: it waits for a worker that never comes.
            group.start_soon(follow, run.watch(after_seq=1))
            while not client.feeds:
                await anyio.sleep(0.01)
    assert "the client closed while watching" in str(failure[0])


async def test_an_engine_serves_its_client_api_through_its_own_client(url: str) -> None:
    async with host(url) as engine:
        assert isinstance(engine.client, retold.Client)
        run = await engine.start(shop.greet, "eve")
        assert await run.result(timeout=30) == "hello, eve"
        assert engine.feeds is engine.client.feeds
