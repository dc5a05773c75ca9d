"""An update survives a SIGKILL of its run's worker between its acceptance and its handler's completion.

A client (this process, hosting nothing) sends an update whose handler awaits an activity; the
worker process hosting the run (``_update.py``) is killed with SIGKILL while that activity runs
(``UpdateAccepted`` is committed, ``UpdateCompleted`` is not). A second worker resumes the run: the
handler finishes, and the client, still waiting, gets the reply; the same update id sent again
gets the same reply, from that one execution.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.crash._update import cart
from tests.crash.conftest import spawn

pytestmark = pytest.mark.anyio


def worker(url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    return spawn("tests.crash._update", url, folder, name)


async def appears(path: Path, proc: subprocess.Popen[bytes], name: str) -> None:
    with anyio.fail_after(60):
        while not path.exists():
            assert proc.poll() is None, (path.parent / f"stderr-{name}.txt").read_text()
            await anyio.sleep(0.05)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_update_killed_midway_finishes_after_resume_and_the_caller_gets_the_reply(
    url: str, tmp_path: Path,
) -> None:
    first = worker(url, tmp_path, "a")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with retold.Client(url, workflows=[cart], poll_interval=0.05) as client:
            run = await client.start(cart.with_options(id="upd-kill"), "ann")
            replies: list[int] = []

            async def send() -> None:
                replies.append(await run.update("add", "apple", id="u-1", result_type=int, timeout=120))

            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                await appears(tmp_path / "started", first, "a")
                os.kill(first.pid, signal.SIGKILL)
                first.wait()
                before = [e.type for e in (await run.history()).events]
                assert "UpdateAccepted" in before
                assert "UpdateCompleted" not in before
                (tmp_path / "release").touch()
                second = worker(url, tmp_path, "b")
            assert replies == [2]  # the caller waited through the crash
            assert await run.update("add", "apple", id="u-1", timeout=30) == 2
            await run.signal("checkout")
            assert await run.result(timeout=30) == ["ann", "apple"]
            history = await run.history()
            assert sum(isinstance(e, ev.UpdateAccepted) for e in history.events) == 1
            completed = [e for e in history.events if isinstance(e, ev.UpdateCompleted)]
            assert len(completed) == 1
            assert completed[0].failure is None
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == -signal.SIGKILL
