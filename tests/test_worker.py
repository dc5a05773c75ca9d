"""Split mode in one process: worker targets, starts by name, client-only engines, drain."""

from __future__ import annotations

import anyio
import pytest

import retold
from retold._worker import load_target
from tests.conftest import EngineFactory
from tests.scaleout import _app


@retold.activity
async def pause(seconds: float) -> str:
    await anyio.sleep(seconds)
    return "paused"


@retold.workflow
async def pauses(seconds: float) -> str:
    return await retold.execute(pause, seconds)


@retold.workflow
async def greet(name: str) -> str:
    return f"hello {name}"


def test_targets_name_modules_lists_single_items_and_engine_arguments() -> None:
    whole = load_target("tests.scaleout._app")
    assert {w.name for w in whole["workflows"]} == {"routed", "one_step", "timer_and_signal", "racer"}
    assert {a.name for a in whole["activities"]} == {"on_cpu", "on_gpu", "paused_step"}
    assert load_target("tests.scaleout._app:ONE_STEP") == {
        "workflows": [_app.one_step], "activities": [_app.paused_step]}
    assert load_target("tests.scaleout._app:on_gpu") == {"workflows": [], "activities": [_app.on_gpu]}
    assert load_target("tests.scaleout._app:ROUTED_CPU") == _app.ROUTED_CPU
    assert load_target("tests:scaleout._app")["workflows"] == whole["workflows"]  # a dotted attribute


@pytest.mark.parametrize(("target", "message"), [
    ("", "is not MODULE or MODULE:ATTR"),
    ("tests.scaleout._app:", "is not MODULE or MODULE:ATTR"),
    ("tests.nowhere", "cannot import 'tests.nowhere'"),
    ("tests.scaleout._app:NOPE", "has no attribute 'NOPE'"),
    ("tests.scaleout._app:SPIN_NOT_HERE", "has no attribute"),
    ("tests.scaleout._app:log_line", "is function: name a module"),
    ("tests.conftest", "names no @retold.workflow and no @retold.activity"),
])
def test_bad_targets_say_what_is_wrong(target: str, message: str) -> None:
    with pytest.raises(retold.ConfigurationError, match=message):
        load_target(target)


def test_targets_holding_other_things_or_unknown_engine_arguments_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_app, "MIXED", [_app.on_cpu, print], raising=False)
    monkeypatch.setattr(_app, "CONFIG", {"workflows": [_app.routed], "laese": 3}, raising=False)
    with pytest.raises(retold.ConfigurationError, match="neither a workflow nor an activity"):
        load_target("tests.scaleout._app:MIXED")
    with pytest.raises(retold.ConfigurationError, match=r"keys \['laese'\] that are not Engine arguments"):
        load_target("tests.scaleout._app:CONFIG")





@pytest.mark.anyio
async def test_a_client_only_engine_starts_what_others_host(make_engine: EngineFactory) -> None:
    async with make_engine(run_workers=False) as web_app:
        typed = await web_app.start(greet.with_options(id="typed"), "typed")   # not registered: fine here
        named = await web_app.start("greet", "named", id="named")
        with pytest.raises(retold.RetoldError, match="workflow name must not be empty"):
            await web_app.start("")
        async with make_engine([greet]):
            assert await typed.result(timeout=10) == "hello typed"
            assert await named.result(timeout=10) == "hello named"


@pytest.mark.anyio
async def test_a_hosting_engine_takes_names_for_what_it_does_not_host(make_engine: EngineFactory) -> None:
    async with make_engine([pauses], [pause]) as engine:
        with pytest.raises(retold.NotRegisteredError, match="'greet' is not registered"):
            await engine.start(greet, "forgotten")
        run = await engine.start("greet", "elsewhere")  # explicit: another process hosts it
        with pytest.raises(retold.InvalidArgumentsError):
            await engine.start("pauses", "not a number")  # hosted: its arguments are still checked
        assert (await run.describe()).status == "running"


@pytest.mark.anyio
async def test_drain_stops_claiming_and_waits_for_the_tasks_in_flight(make_engine: EngineFactory) -> None:
    async with make_engine([pauses], [pause]) as engine:
        first = await engine.start(pauses, 0.5)
        with anyio.fail_after(10):
            while not any(worker.busy for worker in engine._activity_workers):
                await anyio.sleep(0.01)
        assert await engine.drain(10) is True  # the activity finished within the grace
        second = await engine.start(pauses, 0.0)
        await anyio.sleep(0.3)
        assert (await second.describe()).event_count == 1  # draining: not claimed
        assert (await first.describe()).status == "running"  # its last step is left for others
    async with make_engine([pauses], [pause], lease=60) as engine:
        assert await engine.get_handle(first.workflow_id).result(timeout=10) == "paused"
        assert await engine.get_handle(second.workflow_id).result(timeout=10) == "paused"
        long = await engine.start(pauses, 30.0)
        with anyio.fail_after(10):
            while not any(worker.busy for worker in engine._activity_workers):
                await anyio.sleep(0.01)
        assert await engine.drain(0.2) is False  # handed back when the engine closes
    async with make_engine([pauses], [pause], lease=60) as engine:
        with anyio.fail_after(20):  # the activity runs again here: not after the 60 s lease, it was handed back
            while not any(worker.busy for worker in engine._activity_workers):
                await anyio.sleep(0.05)
        assert (await engine.get_handle(long.workflow_id).describe()).event_count == 2  # no failure recorded
