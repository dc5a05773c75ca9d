"""Updates: a durable request with a reply, validated first, run once per update id.

Every store (memory, a SQLite file, PostgreSQL; NATS in tests/stores/test_updates_on_nats.py),
under asyncio and trio.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import replay
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

PRICED: list[str] = []


@retold.activity
async def price(item: str) -> int:
    PRICED.append(item)
    return len(item)


@retold.workflow
async def cart(owner: str) -> list[str]:
    items: list[str] = []
    total = 0

    async def add(item: str) -> int:
        nonlocal total
        if item == "slow":
            await retold.sleep(3600)
        if item == "broken":
            raise retold.ApplicationError("the shelf is empty", type="OutOfStock")
        total += await retold.execute(price, item)
        items.append(item)
        return total

    def check(item: str) -> None:
        if not item:
            raise ValueError("an item needs a name")
        if item in items:
            raise ValueError(f"{item} is already in the cart")

    retold.set_update_handler("add", add, validator=check)
    retold.set_query_handler("items", lambda: list(items))
    await retold.wait_signal("checkout")
    return items


def types(history: retold.History) -> list[str]:
    return [e.type for e in history.events]


async def test_an_update_returns_its_handler_result_after_awaiting_an_activity(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([cart], [price], url=store_url) as engine:
        run = await engine.start(cart.with_options(id="cart-1"), "ann")
        assert await run.update("add", "apple", timeout=30) == 5
        total: int = await run.update("add", "fig", result_type=int, timeout=30)
        assert total == 8
        assert await run.query("items") == ["apple", "fig"]
        await run.signal("checkout")
        assert await run.result(timeout=30) == ["apple", "fig"]
        history = await run.history()
        accepted = [e for e in history.events if isinstance(e, ev.UpdateAccepted)]
        completed = [e for e in history.events if isinstance(e, ev.UpdateCompleted)]
        assert [e.name for e in accepted] == ["add", "add"]
        assert [e.accepted for e in completed] == [e.seq for e in accepted]
        assert "ActivityScheduled" in types(history)
        replay(cart, history)


async def test_a_rejected_update_leaves_no_trace_in_the_history(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([cart], [price], url=store_url) as engine:
        run = await engine.start(cart.with_options(id="cart-2"), "bob")
        await run.update("add", "pear", timeout=30)
        before = types(await run.history())
        with pytest.raises(retold.UpdateRejectedError, match="pear is already in the cart"):
            await run.update("add", "pear", timeout=30)
        with pytest.raises(retold.UpdateRejectedError, match="needs a name"):
            await run.update("add", "", timeout=30)
        with pytest.raises(retold.UpdateRejectedError, match="no update handler 'remove'"):
            await run.update("remove", "pear", timeout=30)
        assert types(await run.history()) == before


async def test_the_same_update_id_twice_runs_once_and_gets_the_same_reply(
    make_engine: EngineFactory, store_url: str,
) -> None:
    PRICED.clear()
    async with make_engine([cart], [price], url=store_url) as engine:
        run = await engine.start(cart.with_options(id="cart-3"), "cy")
        first = await run.update("add", "kiwi", id="req-1", timeout=30)
        again = await run.update("add", "kiwi", id="req-1", timeout=30)  # the validator would refuse it now
        await run.update("add", "plum", timeout=30)  # the run moves on
        later = await run.update("add", "kiwi", id="req-1", timeout=30)
        assert first == again == later == 4
        assert PRICED.count("kiwi") == 1
        history = await run.history()
        assert [e.update_id for e in history.events if isinstance(e, ev.UpdateAccepted)].count("req-1") == 1
        assert await run.update_result("req-1", timeout=30) == 4


async def test_concurrent_sends_of_one_update_id_record_it_once(make_engine: EngineFactory, store_url: str) -> None:
    PRICED.clear()
    async with make_engine([cart], [price], url=store_url) as engine:
        run = await engine.start(cart.with_options(id="cart-4"), "di")
        replies: list[int] = []

        async def send() -> None:
            replies.append(await run.update("add", "lime", id="same", result_type=int, timeout=30))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(send)
        assert replies == [4, 4, 4, 4]
        assert PRICED.count("lime") == 1
        history = await run.history()
        assert sum(isinstance(e, ev.UpdateAccepted) for e in history.events) == 1


async def test_a_failing_handler_fails_the_update_not_the_run(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([cart], [price], url=store_url) as engine:
        run = await engine.start(cart.with_options(id="cart-5"), "ed")
        with pytest.raises(retold.UpdateFailedError, match="the shelf is empty") as caught:
            await run.update("add", "broken", timeout=30)
        assert isinstance(caught.value.cause, retold.ApplicationError)
        assert await run.update("add", "yam", timeout=30) == 3
        await run.signal("checkout")
        assert await run.result(timeout=30) == ["yam"]


async def test_an_unfinished_update_can_be_fetched_later_and_a_closing_run_answers_it(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([cart], [price], url=store_url) as engine:
        run = await engine.start(cart.with_options(id="cart-6"), "flo")
        with pytest.raises(retold.UpdateTimeoutError) as caught:
            await run.update("add", "slow", id="u-slow", timeout=0.5)
        assert caught.value.update_id == "u-slow"
        with pytest.raises(retold.UpdateRejectedError, match="never accepted"):
            await run.update_result("u-other", timeout=5)
        await run.signal("checkout")  # the run completes while the handler sleeps
        assert await run.result(timeout=30) == []
        with pytest.raises(retold.UpdateFailedError, match=r"closed .*before the handler of update 'u-slow'"):
            await run.update_result("u-slow", timeout=30)
        with pytest.raises(retold.RunFinishedError):
            await run.update("add", "late", timeout=30)


@retold.workflow
async def counter() -> int:
    count = 0

    def positive(by: int) -> None:
        if by <= 0:
            raise ValueError("bump by a positive number")

    @retold.update_handler("bump", validator=positive)
    def bump(by: int) -> int:
        nonlocal count
        count += by
        return count

    def sneaky(by: int) -> None:
        retold.sleep(1).close()  # a validator only reads: refused (before the coroutine exists)

    retold.set_update_handler("sneaky", bump, validator=sneaky)
    await retold.wait_signal("stop")
    return count


async def test_the_decorator_registers_a_handler_and_a_validator_only_reads(make_engine: EngineFactory) -> None:
    async with make_engine([counter], url="memory://") as engine:
        run = await engine.start(counter.with_options(id="counter-1"))
        assert await run.update("bump", 2, timeout=30) == 2
        assert await run.update("bump", 3, timeout=30) == 5
        with pytest.raises(retold.UpdateRejectedError, match="positive"):
            await run.update("bump", -1, timeout=30)
        with pytest.raises(retold.UpdateRejectedError, match="cannot be called in"):
            await run.update("sneaky", 1, timeout=30)
        with pytest.raises(retold.UpdateRejectedError, match="argument 'by'"):
            await run.update("bump", "many", timeout=30)
        await run.signal("stop")
        assert await run.result(timeout=30) == 5
        assert sum(isinstance(e, ev.UpdateAccepted) for e in (await run.history()).events) == 2


def test_updates_are_covered_by_assert_deterministic() -> None:
    from retold.testing import assert_deterministic

    assert_deterministic(
        cart, args=("ann",), activities=[price], signals=[("checkout", None)], max_examples=25,
        updates=[("add", ("apple",)), ("add", ("apple",)), ("add", ("broken",)), ("add", ("",)), ("add", ("fig",))],
    )


HANDLED: list[int] = []


@retold.workflow
async def forgetful() -> int:
    async def note(n: int) -> int:
        HANDLED.append(n)
        if len(HANDLED) % 2:  # remembered by the process, not the run: a replay takes the other branch
            await retold.execute(price, "odd")
        return n

    retold.set_update_handler("note", note)
    await retold.wait_signal("stop")
    return len(HANDLED)


def test_a_nondeterministic_update_handler_is_caught_by_assert_deterministic() -> None:
    from retold.testing import NondeterminismFound, assert_deterministic

    with pytest.raises(NondeterminismFound) as found:
        assert_deterministic(forgetful, activities=[price], updates=[("note", (1,))], signals=[("stop", None)],
                             max_examples=25, cross_process=False)
    assert "updates=[('note', (1,))]" in str(found.value)
    assert "update 'note' arrives with (1,) and is accepted" in str(found.value)


def test_a_history_holding_one_update_id_twice_runs_its_handler_once() -> None:
    from retold.history.codec import JsonCodec
    from retold.runtime._instance import WorkflowInstance

    codec = JsonCodec()
    instance = WorkflowInstance(counter, "r1", codec)
    try:
        commands = instance.apply([
            ev.WorkflowStarted(seq=1, at=1.0, workflow="counter", workflow_id="c", input=codec.encode([])),
            ev.UpdateAccepted(seq=2, at=2.0, update_id="u", name="bump", input=codec.encode([2])),
            ev.UpdateAccepted(seq=3, at=2.0, update_id="u", name="bump", input=codec.encode([2])),
        ])
        assert [(type(c), getattr(c, "accepted", None)) for c in commands] == [(ev.UpdateCompleted, 2)]
        completed = commands[0]
        assert isinstance(completed, ev.UpdateCompleted)
        assert codec.decode(completed.result) == 2
    finally:
        instance.close()


async def test_a_caller_in_another_process_gets_the_reply_without_waiting_for_its_poll_interval() -> None:
    from retold.stores.memory import MemoryStore

    store = MemoryStore()  # shared, as a database is by two processes
    async with retold.Engine(workflows=[cart], activities=[price], store=store, poll_interval=0.05) as engine, \
            retold.Client(workflows=[cart], store=store, poll_interval=60) as client:
        await engine.start(cart.with_options(id="cart-far"), "gil")
        run = client.get_handle("cart-far")
        with anyio.fail_after(10):  # the client's own poll interval is a minute
            assert await run.update("add", "apple", result_type=int) == 5


async def test_a_test_environment_skips_time_while_an_update_waits_for_its_handler() -> None:
    from retold.testing import WorkflowEnvironment

    async with WorkflowEnvironment(workflows=[cart], activities=[price]) as env:
        run = await env.start(cart, "ann")
        with anyio.fail_after(20):
            assert await run.update("add", "slow", result_type=int) == 4  # after an hour of its timer
        assert env.skipped > 3500


@dataclasses.dataclass
class Receipt:
    item: str
    total: int


@retold.workflow
async def till() -> int:
    total = 0

    async def ring(item: str) -> Receipt:
        nonlocal total
        total += await retold.execute(price, item)
        return Receipt(item, total)

    retold.set_update_handler("ring", ring)
    await retold.wait_signal("close")
    return total


async def test_a_reply_sent_again_comes_in_the_handler_return_type(make_engine: EngineFactory, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'till.db'}"
    async with make_engine([till], [price], url=url) as engine:
        run = await engine.start(till.with_options(id="till-1"))
        first = await run.update("ring", "tea", id="r-1", timeout=30)
        again = await run.update("ring", "tea", id="r-1", timeout=30)  # on the engine's cached copy
        assert first == again == Receipt("tea", 3)
        async with retold.Client(url, workflows=[till]) as client:  # hosts nothing: replays the run
            assert await client.get_handle("till-1").update("ring", "tea", id="r-1", timeout=30) == Receipt("tea", 3)
