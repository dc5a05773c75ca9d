"""Ids: one limit on every store, checked before anything is written; default child ids stay short and unique."""

from __future__ import annotations

from pathlib import Path

import pytest

import retold
from retold.history.ids import MAX_ID_LENGTH
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ids.db'}"
    return str(request.getfixturevalue("postgres_url"))


@retold.workflow
async def nest(depth: int) -> list[str]:
    """Start a child with the default id, ``depth`` levels deep; return every id on the way down."""
    me = retold.info().workflow_id
    if depth == 0:
        return [me]
    below = await retold.execute_child(nest, depth - 1)
    return [me, *below]


async def test_default_child_ids_stay_within_the_limit_at_any_depth(make_engine: EngineFactory, url: str) -> None:
    async with make_engine([nest], url=url) as engine:
        run = await engine.start(nest.with_options(id="p" * MAX_ID_LENGTH), 6)
        ids = await run.result(timeout=60)
    assert len(ids) == 7
    assert len(set(ids)) == 7
    assert all(len(i) <= MAX_ID_LENGTH for i in ids)


@retold.workflow
async def batches(round_no: int) -> str:
    """Starts a child with the default id in every run of a continue-as-new chain."""
    done = await retold.execute_child(leaf, round_no)
    if round_no < 3:
        retold.continue_as_new(round_no + 1)
    return done


@retold.workflow
async def leaf(n: int) -> str:
    return f"leaf {n}"


async def test_default_child_ids_do_not_collide_across_continue_as_new(make_engine: EngineFactory, url: str) -> None:
    async with make_engine([batches, leaf], url=url) as engine:
        run = await engine.start(batches.with_options(id="chain"), 1)
        assert await run.result(timeout=60) == "leaf 3"
        children = [r for r in await engine.list_runs(workflow="leaf")]
    assert len(children) == 3
    assert all(r.status == "completed" for r in children)


async def test_over_long_ids_are_refused_before_anything_is_written(make_engine: EngineFactory, url: str) -> None:
    async with make_engine([leaf], url=url) as engine:
        with pytest.raises(retold.InvalidArgumentsError, match="at most 255 characters, this one has 256"):
            await engine.start(leaf.with_options(id="x" * (MAX_ID_LENGTH + 1)), 1)
        with pytest.raises(retold.InvalidArgumentsError, match="idempotency key may have at most 255"):
            await engine.start(leaf.with_options(idempotency_key="k" * 300), 1)
        with pytest.raises(retold.InvalidArgumentsError, match="must not be empty"):
            await engine.start(leaf.with_options(id=""), 1)
        assert await engine.list_runs() == []
        # The limit itself is fine on every store.
        run = await engine.start(leaf.with_options(id="y" * MAX_ID_LENGTH, idempotency_key="z" * MAX_ID_LENGTH), 1)
        assert await run.result(timeout=30) == "leaf 1"


@retold.workflow
async def names_a_long_child() -> str:
    try:
        await retold.execute_child(leaf.with_options(id="c" * 300), 1)
    except retold.InvalidArgumentsError as error:
        return f"refused: {error}"
    return "started"


async def test_an_over_long_child_id_fails_at_the_call_not_in_a_retry_loop(
    make_engine: EngineFactory, url: str
) -> None:
    async with make_engine([names_a_long_child, leaf], url=url) as engine:
        run = await engine.start(names_a_long_child)
        result = await run.result(timeout=30)
    assert result.startswith("refused: a child workflow id may have at most 255 characters")
