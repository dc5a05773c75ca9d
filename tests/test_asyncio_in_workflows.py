"""Ordinary asyncio in workflow code stays deterministic across replays."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

import retold
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.runtime._instance import WorkflowInstance
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

ENGINES: list[retold.Engine] = []


@retold.activity
async def echo(value: str) -> str:
    # Throw every cached run away, so the next workflow task replays from scratch.
    for engine in ENGINES:
        engine.cache.clear()
    return value


@retold.workflow
async def primitives() -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["gather"] = await asyncio.gather(retold.execute(echo, "a"), retold.execute(echo, "b"))

    task = asyncio.create_task(retold.execute(echo, "task"))
    out["task"] = await task

    pending = {asyncio.ensure_future(retold.execute(echo, x)) for x in ("w1", "w2")}
    done, _ = await asyncio.wait(pending)
    out["wait"] = sorted(t.result() for t in done)

    out["wait_for"] = await asyncio.wait_for(retold.execute(echo, "in time"), timeout=60)
    try:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.05)
    except TimeoutError:
        out["wait_for_timeout"] = True

    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)
    except TimeoutError:
        out["timeout"] = True

    results: list[str] = []
    async with asyncio.TaskGroup() as tg:
        for x in ("g1", "g2", "g3"):
            tg.create_task(retold.execute(echo, x)).add_done_callback(
                lambda t: results.append(t.result())
            )
    out["taskgroup"] = sorted(results)

    event = asyncio.Event()
    lock = asyncio.Lock()
    queue: asyncio.Queue[int] = asyncio.Queue()
    order: list[str] = []

    async def producer() -> None:
        for i in range(3):
            await queue.put(i)
            await asyncio.sleep(0.01)
        event.set()

    async def locked(name: str) -> None:
        async with lock:
            order.append(f"{name}-in")
            await retold.execute(echo, name)
            order.append(f"{name}-out")

    await asyncio.gather(producer(), locked("l1"), locked("l2"))
    await event.wait()
    out["queue"] = [queue.get_nowait() for _ in range(queue.qsize())]
    out["lock"] = order
    return out


async def test_asyncio_primitives_work_and_replay(make_engine: EngineFactory) -> None:
    async with make_engine([primitives], [echo]) as engine:
        ENGINES.append(engine)
        try:
            run = await engine.start(primitives)
            result = await run.result(timeout=20)
            history = await run.history()
        finally:
            ENGINES.remove(engine)
    assert result == {
        "gather": ["a", "b"], "task": "task", "wait": ["w1", "w2"], "wait_for": "in time",
        "wait_for_timeout": True, "timeout": True, "taskgroup": ["g1", "g2", "g3"],
        "queue": [0, 1, 2], "lock": ["l1-in", "l1-out", "l2-in", "l2-out"],
    }
    # A replay from scratch produces no new command and no error.
    assert WorkflowInstance(primitives, run.run_id or "", JsonCodec()).apply(list(history)) == []


side_effect_calls = itertools.count()


def read_counter() -> int:
    return next(side_effect_calls)


@retold.workflow
async def nondeterministic_sources() -> list[Any]:
    first = [retold.random(), str(retold.uuid4()), retold.side_effect(read_counter), retold.now().isoformat()]
    # The live values are recorded as the activity's input; the cache is cleared
    # inside it, so everything after runs on an instance rebuilt by replay.
    await retold.execute(echo, json.dumps(first))
    again = [retold.random(), str(retold.uuid4()), retold.side_effect(read_counter), retold.now().isoformat()]
    return [first, again, retold.info().run_id]


async def test_random_uuid_now_and_side_effects_replay_identically(make_engine: EngineFactory) -> None:
    async with make_engine([nondeterministic_sources], [echo]) as engine:
        ENGINES.append(engine)
        try:
            run = await engine.start(nondeterministic_sources)
            first, again, run_id = await run.result(timeout=10)
            history = await run.history()
        finally:
            ENGINES.remove(engine)
    assert run_id == run.run_id
    scheduled = next(e for e in history if isinstance(e, ev.ActivityScheduled))
    assert json.loads(json.loads(scheduled.input)[0]) == first  # replay drew the same values
    assert first != again
    assert first[2] + 1 == again[2]  # each side effect ran exactly once, live
    markers = [e for e in history if e.type == "MarkerRecorded"]
    assert len(markers) == 2
    replayed = WorkflowInstance(nondeterministic_sources, run.run_id or "", JsonCodec())
    assert replayed.apply(list(history)) == []
    assert next(side_effect_calls) == again[2] + 1  # the replay did not call read_counter
