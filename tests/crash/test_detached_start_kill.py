"""A detached start survives a SIGKILL of its starter's worker: the resumed starter starts nothing again.

The worker process hosting the starter (``_detached.py``) is killed with SIGKILL while the activity that
follows the start command runs (``WorkflowStartRequested`` and its run are committed). A second worker
replays the starter from its history: the recorded start is matched, not made again, and the starter
returns the run id it got before the crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

import retold
from tests.crash._detached import nightly
from tests.crash.conftest import spawn

pytestmark = pytest.mark.anyio


def worker(url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    return spawn("tests.crash._detached", url, folder, name)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_starter_killed_after_its_start_resumes_without_starting_again(url: str, tmp_path: Path) -> None:
    first = worker(url, tmp_path, "a")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with retold.Client(url, workflows=[nightly], poll_interval=0.05) as client:
            run = await client.start(nightly.with_options(id="det-nightly"), "d1")
            with anyio.fail_after(60):
                while not (tmp_path / "started").exists():
                    assert first.poll() is None, (tmp_path / "stderr-a.txt").read_text()
                    await anyio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            before = [e.type for e in (await run.history()).events]
            assert before.count("WorkflowStartRequested") == 1
            started = await client.get_handle("det-report-d1").describe()
            (tmp_path / "release").touch()
            second = worker(url, tmp_path, "b")
            assert await run.result(timeout=60) == started.run_id
            after = [e.type for e in (await run.history()).events]
            assert after.count("WorkflowStartRequested") == 1
            assert after.count("WorkflowStartResolved") == 1
            reports = [r for r in await client.list_runs(limit=100) if r.workflow == "det_report"]
            assert [r.run_id for r in reports] == [started.run_id]
            assert await client.get_handle("det-report-d1").result(timeout=60) == "report d1"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == -signal.SIGKILL
