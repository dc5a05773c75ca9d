"""Keyword arguments, defaults and keyword-only parameters reach workflows,
activities and children through the history, and survive a replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import retold
from retold.history import events as ev
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity
async def compose(to: str, greeting: str = "hello", *, shout: bool, times: int = 1) -> str:
    text = f"{greeting} {to}"
    return " ".join([text.upper() if shout else text] * times)


@retold.activity
def count_words(text: str, *, minimum: int = 0) -> int:
    return max(len(text.split()), minimum)


@retold.workflow
async def signature_child(word: str, *, repeat: int = 2) -> str:
    return "-".join([word] * repeat)


@retold.workflow
async def greet_all(to: str, retries: int = 3, *, shout: bool = False, sign: str = "") -> dict[str, Any]:
    first = await retold.execute(compose, to, shout=shout)
    second = await retold.execute(compose, to, "hi", shout=shout, times=2)
    approved = await retold.wait_signal("go", bool)
    words = await retold.execute(count_words, second, minimum=retries)
    child = await retold.start_child(signature_child, sign or "none", repeat=retries)
    return {"first": first, "second": second, "words": words, "child": child, "approved": approved}


EXPECTED = {
    "first": "HELLO ADA", "second": "HI ADA HI ADA", "words": 5, "child": "x-x-x-x-x", "approved": True,
}


async def test_keyword_arguments_travel_through_the_history_and_replay(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'kw.db'}"
    async with make_engine([greet_all, signature_child], [compose, count_words], url=url) as engine:
        run = await engine.start(greet_all.with_options(id="kw-1"), "ada", retries=5, shout=True, sign="x")
        completed = 0
        async with run.watch() as events:
            async for event in events:
                completed += isinstance(event, ev.ActivityCompleted)
                if completed == 2:
                    break  # both activities done: the run waits for "go"
    # A new engine has no cached copy: it replays the history to go on.
    async with make_engine([greet_all, signature_child], [compose, count_words], url=url) as engine:
        run = engine.get_handle("kw-1")
        await run.signal("go", True)
        assert await run.result(timeout=60) == EXPECTED
        history = await run.history()
    started = next(e for e in history if isinstance(e, ev.WorkflowStarted))
    assert orjson.loads(started.input) == {"args": ["ada", 5], "kwargs": {"shout": True, "sign": "x"}}
    scheduled = [orjson.loads(e.input) for e in history if isinstance(e, ev.ActivityScheduled)]
    assert scheduled == [
        {"args": ["ada"], "kwargs": {"shout": True}},
        {"args": ["ada", "hi"], "kwargs": {"shout": True, "times": 2}},
        {"args": ["HI ADA HI ADA"], "kwargs": {"minimum": 5}},
    ]
    child = next(e for e in history if isinstance(e, ev.ChildWorkflowStarted))
    assert orjson.loads(child.input) == {"args": ["x"], "kwargs": {"repeat": 5}}


async def test_keywords_for_positional_parameters_are_recorded_as_positions(make_engine: EngineFactory) -> None:
    async with make_engine([greet_all, signature_child], [compose, count_words]) as engine:
        run = await engine.start(greet_all.with_options(id="kw-2"), to="bo", retries=1)
        await run.signal("go", False)
        result = await run.result(timeout=60)
        history = await run.history()
    assert result["first"] == "hello bo"
    started = next(e for e in history if isinstance(e, ev.WorkflowStarted))
    assert orjson.loads(started.input) == ["bo", 1]  # the form histories always had


async def test_by_name_keywords_are_arguments_and_id_is_the_start_option(make_engine: EngineFactory) -> None:
    async with make_engine([greet_all, signature_child], [compose, count_words]) as engine:
        run = await engine.start("greet_all", "cy", shout=True, id="kw-3")
        assert run.workflow_id == "kw-3"
        await run.signal("go", True)
        assert (await run.result(timeout=60))["first"] == "HELLO CY"


@retold.workflow
async def passes_old_options(to: str) -> str:
    call: Any = retold.execute
    result: str = await call(compose, to, shout=False, retry=retold.RetryPolicy(max_attempts=1))
    return result


async def test_mismatches_name_the_argument_and_write_nothing(make_engine: EngineFactory) -> None:
    start: Any = None
    async with make_engine([greet_all, signature_child, passes_old_options], [compose, count_words]) as engine:
        start = engine.start
        with pytest.raises(retold.InvalidArgumentsError,
                           match="workflow 'greet_all': got an unexpected keyword argument 'shuot'"):
            await start(greet_all, "ada", shuot=True)
        with pytest.raises(retold.InvalidArgumentsError, match="argument 'shout' should be bool, got str 'yes'"):
            await start(greet_all, "ada", shout="yes")
        with pytest.raises(retold.InvalidArgumentsError,
                           match=r"unexpected keyword argument 'id'; start options go through the workflow's "
                                 r"\.with_options\(id=\.\.\., idempotency_key=\.\.\.\)"):
            await start(greet_all, "ada", id="kw-4")
        assert await engine.list_runs() == []
        run = await engine.start(passes_old_options.with_options(id="kw-5"), "ada")
        with pytest.raises(retold.WorkflowFailedError,
                           match=r"unexpected keyword argument 'retry'; per-call options go through "
                                 r"compose\.with_options\(retry=\.\.\.\)"):
            await run.result(timeout=60)


def test_with_options_copies_and_keeps_the_definition() -> None:
    fast = compose.with_options(start_to_close=5, task_queue="fast")
    assert fast is not compose
    assert fast.name == compose.name
    assert fast.options.task_queue == "fast"
    assert compose.options.task_queue == "default"
    named = greet_all.with_options(id="w-1").with_options(idempotency_key="k")
    assert (named.id, named.idempotency_key) == ("w-1", "k")
    assert greet_all.id is None
    assert named.same(greet_all)


@retold.workflow
async def keyword_steps(to: str, *, shout: bool = False) -> int:
    text = await retold.execute(compose, to, shout=shout, times=3)
    return await retold.execute(count_words, text, minimum=1)


def test_the_simulator_replays_keyword_arguments() -> None:
    from retold.testing import Scenario, check_scenario

    scenario = Scenario(args=("ada",), crash_after=frozenset({1, 2, 3}))
    history = check_scenario(keyword_steps, scenario, activities=[compose, count_words])
    inputs = [orjson.loads(e.input) for e in history if isinstance(e, ev.ActivityScheduled)]
    assert inputs == [
        {"args": ["ada"], "kwargs": {"shout": False, "times": 3}},
        {"args": ["hello ada hello ada hello ada"], "kwargs": {"minimum": 1}},
    ]
    completed = next(e for e in history if isinstance(e, ev.WorkflowCompleted))
    assert orjson.loads(completed.result) == 6


async def test_keyword_arguments_with_an_encrypting_codec(make_engine: EngineFactory, tmp_path: Path) -> None:
    """A random-nonce codec: replay and idempotent starts compare the keyword arguments' values."""
    from tests.crypto_shop import FernetCodec

    url = f"sqlite:///{tmp_path / 'sealed.db'}"
    definitions = ([greet_all, signature_child], [compose, count_words])
    async with make_engine(*definitions, url=url, codec=FernetCodec()) as engine:
        run = await engine.start(greet_all.with_options(id="kw-sealed"), "ada", shout=True)
        again = await engine.start(greet_all.with_options(id="kw-sealed"), "ada", shout=True)
        assert (again.run_id, again.created) == (run.run_id, False)
        completed = 0
        async with run.watch() as events:
            async for event in events:
                completed += isinstance(event, ev.ActivityCompleted)
                if completed == 2:
                    break
    async with make_engine(*definitions, url=url, codec=FernetCodec(), cache_size=1) as engine:
        run = engine.get_handle("kw-sealed")
        await run.signal("go", True)
        assert (await run.result(timeout=60))["second"] == "HI ADA HI ADA"
