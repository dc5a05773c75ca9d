"""Search attributes upserted by a workflow survive a SIGKILL of its worker, and a resume rewrites none.

The worker process (``_search.py``) upserts ``stage=paid`` and is killed with SIGKILL while the next
step's activity runs. The list finds the run by that attribute with no worker alive; a second worker
resumes it (replaying the upsert, which records nothing), and the run ends with ``stage=shipped``.
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
from tests.crash._search import order
from tests.crash.conftest import spawn

pytestmark = pytest.mark.anyio


def worker(url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    return spawn("tests.crash._search", url, folder, name)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_upserted_attributes_are_found_after_a_sigkill_and_the_resume_rewrites_none(
    url: str, tmp_path: Path,
) -> None:
    first = worker(url, tmp_path, "a")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with retold.Client(url, workflows=[order], poll_interval=0.05) as client:
            run = await client.start(order.with_options(id="sa-kill", search_attributes={"customer": "acme"}),
                                     "o-1")
            with anyio.fail_after(60):
                while not (tmp_path / "started").exists():
                    assert first.poll() is None, (tmp_path / "stderr-a.txt").read_text()
                    await anyio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            # No worker is alive: the list reads what the killed one committed.
            found = await client.list_runs(search_attributes={"stage": "paid", "items": 3, "customer": "acme"})
            assert [r.workflow_id for r in found] == ["sa-kill"]
            assert found[0].status == "running"
            (tmp_path / "release").touch()
            second = worker(url, tmp_path, "b")
            assert await run.result(timeout=60) == "shipped o-1"
            assert [r.workflow_id for r in await client.list_runs(search_attributes={"stage": "paid"})] == []
            done = await client.list_runs(search_attributes={"stage": "shipped", "customer": "acme"})
            assert [(r.workflow_id, r.search_attributes) for r in done] == [
                ("sa-kill", {"customer": "acme", "stage": "shipped"})]
            upserts = [e for e in (await run.history()).events if isinstance(e, ev.SearchAttributesUpserted)]
            assert [e.attributes for e in upserts] == [{"stage": "s:paid", "items": "i:3"},
                                                       {"stage": "s:shipped", "items": None}]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == -signal.SIGKILL
