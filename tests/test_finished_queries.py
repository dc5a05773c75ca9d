"""Queries on finished runs are answered by replaying the stored history.

On every face: Python, HTTP, CLI. Signals and cancels to a finished run
still raise ``RunFinishedError`` (409 over HTTP, exit 1 on the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from click.testing import CliRunner

import retold
from retold.cli import cli
from tests import shop
from tests.cli.conftest import cli_env
from tests.conftest import EngineFactory
from tests.http_api.conftest import Server, serve


@retold.workflow
async def tracked(fail: bool) -> str:
    status = "started"
    retold.set_query_handler("status", lambda: status)
    retold.set_query_handler("repeat", lambda n: [status] * n)
    await retold.wait_signal("go")
    status = "finishing"
    if fail:
        raise ValueError("boom")
    status = "done"
    return status


async def wait_closed(run: retold.RunHandle[Any]) -> str:
    with anyio.fail_after(60):
        while (status := (await run.describe()).status) == "running":
            await anyio.sleep(0.02)
    return status


@pytest.mark.anyio
async def test_python_queries_on_finished_runs_replay_the_history(make_engine: EngineFactory) -> None:
    async with make_engine([tracked]) as engine:
        completed = await engine.start(tracked.with_options(id="completed"), False)
        failed = await engine.start(tracked.with_options(id="failed"), True)
        cancelled = await engine.start(tracked.with_options(id="cancelled"), False)
        await completed.signal("go")
        await failed.signal("go")
        await cancelled.cancel()
        assert [await wait_closed(r) for r in (completed, failed, cancelled)] == ["completed", "failed", "cancelled"]
        sizes = [len(await r.history()) for r in (completed, failed, cancelled)]

        assert await completed.query("status") == "done"
        assert await completed.query("repeat", 2) == ["done", "done"]
        assert await failed.query("status") == "finishing"
        assert await cancelled.query("status") == "started"
        run_id = (await completed.describe()).run_id
        assert await engine.get_handle(run_id).query("status") == "done"  # by run id too
        with pytest.raises(retold.QueryError, match="has no query 'nope'"):
            await completed.query("nope")

        # Signals and cancels are still refused, and nothing was written.
        for run in (completed, failed, cancelled):
            with pytest.raises(retold.RunFinishedError, match="has already finished"):
                await run.signal("go")
            with pytest.raises(retold.RunFinishedError, match="has already finished"):
                await run.cancel()
        assert [len(await r.history()) for r in (completed, failed, cancelled)] == sizes

    # Another engine (a restart, nothing cached) answers from the stored history.
    async with make_engine([tracked]) as engine:
        assert await engine.get_handle("completed").query("status") == "done"
        assert await engine.get_handle("failed").query("status") == "finishing"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db = tmp_path / "retold.db"
    engine = retold.Engine(f"sqlite:///{db}", workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES, poll_interval=0.05)
    with serve(engine, db) as running:
        yield running


def test_http_queries_on_finished_runs(server: Server) -> None:
    with server.client() as client:
        started = client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 2}], "id": "o-1"})
        assert started.status_code == 201, started.text
        deadline = time.monotonic() + 60
        while client.get("/runs/o-1/queries/status").json().get("result") != "waiting":
            assert time.monotonic() < deadline, "the run never waited for approval"
            time.sleep(0.02)
        assert client.post("/runs/o-1/signals/approve", json={"value": True}).status_code == 202
        while client.get("/runs/o-1").json()["status"] == "running":
            assert time.monotonic() < deadline, "the run never finished"
            time.sleep(0.02)
        assert client.get("/runs/o-1").json()["status"] == "completed"

        answer = client.get("/runs/o-1/queries/status")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"result": "done"}
        assert client.get("/runs/o-1/queries/echo", params={"args": "[1, 2]"}).json() == {"result": [1, 2]}
        assert client.get("/runs/o-1/queries/nope").status_code == 422
        assert client.post("/runs/o-1/signals/approve", json={"value": True}).status_code == 409
        assert client.post("/runs/o-1/cancel", json={}).status_code == 409


def test_cli_queries_on_finished_runs(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"

    async def finish() -> None:
        async with retold.Engine(f"sqlite:///{db}", workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES,
                                 poll_interval=0.05) as engine:
            run = await engine.start(shop.order.with_options(id="o-1"), shop.Order("tea", 2))
            await run.signal("approve", True)
            assert await run.result(timeout=60) == "reserved 2 x tea"

    anyio.run(finish)
    runner = CliRunner()
    result = runner.invoke(cli, ["query", "o-1", "status", "--app", "tests.shop"], env=cli_env(db))
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == "done"
    result = runner.invoke(cli, ["signal", "o-1", "approve", "--value", "true"], env=cli_env(db))
    assert result.exit_code == 1
    assert "has already finished (completed)" in result.stderr
    result = runner.invoke(cli, ["cancel", "o-1"], env=cli_env(db))
    assert result.exit_code == 1
    assert "has already finished (completed)" in result.stderr
