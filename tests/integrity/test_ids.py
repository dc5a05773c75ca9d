"""Ids: one limit on every store, checked before anything is written; default child ids stay short and unique."""

from __future__ import annotations

from pathlib import Path

import pytest

import retold
import retold.testing
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
        run = await engine.start(nest.with_options(id="p" * MAX_ID_LENGTH), 10)
        ids = await run.result(timeout=120)
        for parent in ids[:-1]:  # each parent's history replays (its child's id is the recorded one)
            retold.testing.replay(nest, await engine.history(parent))
    assert len(ids) == 11
    assert len(set(ids)) == 11
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
        with pytest.raises(retold.InvalidArgumentsError, match="at most 255 characters, this one has 300"):
            await engine.start(leaf.with_options(id="x" * 300), 1)
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


def test_names_and_queues_over_the_limit_are_refused_where_they_are_written() -> None:
    """A workflow or activity name, or a task queue, is stored beside the ids (255 characters on PostgreSQL):
    a longer one is refused in the code that names it, not by the database in a retried workflow task."""

    async def work() -> None:
        return None

    def act() -> None:
        return None

    limit = r"at most 255 characters \(the limit of ids, on every store\)"
    with pytest.raises(retold.ConfigurationError, match=rf"name of .*work may have {limit}, this one has 256"):
        retold.workflow(name="w" * 256)(work)
    with pytest.raises(retold.ConfigurationError, match=rf"name of .*act may have {limit}, this one has 300"):
        retold.activity(name="a" * 300)(act)
    with pytest.raises(retold.ConfigurationError, match="task_queue may have at most 255 characters"):
        retold.activity(task_queue="q" * 256)(act)
    with pytest.raises(retold.ConfigurationError, match="task_queue may have at most 255 characters"):
        leaf_activity.with_options(task_queue="q" * 256)
    assert retold.workflow(name="w" * MAX_ID_LENGTH)(work).name == "w" * MAX_ID_LENGTH


@retold.activity
def leaf_activity() -> None:
    return None


@retold.workflow
async def names_a_long_child_unguarded() -> str:
    return await retold.execute_child(leaf.with_options(id="c" * 300), 1)


async def test_an_over_long_child_id_left_uncaught_fails_the_run_with_the_reason(
    make_engine: EngineFactory, url: str
) -> None:
    async with make_engine([names_a_long_child_unguarded, leaf], url=url) as engine:
        run = await engine.start(names_a_long_child_unguarded)
        with pytest.raises(retold.WorkflowFailedError, match="child workflow id may have at most 255 characters"):
            await run.result(timeout=30)
        assert (await run.describe()).status == "failed"
        assert await engine.list_runs(workflow="leaf") == []
