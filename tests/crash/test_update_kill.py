"""An update survives a SIGKILL between its acceptance and its handler's completion.

A child process (``_update.py``) sends an update whose handler awaits an activity, and is
killed with SIGKILL while that activity runs (``UpdateAccepted`` is committed, ``UpdateCompleted``
is not). A new engine on the same store resumes the run: the handler finishes, and the caller,
sending the same update id again, gets the reply of that one execution.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.crash import _update
from tests.crash._update import cart, price

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_update_killed_midway_finishes_after_resume_and_the_caller_gets_the_reply(
    shared_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "tests.crash._update", shared_url, "upd-kill", str(tmp_path)],
                                cwd=ROOT, stderr=stderr)
    try:
        with anyio.fail_after(60):
            while not (tmp_path / "started").exists():
                assert proc.poll() is None, errors.read_text()
                await anyio.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    (tmp_path / "release").touch()
    monkeypatch.setattr(_update, "FOLDER", tmp_path)
    async with retold.Engine(shared_url, workflows=[cart], activities=[price], poll_interval=0.05) as engine:
        run = engine.get_handle("upd-kill")
        before = [e.type for e in (await run.history()).events]
        assert "UpdateAccepted" in before
        assert "UpdateCompleted" not in before
        assert await run.update("add", "apple", id="u-1", timeout=60) == 2
        await run.signal("checkout")
        assert await run.result(timeout=30) == ["ann", "apple"]
        history = await run.history()
        assert sum(isinstance(e, ev.UpdateAccepted) for e in history.events) == 1
        completed = [e for e in history.events if isinstance(e, ev.UpdateCompleted)]
        assert len(completed) == 1
        assert completed[0].failure is None
