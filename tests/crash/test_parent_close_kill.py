"""Children's parent-close policies survive a SIGKILL of their parent's worker.

The worker process hosting the parent (``_parent_close.py``) is killed with SIGKILL while the activity that
follows its two child starts runs (``ChildWorkflowStarted`` with ``parent_close_policy`` and the child runs
are committed). A second worker replays the parent: its starts are matched, not made again, and when it
closes, the child it started with ``terminate`` is terminated and the one with ``abandon`` goes on running.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

import retold
from tests.crash._parent_close import parent
from tests.crash.conftest import spawn

pytestmark = pytest.mark.anyio


def worker(url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    return spawn("tests.crash._parent_close", url, folder, name)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_parent_killed_after_its_child_starts_applies_their_policies_when_it_closes(
    url: str, tmp_path: Path,
) -> None:
    first = worker(url, tmp_path, "a")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with retold.Client(url, workflows=[parent], poll_interval=0.05) as client:
            run = await client.start(parent.with_options(id="pc-parent"))
            with anyio.fail_after(60):
                while not (tmp_path / "started").exists():
                    assert first.poll() is None, (tmp_path / "stderr-a.txt").read_text()
                    await anyio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            before = {wid: (await client.get_handle(wid).describe()).run_id for wid in ("pc-terminated",
                                                                                        "pc-abandoned")}
            (tmp_path / "release").touch()
            second = worker(url, tmp_path, "b")
            assert await run.result(timeout=60) == "parent done"
            history = [e.type for e in (await run.history()).events]
            assert history.count("ChildWorkflowStarted") == 2
            terminated = await client.get_handle("pc-terminated").describe()
            abandoned = await client.get_handle("pc-abandoned").describe()
            assert (terminated.run_id, terminated.status) == (before["pc-terminated"], "terminated")
            assert (abandoned.run_id, abandoned.status) == (before["pc-abandoned"], "running")
            kids = [r for r in await client.list_runs(limit=100) if r.workflow == "pc_kid"]
            assert sorted(r.run_id for r in kids) == sorted(before.values())
            await client.get_handle("pc-abandoned").signal("go", None)
            assert await client.get_handle("pc-abandoned").result(timeout=60) == "kid done"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == -signal.SIGKILL
