"""Split mode: a ``retold.Client`` starts runs, ``python -m retold worker`` processes run them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

import retold
from tests.scaleout._app import read_logs
from tests.scaleout._procs import ROOT
from tests.scaleout.conftest import Spawn
from tests.stores.test_postgres import listeners

pytestmark = pytest.mark.anyio


def client(url: str) -> retold.Client:
    return retold.Client(url, poll_interval=0.2)


async def wait_for(condition: object, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.05)


async def test_each_worker_runs_only_what_it_hosts(postgres_url: str, tmp_path: Path, spawn: Spawn) -> None:
    cpu = spawn("tests.scaleout._app:ROUTED_CPU", postgres_url)
    gpu = spawn("tests.scaleout._app:ROUTED_GPU", postgres_url, "--backend", "trio")
    try:
        cpu.wait_ready()
        gpu.wait_ready()
        async with client(postgres_url) as web_app:
            runs = [await web_app.start("routed", id=f"routed-{i}") for i in range(5)]
            for run in runs:
                assert await run.result(timeout=30) == [cpu.pid, gpu.pid]
    finally:
        cpu.kill()
        gpu.kill()
    assert "workflows ['routed'], activities ['on_cpu']" in cpu.stderr()
    assert "workflows [], activities ['on_gpu']" in gpu.stderr()


async def test_timers_and_signals_cross_processes(postgres_url: str, tmp_path: Path, spawn: Spawn) -> None:
    worker = spawn("tests.scaleout._app", postgres_url, "--poll-interval", "30")
    try:
        worker.wait_ready()
        admin = sa.create_engine(postgres_url)
        try:
            async with client(postgres_url) as web_app:
                # Both listen before the start: a NOTIFY sent earlier would wait for a poll.
                with anyio.fail_after(20):
                    while len(listeners(admin, postgres_url)) < 2:
                        await anyio.sleep(0.05)
                run = await web_app.start("timer_and_signal", 0.5)
                started = time.monotonic()

                async def fired() -> bool:
                    return "TimerFired" in [e.type for e in await run.history()]

                with anyio.fail_after(20):
                    while not await fired():
                        await anyio.sleep(0.05)
                await run.signal("go", "a signal")
                assert await run.result(timeout=20) == "woke and got a signal"
                # A poll interval of 30 s: the start, the signal and the result travelled by NOTIFY
                # (bounded at half of it, for a loaded machine).
                assert time.monotonic() - started < 15
        finally:
            admin.dispose()
    finally:
        worker.kill()


async def test_sigterm_lets_the_task_in_flight_finish_then_exits_0(
    postgres_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    first = spawn("tests.scaleout._app:ONE_STEP", postgres_url, "--grace", "20")
    first.wait_ready()
    async with client(postgres_url) as web_app:
        run = await web_app.start("one_step", "drain", 1.5)
        await wait_for(lambda: any(line["ev"] == "start" for line in read_logs(tmp_path / "logs")))
        first.send(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
        stopped = first.stderr()
        assert "SIGTERM, draining" in stopped
        assert "every task finished" in stopped
        # The finished step was recorded; a new worker only completes the run.
        second = spawn("tests.scaleout._app:ONE_STEP", postgres_url)
        try:
            assert await run.result(timeout=30) == first.pid
        finally:
            second.kill()
    lines = read_logs(tmp_path / "logs")
    assert [(line["ev"], line["pid"]) for line in lines] == [("start", first.pid), ("done", first.pid)]


async def test_sigterm_hands_back_what_outlasts_the_grace(postgres_url: str, tmp_path: Path, spawn: Spawn) -> None:
    # A 60 s lease: only the hand-back explains a prompt pick-up by the second worker.
    first = spawn("tests.scaleout._app:ONE_STEP", postgres_url, "--grace", "0.5", "--lease", "60")
    first.wait_ready()
    async with client(postgres_url) as web_app:
        run = await web_app.start("one_step", "long", 3.0)
        await wait_for(lambda: any(line["ev"] == "start" for line in read_logs(tmp_path / "logs")))
        # SIGTERM as soon as the step (3 s) runs, so that it outlasts the grace (0.5 s)
        # however long this machine takes to start the second worker, which starts meanwhile.
        signalled = time.monotonic()
        first.send(signal.SIGTERM)
        second = spawn("tests.scaleout._app:ONE_STEP", postgres_url, "--lease", "60")
        try:
            assert first.wait(timeout=10) == 0
            assert time.monotonic() - signalled < 8
            assert "grace period over" in first.stderr()
            second.wait_ready()
            assert await run.result(timeout=20) == second.pid
        finally:
            second.kill()
    starts = [(line["pid"], line["attempt"]) for line in read_logs(tmp_path / "logs") if line["ev"] == "start"]
    # A hand-back is not the attempt's failure: the same attempt runs again elsewhere.
    assert starts == [(first.pid, 1), (second.pid, 1)]


async def test_workers_share_a_sqlite_file(tmp_path: Path, spawn: Spawn) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    workers = [spawn("tests.scaleout._app:ONE_STEP", url, "--poll-interval", "0.1") for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        async with client(url) as web_app:
            runs = [await web_app.start("one_step", f"s{i}", 0.05) for i in range(12)]
            pids = [await run.result(timeout=30) for run in runs]
        assert set(pids) <= {worker.pid for worker in workers}
    finally:
        for worker in workers:
            worker.send(signal.SIGTERM)
        assert [worker.wait(timeout=15) for worker in workers] == [0, 0]
    done = sorted(line["tag"] for line in read_logs(tmp_path / "logs") if line["ev"] == "done")
    assert done == sorted(f"s{i}" for i in range(12))  # each step ran once


def test_a_bad_target_exits_2_saying_why(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "retold", "worker", "tests.scaleout._nowhere", "--url", "memory://"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "cannot import 'tests.scaleout._nowhere'" in done.stderr


def test_the_split_mode_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "split_mode.py"), "--db", str(tmp_path / "split.db")],
        capture_output=True, text=True, timeout=100, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("reserved by worker") == 6
    assert "workers drained and exited with [0, 0]" in done.stdout
