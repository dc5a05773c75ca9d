"""Bad input gets a clear error from the RetoldError tree, and writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import retold
from retold.stores.sql import SqlStore
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.workflow
async def order(order_id: str, cents: int) -> str:
    retold.set_query_handler("echo", lambda: order_id)
    await retold.wait_signal("never")
    return order_id


@retold.workflow
async def quick(value: object) -> str:
    return "done"


@retold.workflow
async def unregistered() -> str:
    return "never hosted"


def count_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


async def test_rejected_starts_write_nothing(make_engine: EngineFactory, tmp_path: Path) -> None:
    async with make_engine([order, quick]) as engine:
        before = count_rows(tmp_path / "retold.db")
        with pytest.raises(retold.NotRegisteredError, match="workflow 'unregistered' is not registered"):
            await engine.start(unregistered)
        with pytest.raises(retold.InvalidArgumentsError, match="missing a required argument: 'cents'"):
            await engine.start(order, "o-1")  # type: ignore[call-arg]
        with pytest.raises(retold.InvalidArgumentsError, match="too many positional arguments"):
            await engine.start(order, "o-1", 5, 6)  # type: ignore[call-arg]
        with pytest.raises(retold.InvalidArgumentsError, match="argument 2 should be int, got str"):
            await engine.start(order, "o-1", "five")  # type: ignore[arg-type]
        with pytest.raises(retold.PayloadError, match="cannot encode"):
            await engine.start(quick, object())
        with pytest.raises(retold.ConfigurationError, match="needs a workflow, got 'print', which is not one"):
            await engine.start(print)  # type: ignore[arg-type]
        assert count_rows(tmp_path / "retold.db") == before
        assert await engine.list_runs() == []


async def test_signals_and_queries_to_unknown_or_finished_runs(make_engine: EngineFactory) -> None:
    async with make_engine([order, quick]) as engine:
        ghost = engine.get_handle("no-such-run")
        with pytest.raises(retold.RunNotFoundError, match="no run with id 'no-such-run'"):
            await ghost.signal("x", 1)
        with pytest.raises(retold.RunNotFoundError):
            await ghost.query("echo")
        with pytest.raises(retold.RunNotFoundError):
            await ghost.cancel()
        with pytest.raises(retold.RunNotFoundError):
            await ghost.result(timeout=1)

        done = await engine.start(quick, 1)
        await done.result(timeout=10)
        events_before = len(await done.history())
        with pytest.raises(retold.RunFinishedError, match=r"has already finished \(completed\)"):
            await done.signal("x", 1)
        with pytest.raises(retold.QueryError, match="has no query 'anything'"):
            await done.query("anything")  # a finished run is replayed to answer, and has no such query
        with pytest.raises(retold.RunFinishedError):
            await done.cancel()
        assert len(await done.history()) == events_before

        live = await engine.start(order, "o-9", 1)
        with pytest.raises(retold.QueryError, match="has no query 'nope' \\(known: echo\\)"):
            await live.query("nope")
        assert await live.query("echo") == "o-9"
        with pytest.raises(retold.PayloadError):
            await live.signal("x", object())
        await live.cancel()


async def test_a_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    before = foreign.read_bytes()
    with pytest.raises(retold.SchemaError, match="is not a retold database"):
        async with retold.Engine(f"sqlite:///{foreign}"):
            pass
    assert foreign.read_bytes() == before

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(retold.SchemaError, match="is not a SQLite database"):
        async with retold.Engine(f"sqlite:///{garbage}"):
            pass
    assert garbage.read_bytes() == b"this is not a database at all" * 100


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    async with retold.Engine(f"sqlite:///{db}"):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE retold_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(retold.SchemaError, match="schema version 99, newer than this retold supports"):
        async with retold.Engine(f"sqlite:///{db}"):
            pass


async def test_unsupported_urls_and_options() -> None:
    with pytest.raises(retold.StoreError, match="unsupported store URL"):
        retold.Engine("mysql://nowhere")
    with pytest.raises(retold.ConfigurationError, match="cache_size"):
        retold.Engine("memory://", cache_size=0)
    with pytest.raises(retold.ConfigurationError, match=r"takes @retold\.workflow"):
        retold.Engine("memory://", workflows=[print])
    with pytest.raises(retold.ConfigurationError, match="must be at least 1"):
        retold.RetryPolicy(backoff_coefficient=0.5)
    with pytest.raises(retold.ConfigurationError, match="needs an async def"):
        retold.workflow(print)  # type: ignore[arg-type]


def test_store_open_is_idempotent(tmp_path: Path) -> None:
    import anyio

    async def main() -> None:
        store = SqlStore(f"sqlite:///{tmp_path / 'twice.db'}")
        await store.open()
        await store.open()
        await store.close()

    anyio.run(main)


@retold.workflow(name="order")
async def another_order(order_id: str, cents: int) -> str:
    return order_id


async def test_two_definitions_with_one_name_are_refused() -> None:
    with pytest.raises(retold.ConfigurationError, match="two workflows are named 'order'"):
        retold.Engine("memory://", workflows=[order, another_order])
    with pytest.raises(retold.ConfigurationError, match=r"activities= takes @retold\.activity"):
        retold.Engine("memory://", activities=[order])


async def test_an_engine_must_be_open() -> None:
    engine = retold.Engine("memory://", workflows=[quick])
    with pytest.raises(retold.RetoldError, match="the engine is not open"):
        await engine.start(quick, 1)
    with pytest.raises(retold.RetoldError, match="the engine is not open"):
        engine.get_handle("x")
