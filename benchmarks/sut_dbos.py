"""The same workloads on DBOS Transact, one per process (started by ``run.py``).

Written as the DBOS documentation shows: ``@DBOS.workflow()`` and
``@DBOS.step()`` on async functions, ``DBOS.start_workflow_async`` under
``SetWorkflowID``, ``handle.get_result()``, ``DBOS.recv_async`` /
``DBOS.send_async`` for signals, recovery of pending workflows when
``DBOS.launch()`` starts. Settings are DBOS's defaults, except the SQLite
file, which is created in WAL mode beforehand so both systems run on the same
journal (DBOS leaves SQLite's default ``synchronous``, FULL on this build;
each job records what it found).

    python benchmarks/sut_dbos.py --job JOB.json --out OUT.json
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID, WorkflowHandleAsync

from _common import (
    ExecutionLog,
    Figures,
    Job,
    SqlCounter,
    StepClock,
    child_main,
    cpu_seconds,
    database_bytes,
    elapsed_since,
    latency_figures,
    prepare_sqlite_wal,
    progress,
    rss_bytes,
)

_log: ExecutionLog | None = None  # W5: where slow_step records its executions
_gate: asyncio.Event | None = None  # W5: held until every workflow is started (see sut_retold)
_waiting = 0  # W6: runs that reached recv
_steps: StepClock | None = None  # W3: marks the start of every step


@DBOS.step()
async def noop(i: int) -> int:
    if _steps is not None:
        _steps.mark()
    return i


@DBOS.step()
async def slow_step(i: int) -> int:
    if _gate is not None:
        await _gate.wait()
    await asyncio.sleep(0.05)
    assert _log is not None
    _log.record(f"{DBOS.workflow_id}/{DBOS.step_id}")
    return i


@DBOS.workflow()
async def three_steps(i: int) -> int:
    a: int = await noop(i)
    b: int = await noop(a + 1)
    c: int = await noop(b + 1)
    return c


@DBOS.workflow()
async def slow_three(i: int) -> int:
    a: int = await slow_step(i)
    b: int = await slow_step(a + 1)
    c: int = await slow_step(b + 1)
    return c


@DBOS.workflow()
async def long_run(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@DBOS.workflow()
async def long_then_wait(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    await DBOS.recv_async("finish", timeout_seconds=86400)
    return total


@DBOS.workflow()
async def wait_for_go() -> int:
    global _waiting
    _waiting += 1
    value: int = await DBOS.recv_async("go", timeout_seconds=86400)
    return value


def _launch(job: Job) -> Figures:
    """Configure and launch DBOS on the job's database; return what SQLite it got."""
    setup: Figures = {}
    if job.path is not None:
        if not Path(job.path).exists():
            prepare_sqlite_wal(Path(job.path))
        conn = sqlite3.connect(job.path)
        setup["sqlite_journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
        setup["sqlite_synchronous"] = conn.execute("PRAGMA synchronous").fetchone()[0]
        conn.close()
    config: DBOSConfig = {
        "name": "retold-bench",
        "system_database_url": job.url,
        "application_version": "bench",  # the recovering process must match the crashed one
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    return setup


async def probe(job: Job) -> Figures:
    """Launch once on the URL."""
    setup = _launch(job)
    DBOS.destroy()
    return setup


async def empty(job: Job) -> Figures:
    """Size of a system database holding no workflow (subtracted in W7)."""
    setup = _launch(job)
    DBOS.destroy()
    return {**setup, "db_bytes": database_bytes(job)}


async def _start(workflow_id: str, fn: Callable[[int], Coroutine[Any, Any, int]], arg: int) -> int:
    with SetWorkflowID(workflow_id):
        handle: WorkflowHandleAsync[int] = await DBOS.start_workflow_async(fn, arg)
    result: int = await handle.get_result()
    return result


async def w1_throughput(job: Job) -> Figures:
    """W1 + W7: N three-step workflows started at once; then the database size."""
    n: int = job.params["workflows"]
    counter = SqlCounter.maybe(job)
    setup = _launch(job)
    latencies: list[float] = []
    await _start("warmup", three_steps, -1)
    if counter:
        counter.reset()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        assert await _start(f"wf-{i}", three_steps, i) == i + 2
        latencies.append(elapsed_since(t0))

    t0, cpu = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(one(i) for i in range(n)))
    seconds, cpu = elapsed_since(t0), cpu_seconds() - cpu
    counts = counter.per(n, "workflow") if counter else {}
    DBOS.destroy()
    return {
        **setup, "seconds": seconds, "workflows_per_s": n / seconds, "steps_per_s": 3 * n / seconds,
        "cpu_s": cpu, "cpu_ms_per_workflow": 1000 * cpu / n,
        **latency_figures(latencies), "db_bytes": database_bytes(job), "db_workflows": n + 1, **counts,
    }


async def w2_latency(job: Job) -> Figures:
    """W2: the same workflow started and awaited one at a time."""
    n: int = job.params["workflows"]
    setup = _launch(job)
    latencies: list[float] = []
    cpu = 0.0
    for i in range(-job.params["warmup"], n):
        if i == 0:
            cpu = cpu_seconds()
        t0 = time.perf_counter()
        assert await _start(f"wf-{i}", three_steps, i) == i + 2
        if i >= 0:
            latencies.append(elapsed_since(t0))
    cpu = cpu_seconds() - cpu
    DBOS.destroy()
    return {**setup, **latency_figures(latencies), "cpu_ms_per_workflow": 1000 * cpu / n}


async def w3_long_run(job: Job) -> Figures:
    """W3: one workflow of N sequential steps."""
    global _steps
    n: int = job.params["steps"]
    counter = SqlCounter.maybe(job)
    setup = _launch(job)
    await _start("warmup", three_steps, -1)
    if counter:
        counter.reset()
    _steps = StepClock()
    t0, cpu = time.perf_counter(), cpu_seconds()
    assert await _start("long", long_run, n) == n * (n - 1) // 2
    seconds, cpu = elapsed_since(t0), cpu_seconds() - cpu
    steps, _steps = _steps, None
    counts = counter.per(n, "step") if counter else {}
    DBOS.destroy()
    return {**setup, "seconds": seconds, "ms_per_step": 1000 * seconds / n, **steps.figures(),
            "cpu_ms_per_step": 1000 * cpu / n, **counts}


async def w4_build(job: Job) -> Figures:
    """W4: leave a workflow that completed N steps and waits in recv."""
    n: int = job.params["steps"]
    _launch(job)
    t0 = time.perf_counter()
    with SetWorkflowID(f"long-{n}"):
        await DBOS.start_workflow_async(long_then_wait, n)
    # The N steps, then recv's durable deadline (recorded like a step).
    while len(await DBOS.list_workflow_steps_async(f"long-{n}", load_output=False)) < n + 1:
        await asyncio.sleep(0.2 if n < 1000 else 1.0)  # each look reads every step
    seconds = elapsed_since(t0)
    DBOS.destroy()
    return {"seconds": seconds, "ms_per_step": 1000 * seconds / max(n, 1)}


async def w4_recover(job: Job) -> Figures:
    """W4: a fresh process recovers the workflow (N recorded steps), which receives and finishes."""
    n: int = job.params["steps"]
    client = DBOSClient(system_database_url=job.url)
    client.send(f"long-{n}", True, topic="finish")
    client.destroy()
    t0 = time.perf_counter()
    _launch(job)  # recovery of pending workflows starts here
    handle: WorkflowHandleAsync[int] = await DBOS.retrieve_workflow_async(f"long-{n}")
    assert await handle.get_result(polling_interval_sec=0.01) == n * (n - 1) // 2
    seconds = elapsed_since(t0)
    DBOS.destroy()
    return {"seconds": seconds}


async def w5_run(job: Job) -> Figures:
    """W5, first process: start the workflows and keep going until run.py kills us."""
    global _log, _gate
    _log, _gate = ExecutionLog(Path(job.params["log"])), asyncio.Event()
    _launch(job)

    async def start(i: int) -> None:
        with SetWorkflowID(f"wf-{i}"):
            await DBOS.start_workflow_async(slow_three, i)

    await asyncio.gather(*(start(i) for i in range(job.params["workflows"])))
    _gate.set()
    Path(job.params["started"]).touch()
    progress(f"started {job.params['workflows']} workflows; waiting to be killed")
    await asyncio.Event().wait()
    return {}


async def w5_recover(job: Job) -> Figures:
    """W5, after the SIGKILL: launch again (DBOS recovers pending workflows) and wait for every one."""
    global _log
    _log = ExecutionLog(Path(job.params["log"]))
    t0 = time.perf_counter()
    _launch(job)

    async def one(i: int) -> None:
        handle: WorkflowHandleAsync[int] = await DBOS.retrieve_workflow_async(f"wf-{i}")
        # Poll often so the figure is the recovery, not get_result's 1 s default poll.
        assert await handle.get_result(polling_interval_sec=0.05) == i + 2

    await asyncio.gather(*(one(i) for i in range(job.params["workflows"])))
    seconds = elapsed_since(t0)
    DBOS.destroy()
    return {"seconds": seconds}


async def w6_memory(job: Job) -> Figures:
    """W6: resident memory while N workflows wait in recv, at several N."""
    counts: list[int] = job.params["counts"]
    setup = _launch(job)
    figures: Figures = dict(setup)

    async def warm(i: int) -> None:
        with SetWorkflowID(f"warm-{i}"):
            handle = await DBOS.start_workflow_async(wait_for_go)
        await DBOS.send_async(f"warm-{i}", i, topic="go")
        assert await handle.get_result() == i

    await asyncio.gather(*(warm(i) for i in range(20)))
    gc.collect()
    base = rss_bytes()
    started = 0
    for count in counts:
        while started < count:
            batch = min(count, started + 500)
            for i in range(started, batch):
                with SetWorkflowID(f"wait-{i}"):
                    await DBOS.start_workflow_async(wait_for_go)
            started = batch
            progress(f"{started}/{counts[-1]} workflows waiting")
        while _waiting < 20 + count:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let the last ones finish recv's setup transaction
        gc.collect()
        grown = rss_bytes() - base
        figures[f"rss_bytes_{count}"] = grown
        figures[f"rss_bytes_per_run_{count}"] = grown / count
    logging.getLogger("dbos").setLevel(logging.ERROR)  # not one warning per workflow cancelled by destroy
    DBOS.destroy()
    return figures


WORKLOADS: dict[str, Callable[[Job], Coroutine[Any, Any, Figures]]] = {
    "probe": probe,
    "empty": empty,
    "W1": w1_throughput,
    "W2": w2_latency,
    "W3": w3_long_run,
    "W4-build": w4_build,
    "W4-recover": w4_recover,
    "W5-run": w5_run,
    "W5-recover": w5_recover,
    "W6": w6_memory,
}


def run_job(job: Job) -> Figures:
    """Run one job on asyncio."""
    return asyncio.run(WORKLOADS[job.workload](job))


if __name__ == "__main__":
    child_main(run_job)
