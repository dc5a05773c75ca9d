"""Finding runs: search attributes (set at start, upserted by workflow code), memos, list filters, cursors.

Every store (memory, a SQLite file, PostgreSQL) under asyncio and trio; NATS runs the same through the
store contract (retold.testing.store_contract) and the crash test (tests/crash/test_search_attributes_kill.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import NondeterminismFound, assert_deterministic, replay
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

DUE = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@retold.workflow(signals={"stage": str})
async def order(name: str) -> str:
    stage = await retold.wait_signal("stage", str)
    retold.upsert_search_attributes({"stage": stage, "flagged": None})
    await retold.wait_signal("finish")
    return name


@retold.workflow
async def quick(name: str) -> str:
    return name


@retold.workflow
async def bad_upsert(value: Any) -> str:
    try:
        retold.upsert_search_attributes({"weird": value})
    except retold.InvalidArgumentsError as err:
        return f"refused: {err}"
    return "accepted"


@retold.workflow
async def parent() -> str:
    child = quick.with_options(id="the-child", search_attributes={"kind": "child"}, memo={"from": "parent"})
    await retold.start_workflow(quick.with_options(id="detached", search_attributes={"kind": "detached"},
                                                   memo={"from": "starter"}), "d")
    return await retold.execute_child(child, "c")


async def until(check: Any) -> None:
    with anyio.fail_after(30):
        while not await check():
            await anyio.sleep(0.02)


async def listed(engine: retold.Engine, **filters: Any) -> list[str]:
    return [r.workflow_id for r in await engine.list_runs(limit=1000, **filters)]


async def test_attributes_and_memo_set_at_start_are_described_and_found_by_value_and_type(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([quick], url=store_url) as engine:
        attrs: dict[str, retold.SearchAttributeValue] = {
            "customer": "acme", "priority": 3, "score": 0.5, "vip": True, "due": DUE}
        run = await engine.start(quick.with_options(id="a", search_attributes=attrs, memo={"note": ["x", 1]}), "a")
        await engine.start("quick", "b", id="b", search_attributes={"customer": "bob", "priority": 3.0})
        await engine.start(quick.with_options(id="c"), "c")
        described = await run.describe()
        assert described.search_attributes == attrs
        assert described.memo == {"note": ["x", 1]}
        plain = await engine.get_handle("c").describe()
        assert (plain.search_attributes, plain.memo) == ({}, None)
        assert await listed(engine, search_attributes={"customer": "acme"}) == ["a"]
        assert await listed(engine, search_attributes={"priority": 3}) == ["a"]  # int 3, not float 3.0
        assert await listed(engine, search_attributes={"priority": 3.0}) == ["b"]
        assert await listed(engine, search_attributes={"score": 0.5, "vip": True}) == ["a"]
        assert await listed(engine, search_attributes={"vip": False}) == []
        # The same instant in another zone is the same value.
        assert await listed(engine, search_attributes={"due": DUE.astimezone(timezone(timedelta(hours=2)))}) == ["a"]
        assert await listed(engine, search_attributes={"customer": "acme", "priority": 4}) == []
        assert await listed(engine, search_attributes={"priority": "3"}) == []  # text "3" is not int 3
        # The memo is returned, never searched; the list carries both.
        [row] = await engine.list_runs(search_attributes={"customer": "acme"})
        assert (row.search_attributes, row.memo) == (attrs, {"note": ["x", 1]})


async def test_a_workflow_upserts_attributes_as_a_command_that_replay_matches(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([order], url=store_url) as engine:
        run = await engine.start(order.with_options(id="o", search_attributes={"flagged": True, "c": "acme"}), "o")
        await run.signal("stage", "paid")

        async def upserted() -> bool:
            return await listed(engine, search_attributes={"stage": "paid"}) == ["o"]

        await until(upserted)
        assert (await run.describe()).search_attributes == {"c": "acme", "stage": "paid"}  # flagged removed
        assert await listed(engine, search_attributes={"flagged": True}) == []
        await run.signal("finish")
        assert await run.result(timeout=30) == "o"
        history = await run.history()
        upserts = [e for e in history.events if isinstance(e, ev.SearchAttributesUpserted)]
        assert [e.attributes for e in upserts] == [{"stage": "s:paid", "flagged": None}]
        # The code replayed over its history matches the recorded upsert (and asks for nothing more);
        # a history recording other values does not match it.
        assert replay(order, history).finished
        changed = [replace(e, attributes={"stage": "s:shipped"}) if isinstance(e, ev.SearchAttributesUpserted)
                   else e for e in history.events]
        with pytest.raises(retold.NondeterminismError, match="SearchAttributesUpserted"):
            replay(order, changed)


async def test_each_list_filter(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([order, quick], url=store_url) as engine:
        t0 = datetime.now(UTC) - timedelta(seconds=1)
        done = await engine.start(quick.with_options(id="shop-done"), "x")
        assert await done.result(timeout=30) == "x"
        closed_at = (await done.describe()).closed_at
        assert closed_at is not None
        # The next runs start (and one closes) visibly later: a fast store can close two runs within
        # the same millisecond.
        while datetime.now(UTC) <= closed_at + timedelta(milliseconds=20):
            await anyio.sleep(0.002)
        waiting = await engine.start(order.with_options(id="shop-open"), "y")
        started = (await waiting.describe()).started_at
        other = await engine.start(quick.with_options(id="other-1"), "z")
        await other.result(timeout=30)
        assert set(await listed(engine)) == {"shop-done", "shop-open", "other-1"}
        assert await listed(engine, status="running") == ["shop-open"]
        assert await listed(engine, workflow="order") == ["shop-open"]
        assert sorted(await listed(engine, id_prefix="shop-")) == ["shop-done", "shop-open"]
        assert set(await listed(engine, started_after=t0)) == {"shop-done", "shop-open", "other-1"}
        assert set(await listed(engine, started_after=started)) == {"shop-open", "other-1"}
        assert await listed(engine, started_before=started) == ["shop-done"]
        assert set(await listed(engine, closed_after=closed_at)) == {"shop-done", "other-1"}  # never an open run
        # (1 ms past it: a float of seconds since 1970 holds about a quarter of a microsecond, so one
        # microsecond past a close time read back as a datetime is within rounding.)
        assert await listed(engine, closed_before=closed_at + timedelta(milliseconds=1)) == ["shop-done"]
        assert await listed(engine, closed_before=t0) == []
        assert await listed(engine, status="completed", id_prefix="other") == ["other-1"]
        with pytest.raises(ValueError, match="closed_after must be an aware datetime"):
            await engine.list_runs(closed_after=datetime(2026, 1, 1))


async def test_cursor_pages_hold_every_run_once_with_starts_between_pages(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([quick], url=store_url) as engine:
        for i in range(7):
            await engine.start(quick.with_options(id=f"r{i}", search_attributes={"batch": "one"}), str(i))
        before = await listed(engine, search_attributes={"batch": "one"})
        page = await engine.list_runs(limit=3, search_attributes={"batch": "one"})
        seen = [r.workflow_id for r in page]
        pages = 1
        while page.next_cursor is not None:
            # New runs (matching or not) start between pages: they are newer than the cursor, never on a later page.
            await engine.start(quick.with_options(id=f"new-{pages}", search_attributes={"batch": "one"}), "n")
            await engine.start(quick.with_options(id=f"other-{pages}"), "n")
            page = await engine.list_runs(limit=3, search_attributes={"batch": "one"}, cursor=page.next_cursor)
            seen += [r.workflow_id for r in page]
            pages += 1
        assert seen == before
        assert pages == 3  # 3 + 3 + 1: the last page says there is no next one
        # A cursor belongs to its filters, and does not go with an offset.
        first = await engine.list_runs(limit=2, search_attributes={"batch": "one"})
        assert first.next_cursor is not None
        with pytest.raises(retold.InvalidArgumentsError, match="other filters"):
            await engine.list_runs(limit=2, cursor=first.next_cursor)
        with pytest.raises(retold.InvalidArgumentsError, match="offset or a cursor"):
            await engine.list_runs(limit=2, offset=1, search_attributes={"batch": "one"}, cursor=first.next_cursor)
        with pytest.raises(retold.InvalidArgumentsError, match="not a cursor"):
            await engine.list_runs(cursor="garbage")


@pytest.mark.parametrize(("attrs", "message"), [
    ({"bad name": "x"}, "search attribute name 'bad name' is not valid"),
    ({"9lives": "x"}, "is not valid"),
    ({"x": [1, 2]}, "a list is not a search attribute type"),
    ({"x": None}, "a NoneType is not a search attribute type"),
    ({"when": datetime(2026, 1, 1)}, "naive"),
    ({"x": float("nan")}, "not finite"),
    ({"x": 2**70}, "out of the 64-bit range"),
    ({"x": "y" * 300}, "at most 256"),
])
async def test_bad_attributes_are_refused_with_their_reason_and_nothing_is_written(
    make_engine: EngineFactory, store_url: str, attrs: dict[str, Any], message: str,
) -> None:
    async with make_engine([quick], url=store_url) as engine:
        with pytest.raises(retold.InvalidArgumentsError, match=message):
            await engine.start(quick.with_options(id="never", search_attributes=attrs), "x")
        with pytest.raises(retold.InvalidArgumentsError, match=message):
            await engine.start("quick", "x", id="never", search_attributes=attrs)
        with pytest.raises(retold.InvalidArgumentsError, match=message):
            await engine.list_runs(search_attributes=attrs)
        assert await listed(engine) == []


async def test_a_bad_memo_is_refused_and_nothing_is_written(make_engine: EngineFactory, store_url: str) -> None:
    async with make_engine([quick], url=store_url) as engine:
        with pytest.raises(retold.InvalidArgumentsError, match="JSON values"):
            await engine.start("quick", "x", id="never", memo={"when": object()})
        with pytest.raises(retold.InvalidArgumentsError, match="a memo must be a dict"):
            quick.with_options(memo=["not", "a", "dict"])  # type: ignore[arg-type]
        assert await listed(engine) == []


async def test_a_bad_upsert_raises_in_workflow_code_and_records_nothing(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([bad_upsert], url=store_url) as engine:
        run = await engine.start(bad_upsert.with_options(id="bad"), ["a", "list"])
        assert await run.result(timeout=30) == (
            "refused: search attribute 'weird': a list is not a search attribute type (str, int, float, bool or an "
            "aware datetime)")
        history = await run.history()
        assert not any(isinstance(e, ev.SearchAttributesUpserted) for e in history.events)
        assert (await run.describe()).search_attributes == {}


async def test_children_and_detached_runs_get_their_own_attributes_and_memo(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([parent, quick], url=store_url) as engine:
        run = await engine.start(parent.with_options(id="p"))
        assert await run.result(timeout=30) == "c"
        child = await engine.get_handle("the-child").describe()
        assert (child.search_attributes, child.memo) == ({"kind": "child"}, {"from": "parent"})
        assert await listed(engine, search_attributes={"kind": "child"}) == ["the-child"]
        detached = await engine.get_handle("detached").describe()
        assert (detached.search_attributes, detached.memo) == ({"kind": "detached"}, {"from": "starter"})
        assert await listed(engine, search_attributes={"kind": "detached"}) == ["detached"]


# -- assert_deterministic covers the upsert command ---------------------------------------------


@retold.workflow(signals={"stage": str})
async def staged() -> list[str | None]:
    stages: list[str | None] = []
    for _ in range(2):
        stage = await retold.wait_signal("stage", str)
        retold.upsert_search_attributes({"stage": stage, "count": len(stages) + 1})
        stages.append(stage)
    return stages


@retold.workflow
async def upserts_a_set_order() -> str:
    # Iterating a set of strings: its order follows the process's string-hash seed.
    order = ",".join({"apple", "pear", "fig", "kiwi", "plum", "lime", "date", "yuzu", "sloe", "quince"})
    retold.upsert_search_attributes({"order": order})
    await retold.sleep(1)
    return order


def test_assert_deterministic_passes_a_workflow_that_upserts() -> None:
    assert_deterministic(staged, signals=[("stage", "paid"), ("stage", "shipped")], max_examples=15)


def test_assert_deterministic_catches_an_upsert_whose_values_differ_on_replay() -> None:
    with pytest.raises(NondeterminismFound, match="SearchAttributesUpserted"):
        assert_deterministic(upserts_a_set_order, max_examples=5, crashes=False)
