"""Schedules across processes: two engines fire each time once; a SIGKILL inside a fire neither loses nor doubles it.

The engines are real processes (``_schedules.py``) on one database. A fire and the run it
starts are one store transaction, and the run's workflow id is the schedule id and the fire
time: whichever engine fires, and however often a fire is tried again, each fire time has
one run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

import retold
from retold.engine._schedules import fire_workflow_id
from tests.crash._schedules import ping

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio


async def _wait(check: object, what: str, timeout: float = 60.0) -> None:
    with anyio.move_on_after(timeout):
        while not await check():  # type: ignore[operator]
            await anyio.sleep(0.05)
        return
    pytest.fail(f"timed out waiting for {what}")


def _child(url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    import os

    proc = subprocess.Popen([sys.executable, "-m", "tests.crash._schedules", url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    return proc


async def _fire_times(client: retold.Engine, schedule_id: str) -> list[str]:
    runs = await client.list_runs(id_prefix=f"{schedule_id}@", limit=10_000)
    return sorted(r.workflow_id for r in runs)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_two_engine_processes_on_one_postgresql_database_fire_each_time_once(postgres_url: str) -> None:
    async with retold.Engine(postgres_url, workflows=[ping], run_workers=False) as client:
        first = [_child(postgres_url), _child(postgres_url)]
        try:
            for proc in first:
                assert proc.stdout is not None
                assert (await anyio.to_thread.run_sync(proc.stdout.readline)).strip() == b"ready"
            handle = await client.schedule(
                retold.Schedule("pg-tick", every=timedelta(seconds=0.2), overlap="allow_all", catchup_limit=1000),
                ping, 1)
            anchor = (await handle.describe()).next_fires[0].timestamp() - 0.2

            async def enough() -> bool:
                return (await handle.describe()).fires >= 15
            await _wait(enough, "15 fires")
            await handle.pause()
        finally:
            for proc in first:
                proc.kill()
                proc.communicate()
        described = await handle.describe()
        wids = await _fire_times(client, "pg-tick")
        assert len(wids) == len(set(wids)) == described.fires
        assert described.skipped == 0
        # Every fire time from the first to the last has its run: none lost, none doubled.
        assert wids == [fire_workflow_id("pg-tick", anchor + 0.2 * k) for k in range(1, described.fires + 1)]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("point", ["after_start", "before_commit"])
async def test_a_sigkill_inside_a_fire_neither_loses_nor_doubles_it(shared_url: str, point: str) -> None:
    async with retold.Engine(shared_url, workflows=[ping], run_workers=False) as client:
        handle = await client.schedule(
            retold.Schedule("kill-tick", every=timedelta(seconds=0.5), overlap="allow_all", catchup_limit=1000),
            ping, 1)
        first_fire = (await handle.describe()).next_fires[0].timestamp()
        proc = _child(shared_url, {"RETOLD_SCHEDULE_FAILPOINT": point})
        _, stderr = await anyio.to_thread.run_sync(proc.communicate)
        assert proc.returncode == -signal.SIGKILL, stderr.decode()
        described = await handle.describe()
        assert described.fires == 0  # the fire's transaction died with the process: nothing of it was written
        assert await _fire_times(client, "kill-tick") == []
    async with retold.Engine(shared_url, workflows=[ping], poll_interval=0.05) as engine:
        handle = engine.get_schedule("kill-tick")

        async def fired() -> bool:
            return (await handle.describe()).fires >= 2
        await _wait(fired, "the fires after the restart")
        await handle.pause()
        described = await handle.describe()
        wids = await _fire_times(engine, "kill-tick")
        assert wids == [fire_workflow_id("kill-tick", first_fire + 0.5 * k) for k in range(described.fires)]
        assert await engine.get_handle(wids[0]).result(timeout=30) == 2
