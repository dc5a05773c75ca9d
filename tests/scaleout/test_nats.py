"""Split mode on NATS JetStream: a client-only engine starts runs, ``python -m retold worker --url nats://``
processes run them; wake-ups travel through the log, leases come back from killed workers."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import pytest

import retold
from tests._ports import free_port
from tests.scaleout._app import read_logs
from tests.scaleout.conftest import Spawn

pytestmark = pytest.mark.anyio


def client(url: str, poll_interval: float = 0.2) -> retold.Engine:
    return retold.Engine(url, run_workers=False, poll_interval=poll_interval)


async def wait_for(condition: object, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.05)


async def test_each_worker_runs_only_what_it_hosts(nats_url: str, spawn: Spawn) -> None:
    cpu = spawn("tests.scaleout._app:ROUTED_CPU", nats_url)
    gpu = spawn("tests.scaleout._app:ROUTED_GPU", nats_url, "--backend", "trio")
    cpu.wait_ready()
    gpu.wait_ready()
    async with client(nats_url) as engine:
        runs = [await engine.start("routed", id=f"routed-{i}") for i in range(5)]
        for run in runs:
            assert await run.result(timeout=30) == [cpu.pid, gpu.pid]
    assert "workflows ['routed'], activities ['on_cpu']" in cpu.stderr()


async def test_timers_and_signals_cross_processes_without_polling(nats_url: str, spawn: Spawn) -> None:
    # Polls every 30 s on both sides: the start, the signal and the result travel as log messages.
    worker = spawn("tests.scaleout._app", nats_url, "--poll-interval", "30")
    worker.wait_ready()
    async with client(nats_url, poll_interval=30) as engine:
        run = await engine.start("timer_and_signal", 0.5)
        started = time.monotonic()

        async def fired() -> bool:
            return "TimerFired" in [e.type for e in await run.history()]

        with anyio.fail_after(20):
            while not await fired():
                await anyio.sleep(0.05)
        await run.signal("go", "a signal")
        assert await run.result(timeout=20) == "woke and got a signal"
        assert time.monotonic() - started < 15


async def test_sigterm_lets_the_task_in_flight_finish_then_exits_0(
    nats_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    first = spawn("tests.scaleout._app:ONE_STEP", nats_url, "--grace", "20")
    first.wait_ready()
    async with client(nats_url) as engine:
        run = await engine.start("one_step", "drain", 1.5)
        await wait_for(lambda: any(line["ev"] == "start" for line in read_logs(tmp_path / "logs")))
        first.send(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
        assert "every task finished" in first.stderr()
        second = spawn("tests.scaleout._app:ONE_STEP", nats_url)
        assert await run.result(timeout=30) == first.pid
        second.kill()
    lines = read_logs(tmp_path / "logs")
    assert [(line["ev"], line["pid"]) for line in lines] == [("start", first.pid), ("done", first.pid)]


async def test_a_killed_workers_activity_runs_again_elsewhere(nats_url: str, tmp_path: Path, spawn: Spawn) -> None:
    first = spawn("tests.scaleout._app:ONE_STEP", nats_url, "--lease", "2")
    first.wait_ready()
    async with client(nats_url) as engine:
        run = await engine.start("one_step", "killed", 1.0)
        await wait_for(lambda: any(line["ev"] == "start" for line in read_logs(tmp_path / "logs")))
        first.kill()  # SIGKILL mid-activity: its lease runs out (2 s)
        second = spawn("tests.scaleout._app:ONE_STEP", nats_url, "--lease", "2")
        assert await run.result(timeout=40) == second.pid
        history = [e.type for e in await run.history()]
    assert history.count("ActivityCompleted") == 1
    starts = [line["pid"] for line in read_logs(tmp_path / "logs") if line["ev"] == "start"]
    assert starts == [first.pid, second.pid]


async def test_many_runs_over_four_workers_each_step_recorded_once(nats_url: str, spawn: Spawn) -> None:
    workers = [spawn("tests.scaleout._app:ONE_STEP", nats_url, "--poll-interval", "0.5") for _ in range(4)]
    for worker in workers:
        worker.wait_ready()
    async with client(nats_url) as engine:
        runs = [await engine.start("one_step", f"s{i}", 0.01) for i in range(40)]
        pids = [await run.result(timeout=60) for run in runs]
        for run in runs:
            history = [e.type for e in await run.history()]
            assert history.count("ActivityCompleted") == 1
            assert history.count("WorkflowCompleted") == 1
    assert set(pids) <= {worker.pid for worker in workers}
    assert len(set(pids)) > 1


def test_chaos_killed_workers_lose_no_run_and_rerun_only_what_was_in_flight(tmp_path: Path) -> None:
    # benchmarks/chaos.py on NATS: 4 workers, 3 SIGKILLs placed by progress; it checks every
    # history (gap-free, one completion per activity) and that only activities in flight re-ran.
    # A snapshot every 25 log messages: the log is truncated under the workers many times (a loaded
    # machine batches more operations per message, so there are fewer messages than operations).
    import json
    import subprocess
    import sys

    from tests.conftest import nats_base_url
    from tests.scaleout._procs import ROOT

    out = tmp_path / "chaos.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--url", f"{nats_base_url()}?snapshot_every=25",
         "--json", str(out),
         "--workflows", "100", "--workers", "4", "--kill-at", "0.2,0.45,0.7", "--step-seconds", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert figures["kills"] == 3
    assert figures["problems"] == []
    assert figures["nats_snapshot_seq"] > 0  # the checker's copy began from a snapshot: the log was truncated


def test_the_cli_starts_and_lists_runs_on_nats(nats_url: str, spawn: Spawn) -> None:
    import os
    import subprocess
    import sys

    from tests.scaleout._procs import ROOT

    spawn("tests.scaleout._app:ONE_STEP", nats_url).wait_ready()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "retold"]
    started = subprocess.run(
        [*cli, "start", "one_step", "--input", '["cli", 0.01]', "--id", "from-cli", "--wait", "--url", nats_url,
         "--app", "tests.scaleout._app:ONE_STEP"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    listed = subprocess.run([*cli, "list", "--url", nats_url], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "from-cli" in listed.stdout
    assert "completed" in listed.stdout
    # The deploy gate reads the stored histories from the stream and replays them against the code.
    replayed = subprocess.run([*cli, "replay", "--url", nats_url, "--app", "tests.scaleout._app:ONE_STEP"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "1 of 1 histories replay against the current code" in replayed.stdout


def test_serve_gives_the_api_and_live_events_over_nats(nats_url: str, spawn: Spawn) -> None:
    # `retold serve --no-workers` over the same stream as a worker process: a run started over HTTP is
    # run by the worker, its events arrive on the SSE stream as they are recorded, and serve exits at SIGTERM.
    import os
    import subprocess
    import sys

    import httpx
    from httpx_sse import connect_sse

    from tests.scaleout._procs import ROOT

    spawn("tests.scaleout._app:ONE_STEP", nats_url).wait_ready()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "retold", "serve", "--no-workers", "--url", nats_url, "--app",
         "tests.scaleout._app:ONE_STEP", "--port", str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            while True:
                try:
                    if http.get("/workflows").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "retold serve did not come up"
                time.sleep(0.1)
            started = http.post("/workflows/one_step/runs", json={"args": ["http", 0.01], "id": "over-http"})
            assert started.status_code == 201, started.text
            with connect_sse(http, "GET", "/runs/over-http/events") as source:
                types = [sse.event for sse in source.iter_sse()]
            assert types[0] == "WorkflowStarted"
            assert types[-1] == "WorkflowCompleted"
            assert "ActivityCompleted" in types
            described = http.get("/runs/over-http").json()
            assert described["status"] == "completed"
            assert isinstance(described["result"], int)  # the worker's pid
            listed = http.get("/runs", params={"status": "completed"}).json()
            assert "over-http" in [r["workflow_id"] for r in listed["runs"]]
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
