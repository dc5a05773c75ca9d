"""A SIGKILLed worker's many runs are taken over at once and in parallel by its successor on the same machine.

Worker ``a`` (``_takeover.py``, lease 60 s) holds the activity of each of 12 runs when it is killed with
SIGKILL. Worker ``b`` starts on the same machine: it finds ``a``'s process gone, ends its leases and runs
the 12 activities again, all at once. Before the fix of issue 16's second part, every task of a dead worker
was a suspect, run alone one after the other: 12 x 2 s one at a time (W5 on PostgreSQL took 48-89 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

import retold
from tests.crash._takeover import LEASE, STEP, chain
from tests.crash.conftest import spawn

pytestmark = pytest.mark.anyio

RUNS = 12


def worker(url: str, folder: Path, name: str) -> subprocess.Popen[bytes]:
    return spawn("tests.crash._takeover", url, folder, name)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_killed_workers_runs_are_taken_over_at_once_and_in_parallel(url: str, tmp_path: Path) -> None:
    first = worker(url, tmp_path, "a")
    second: subprocess.Popen[bytes] | None = None
    try:
        async with retold.Client(url, workflows=[chain], poll_interval=0.05) as client:
            runs = [await client.start(chain.with_options(id=f"tko-{i}"), i) for i in range(RUNS)]
            with anyio.fail_after(60):
                while not all((tmp_path / f"started-{i}").exists() for i in range(RUNS)):
                    assert first.poll() is None, (tmp_path / "stderr-a.txt").read_text()
                    await anyio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            spawned = time.monotonic()
            second = worker(url, tmp_path, "b")
            for i, run in enumerate(runs):
                assert await run.result(timeout=2 * LEASE) == i + 1
            took = time.monotonic() - spawned
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == -signal.SIGKILL
    steps = [line.split() for line in (tmp_path / "steps-b").read_text().splitlines()]
    starts = {int(i): float(t) for kind, i, t in steps if kind == "start"}
    dones = {int(i): float(t) for kind, i, t in steps if kind == "done"}
    assert sorted(starts) == sorted(dones) == list(range(RUNS))  # each ran once more, in the successor
    # In parallel: every activity started again before the first of them ended (one at a time: 12 x 2 s).
    assert max(starts.values()) < min(dones.values()), sorted(starts.values())
    assert took < LEASE / 2, f"the successor took {took:.1f} s: it waited for the dead worker's leases"
    print(f"{RUNS} runs taken over in {took:.1f} s (lease {LEASE:.0f} s, {STEP:.0f} s per activity)")
