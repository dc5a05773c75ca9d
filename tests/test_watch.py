"""RunHandle.watch(): a run's events, recorded then live, from one shared watcher per run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity
async def shout(text: str) -> str:
    return text.upper()


@retold.workflow
async def waits_then_shouts(text: str) -> str:
    await retold.wait_signal("go")
    return await retold.execute(shout, text)


@retold.workflow(name="sleeper")
async def sleeper() -> str:
    await retold.sleep(timedelta(seconds=0.3))
    return "rested"


async def collect(stream: retold.EventStream) -> list[ev.Event]:
    with anyio.fail_after(10):
        return [event async for event in stream]


async def wait_until(run: retold.RunHandle[str], count: int) -> None:
    with anyio.fail_after(10):
        while (await run.describe()).event_count < count:
            await anyio.sleep(0.01)


async def test_a_stream_gives_the_recorded_events_then_live_ones_and_ends(make_engine: EngineFactory) -> None:
    # A poll interval far beyond the test: events must come from the engine's
    # own commit notifications, not from polling.
    async with make_engine([waits_then_shouts], [shout], poll_interval=30) as engine:
        run = await engine.start(waits_then_shouts, "hi")
        await wait_until(run, 2)
        seen: list[ev.Event] = []
        async with run.watch() as stream:
            seen.append(await stream.__anext__())  # recorded: WorkflowStarted
            await run.signal("go")
            seen += await collect(stream)
        history = await run.history()
    assert seen == list(history)
    assert [e.type for e in seen][-1] == "WorkflowCompleted"
    assert not engine.feeds


async def test_after_seq_gives_exactly_the_later_events(make_engine: EngineFactory) -> None:
    async with make_engine([waits_then_shouts], [shout]) as engine:
        run = await engine.start(waits_then_shouts, "hi")
        await run.signal("go")
        await run.result(timeout=10)
        history = await run.history()
        for after in (0, 2, len(history) - 1, len(history), len(history) + 5):
            assert await collect(run.watch(after_seq=after)) == list(history)[after:]
        with pytest.raises(retold.RetoldError, match="negative"):
            run.watch(after_seq=-1)


async def test_timer_events_reach_streams_without_polling(make_engine: EngineFactory) -> None:
    async with make_engine([sleeper], poll_interval=0.05) as engine:
        run = await engine.start(sleeper)
        await wait_until(run, 2)
        engine.feeds._poll_interval = 30  # only the timer loop's notification can deliver it now
        events = await collect(run.watch())
    assert [e.type for e in events] == [
        "WorkflowStarted", "TimerStarted", "TimerFired", "WorkflowCompleted",
    ]


async def test_many_subscribers_share_one_watcher_per_run(make_engine: EngineFactory) -> None:
    # The run is advanced by another engine (another process, in effect); this
    # client-only engine sees it only by polling, once per interval for all.
    async with make_engine([waits_then_shouts], [shout], run_workers=False, poll_interval=0.1) as client:
        run = await client.start(waits_then_shouts, "hi")
        loads = 0
        real_load = client.store.load

        async def counted(run_id: str, after_seq: int) -> tuple[object, list[ev.Event]]:
            nonlocal loads
            loads += 1
            return await real_load(run_id, after_seq)

        client.store.load = counted  # type: ignore[method-assign, assignment]
        results: list[list[ev.Event]] = []
        subscribed = 0

        async def subscriber() -> None:
            nonlocal subscribed
            async with run.watch() as stream:
                first = await stream.__anext__()
                subscribed += 1
                results.append([first, *await collect(stream)])

        began = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(subscriber)
            with anyio.fail_after(10):
                while subscribed < 50:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.5)  # a few polls with everyone watching
            assert len(client.feeds) == 1
            async with make_engine([waits_then_shouts], [shout]) as worker:
                await worker.get_handle(run.workflow_id).signal("go")
                await worker.get_handle(run.workflow_id).result(timeout=10)
        elapsed = anyio.current_time() - began
        history = list(await run.history())
    assert results == [history] * 50
    # One load per 0.1 s poll for all 50 (a watcher each would make 50 per poll),
    # with room for a loaded machine's uneven timing: the bound grows with the time taken.
    assert loads <= 10 + 2 * elapsed / 0.1, f"{loads} store loads for 50 subscribers over {elapsed:.1f} s"
    assert not client.feeds


async def test_waiting_for_the_next_event_is_cancel_safe(make_engine: EngineFactory) -> None:
    async with make_engine([waits_then_shouts], [shout]) as engine:
        run = await engine.start(waits_then_shouts, "hi")
        await wait_until(run, 2)
        async with run.watch(after_seq=2) as stream:
            for _ in range(3):
                with anyio.move_on_after(0.05):
                    await stream.__anext__()
                    pytest.fail("no event should have come")
            await run.signal("go")
            rest = await collect(stream)
    assert [e.seq for e in rest] == list(range(3, 3 + len(rest)))
    assert rest[0].type == "SignalReceived"


async def test_a_stream_left_early_stops_watching(make_engine: EngineFactory) -> None:
    async with make_engine([waits_then_shouts], [shout]) as engine:
        run = await engine.start(waits_then_shouts, "hi")
        async with run.watch() as stream:
            assert stream.run_id == run.run_id
            assert (await stream.__anext__()).type == "WorkflowStarted"
            assert len(engine.feeds) == 1
        assert not engine.feeds
        await stream.aclose()  # idempotent
        assert [e async for e in stream] == []


async def test_a_closing_engine_ends_waiting_streams_with_an_error(make_engine: EngineFactory) -> None:
    async with make_engine([waits_then_shouts], [shout]) as engine:
        run = await engine.start(waits_then_shouts, "hi")
        stream = run.watch(after_seq=50)
        failure: list[BaseException] = []

        async def follow() -> None:
            try:
                await stream.__anext__()
            except retold.RetoldError as exc:
                failure.append(exc)

        engine.spawn(follow)
        with anyio.fail_after(10):  # close once it waits for an event, not before it subscribes
            while not engine.feeds:
                await anyio.sleep(0.01)
    assert len(failure) == 1
    assert "engine closed" in str(failure[0])


async def test_streams_started_while_the_engine_closes_end_at_once(make_engine: EngineFactory) -> None:
    async with make_engine([waits_then_shouts], [shout]) as engine:
        run = await engine.start(waits_then_shouts, "hi")
        engine.feeds.close()  # as __aexit__ does first
        with pytest.raises(retold.RetoldError, match="engine closed"):
            await run.watch(after_seq=5).__anext__()
        engine.feeds.open()
        assert (await run.watch().__anext__()).type == "WorkflowStarted"


async def test_unknown_runs_fail_when_the_stream_starts(make_engine: EngineFactory) -> None:
    async with make_engine() as engine:
        stream = engine.get_handle("nope").watch()
        with pytest.raises(retold.RunNotFoundError):
            await stream.__anext__()
        assert not engine.feeds


# -- start_by_name and RunHandle.created ---------------------------------------------


@dataclass
class Order:
    sku: str
    quantity: int


@retold.workflow(name="order")
async def order(item: Order, note: str | None = None) -> str:
    return f"{item.quantity} x {item.sku}{f' ({note})' if note else ''}"


async def test_start_by_name_converts_json_arguments(make_engine: EngineFactory) -> None:
    async with make_engine([order]) as engine:
        run = await engine.start_by_name("order", [{"sku": "tea", "quantity": 2}, "gift"])
        assert run.created
        assert await run.result(timeout=10) == "2 x tea (gift)"
        same = await engine.start_by_name("order", [Order("tea", 1)], id="o-1")
        again = await engine.start_by_name("order", [{"sku": "tea", "quantity": 1}], id="o-1")
        assert same.created
        assert not again.created
        assert again.run_id == same.run_id


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ([{"sku": "tea", "quantity": 1.5}], retold.InvalidArgumentsError, r"as Order: .* @ \$\.quantity"),
        ([{"sku": "tea"}], retold.InvalidArgumentsError, r"required field missing @ \$\.quantity"),
        ([{"sku": "tea", "quantity": 1}, 5], retold.InvalidArgumentsError, "argument 2 .*expected a string"),
        ([{"sku": "tea", "quantity": 1}, "a", "b"], retold.InvalidArgumentsError, "too many"),
        ([], retold.InvalidArgumentsError, "missing"),
    ],
)
async def test_start_by_name_rejects_arguments_that_do_not_fit(
    make_engine: EngineFactory, args: list[object], error: type[Exception], message: str
) -> None:
    async with make_engine([order]) as engine:
        with pytest.raises(error, match=message):
            await engine.start_by_name("order", args)
        assert await engine.list_runs() == []


async def test_start_by_name_of_an_unknown_workflow(make_engine: EngineFactory) -> None:
    async with make_engine([order]) as engine:
        with pytest.raises(retold.NotRegisteredError, match="'nope'"):
            await engine.start_by_name("nope")


async def test_handles_by_id_are_not_created(make_engine: EngineFactory) -> None:
    async with make_engine([order]) as engine:
        run = await engine.start_by_name("order", [Order("tea", 1)])
        assert run.created
        assert not engine.get_handle(run.workflow_id).created
