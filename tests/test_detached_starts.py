"""Workflows started by a workflow as runs of their own, not children (issue 14, item 6)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.workflow
async def report(day: str) -> str:
    await retold.wait_signal("go", str)
    return f"report {day}"


@retold.workflow
async def nightly(day: str) -> str:
    run_id = await retold.start_workflow(report.with_options(id=f"report-{day}"), day)
    await retold.wait_signal("close", str)
    return run_id


@retold.workflow
async def twice(day: str) -> str:
    await retold.start_workflow(report.with_options(id=f"report-{day}"), day)
    try:
        await retold.start_workflow(report.with_options(id=f"report-{day}"), day)
    except retold.IdempotencyError as err:
        return f"refused: {err}"
    return "started twice"


@retold.workflow
async def unnamed() -> str:
    return await retold.start_workflow(report, "x")


async def test_a_detached_run_outlives_its_starter_which_knows_its_run_id(
    make_engine: EngineFactory, store_url: str
) -> None:
    async with make_engine([nightly, report], url=store_url) as engine:
        starter = await engine.start(nightly.with_options(id="nightly"), "d1")
        await starter.signal("close", "now")
        run_id = await starter.result(timeout=30)
        started = engine.get_handle("report-d1")
        described = await started.describe()
        assert (described.run_id, described.status) == (run_id, "running")  # the starter's close left it alone
        record = await engine.client.store.get_run(run_id)
        assert record.parent_run_id is None  # not a child
        history = [e.type for e in await starter.history()]
        assert history.count("WorkflowStartRequested") == 1
        assert history.count("WorkflowStartResolved") == 1
        await started.signal("go", "now")
        assert await started.result(timeout=30) == "report d1"


async def test_a_taken_id_is_refused_in_the_workflow_and_nothing_else_is_started(
    make_engine: EngineFactory, store_url: str
) -> None:
    async with make_engine([twice, report], url=store_url) as engine:
        run = await engine.start(twice.with_options(id="twice"), "d2")
        assert await run.result(timeout=30) == "refused: workflow id 'report-d2' is already in use"
        assert len([r for r in await engine.list_runs(limit=100) if r.workflow == "report"]) == 1


async def test_without_an_id_the_run_gets_one_derived_from_the_starters_run(make_engine: EngineFactory) -> None:
    async with make_engine([unnamed, report]) as engine:
        run = await engine.start(unnamed.with_options(id="u"))
        run_id = await run.result(timeout=30)
        described = await engine.client.store.get_run(run_id)
        assert described.workflow_id == f"u/{run.run_id}/started-2"


async def test_a_restarted_engine_replays_the_start_without_starting_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with retold.Engine(url, workflows=[nightly, report]) as engine:
        starter = await engine.start(nightly.with_options(id="nightly"), "d3")
        with anyio.fail_after(30):
            while "WorkflowStartResolved" not in [e.type for e in await starter.history()]:
                await anyio.sleep(0.02)
    # A new engine (the old one's cache gone) replays the starter's history to go on.
    async with retold.Engine(url, workflows=[nightly, report]) as engine:
        starter = engine.get_handle("nightly")
        await starter.signal("close", "now")
        run_id = await starter.result(timeout=30)
        reports = [r for r in await engine.list_runs(limit=100) if r.workflow == "report"]
        assert [r.run_id for r in reports] == [run_id]


async def test_a_detached_start_works_on_nats(make_engine: EngineFactory, nats_url: str) -> None:
    async with make_engine([nightly, report], url=nats_url) as engine:
        starter = await engine.start(nightly.with_options(id="nightly"), "d4")
        await starter.signal("close", "now")
        run_id = await starter.result(timeout=30)
        started = engine.get_handle("report-d4")
        assert (await started.describe()).run_id == run_id
        await started.signal("go", "now")
        assert await started.result(timeout=30) == "report d4"


@retold.workflow
async def starts_then_waits(day: str) -> str:
    run_id = await retold.start_workflow(report.with_options(id=f"report-{day}"), day)
    extra = await retold.wait_signal("extra", str, timeout=5)
    return f"{run_id[:8]} {extra}"


def test_a_start_replays_deterministically_under_any_scenario() -> None:
    from retold.testing import assert_deterministic

    assert_deterministic(starts_then_waits, args=("d5",), signals=[("extra", "x")], max_examples=25,
                         cross_process=False)
