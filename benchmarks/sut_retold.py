"""The workloads on retold, one per process (started by ``run.py``).

Every workload uses the engine as a user would: ``retold.Engine(url)`` with
its default settings (cache of 1,000 runs, 5 s leases, SQLite in WAL mode with
``synchronous=FULL``), ``engine.start`` and ``run.result()``.

    python benchmarks/sut_retold.py --job JOB.json --out OUT.json
"""

from __future__ import annotations

import functools
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import orjson
import sqlalchemy as sa

import retold
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
    process_cpu_seconds,
    progress,
    rss_bytes,
)
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.runtime._instance import WorkflowInstance
from retold.stores.sql._store import SqlStore

_log: ExecutionLog | None = None  # W5: where slow_step records its executions
# W5: activities of the first process wait until every workflow is started, so
# the kill lands at the same point of the run on every system.
_gate: anyio.Event | None = None
_steps: StepClock | None = None  # W3: marks the start of every step


@retold.activity
async def noop(i: int) -> int:
    if _steps is not None:
        _steps.mark()
    return i


@retold.activity
async def slow_step(i: int) -> int:
    if _gate is not None:
        await _gate.wait()
    await anyio.sleep(0.05)
    assert _log is not None
    _log.record(retold.activity_info().idempotency_key)
    return i


@retold.workflow
async def three_steps(i: int) -> int:
    a = await retold.execute(noop, i)
    b = await retold.execute(noop, a + 1)
    return await retold.execute(noop, b + 1)


@retold.workflow
async def slow_three(i: int) -> int:
    a = await retold.execute(slow_step, i)
    b = await retold.execute(slow_step, a + 1)
    return await retold.execute(slow_step, b + 1)


@retold.workflow
async def long_run(n: int) -> int:
    total = 0
    for i in range(n):
        total += await retold.execute(noop, i)
    return total


@retold.workflow
async def long_then_wait(n: int) -> int:
    total = 0
    for i in range(n):
        total += await retold.execute(noop, i)
    await retold.wait_signal("finish")
    return total


@retold.workflow
async def wait_for_go() -> int:
    value: int = await retold.wait_signal("go", int) or 0
    return value


WORKFLOWS = [three_steps, slow_three, long_run, long_then_wait, wait_for_go]
ACTIVITIES = [noop, slow_step]


def _engine(job: Job, *, run_workers: bool = True) -> retold.Engine:
    return retold.Engine(job.url, workflows=WORKFLOWS, activities=ACTIVITIES, run_workers=run_workers)


async def probe(job: Job) -> Figures:
    """Open the store once: tells run.py whether this retold can use the URL, and what SQLite it set."""
    async with _engine(job) as engine:
        if not isinstance(engine.store, SqlStore) or job.path is None:
            return {}
        with engine.store._engine.connect() as conn:  # what retold set on its own connections
            return {
                "sqlite_journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar_one(),
                "sqlite_synchronous": conn.exec_driver_sql("PRAGMA synchronous").scalar_one(),
            }


async def empty(job: Job) -> Figures:
    """Size of a store holding no run (subtracted in W7)."""
    async with _engine(job):
        pass
    return {"db_bytes": database_bytes(job)}


async def w1_throughput(job: Job) -> Figures:
    """W1 + W7: N three-activity workflows started at once; then the database size."""
    n: int = job.params["workflows"]
    latencies: list[float] = []
    counter = SqlCounter.maybe(job)
    async with _engine(job) as engine:
        await (await engine.start(three_steps.with_options(id="warmup"), -1)).result()
        if counter:
            counter.reset()

        async def one(i: int) -> None:
            t0 = time.perf_counter()
            run = await engine.start(three_steps.with_options(id=f"wf-{i}"), i)
            assert await run.result() == i + 2
            latencies.append(elapsed_since(t0))

        t0, cpu = time.perf_counter(), cpu_seconds()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        seconds, cpu = elapsed_since(t0), cpu_seconds() - cpu
    return {
        "seconds": seconds, "workflows_per_s": n / seconds, "steps_per_s": 3 * n / seconds,
        "cpu_s": cpu, "cpu_ms_per_workflow": 1000 * cpu / n,
        **latency_figures(latencies), "db_bytes": database_bytes(job), "db_workflows": n + 1,
        **(counter.per(n, "workflow") if counter else {}),
    }


async def w2_latency(job: Job) -> Figures:
    """W2: the same workflow started and awaited one at a time."""
    n: int = job.params["workflows"]
    latencies: list[float] = []
    cpu = 0.0
    async with _engine(job) as engine:
        for i in range(-job.params["warmup"], n):
            if i == 0:
                cpu = cpu_seconds()
            t0 = time.perf_counter()
            run = await engine.start(three_steps.with_options(id=f"wf-{i}"), i)
            assert await run.result() == i + 2
            if i >= 0:
                latencies.append(elapsed_since(t0))
        cpu = cpu_seconds() - cpu
    return {**latency_figures(latencies), "cpu_ms_per_workflow": 1000 * cpu / n}


async def w3_long_run(job: Job) -> Figures:
    """W3: one workflow of N sequential activities (``timeline``: and where each step's time goes)."""
    global _steps
    n: int = job.params["steps"]
    counter = SqlCounter.maybe(job)
    timeline = None
    async with _engine(job) as engine:
        await (await engine.start(three_steps.with_options(id="warmup"), -1)).result()
        if counter:
            counter.reset()
        if job.params.get("timeline"):
            import _timeline

            timeline = _timeline.Timeline.install(engine)
        _steps = StepClock()
        t0, cpu = time.perf_counter(), cpu_seconds()
        run = await engine.start(long_run.with_options(id="long"), n)
        assert await run.result() == n * (n - 1) // 2
        seconds, cpu = elapsed_since(t0), cpu_seconds() - cpu
        steps, _steps = _steps, None
        if timeline is not None:
            timeline.uninstall()
    return {"seconds": seconds, "ms_per_step": 1000 * seconds / n, **steps.figures(),
            "cpu_ms_per_step": 1000 * cpu / n, **(counter.per(n, "step") if counter else {}),
            **(timeline.figures() if timeline is not None else {})}


def _history(n: int) -> list[ev.Event]:
    options = retold.ActivityOptions().to_json()
    events: list[ev.Event] = [
        ev.WorkflowStarted(seq=1, at=0.0, workflow="long_run", workflow_id="w", input=orjson.dumps([n]))
    ]
    for i in range(n):
        seq = len(events) + 1
        events.append(ev.ActivityScheduled(seq=seq, at=0.0, activity="noop", input=orjson.dumps([i]),
                                           options=options))
        events.append(ev.ActivityCompleted(seq=seq + 1, at=0.0, scheduled=seq, attempt=1, result=orjson.dumps(i)))
    events.append(ev.WorkflowCompleted(seq=len(events) + 1, at=0.0, result=orjson.dumps(n * (n - 1) // 2)))
    return events


async def w4_replay(job: Job) -> Figures:
    """W4, in memory: rebuild a run from a history of N activities (no store, cold instance).

    The same call as ``retold.testing.replay`` makes, without its strict
    checks: decoding and matching the events, running the workflow's code.
    """
    figures: Figures = {}
    codec = JsonCodec()
    for n in job.params["sizes"]:
        events = _history(n)
        timings = []
        for _ in range(job.params["inner"]):
            instance = WorkflowInstance(long_run, "r", codec)
            t0 = time.perf_counter()
            assert instance.apply(events) == []
            timings.append(elapsed_since(t0))
            instance.close()
        figures[f"replay_us_per_activity_{n}"] = 1e6 * statistics.median(timings) / n
    return figures


async def w4_build(job: Job) -> Figures:
    """W4, from the store: leave a run that completed N activities and waits for a signal."""
    n: int = job.params["steps"]
    async with _engine(job) as engine:
        t0 = time.perf_counter()
        run = await engine.start(long_then_wait.with_options(id=f"long-{n}"), n)
        # WorkflowStarted, n x (scheduled, completed), and the marker closing
        # the activation that only waits for the signal.
        while (await run.describe()).event_count < 2 * n + 2:
            await anyio.sleep(0.2)
        seconds = elapsed_since(t0)
        last = (await run.history())[-1]
        assert isinstance(last, ev.WorkflowTaskCompleted), last
    return {"seconds": seconds, "ms_per_step": 1000 * seconds / max(n, 1)}


async def w4_recover(job: Job) -> Figures:
    """W4, from the store: a fresh process replays the N activities to deliver the signal and finish."""
    n: int = job.params["steps"]
    async with _engine(job, run_workers=False) as client:
        await client.get_handle(f"long-{n}").signal("finish", True)
    t0 = time.perf_counter()
    async with _engine(job) as engine:
        assert await engine.get_handle(f"long-{n}").result() == n * (n - 1) // 2
        seconds = elapsed_since(t0)
    return {"seconds": seconds}


async def w5_run(job: Job) -> Figures:
    """W5, first process: start the workflows and keep going until run.py kills us."""
    global _log, _gate
    _log, _gate = ExecutionLog(Path(job.params["log"])), anyio.Event()
    async with _engine(job) as engine:
        async with anyio.create_task_group() as tg:
            for i in range(job.params["workflows"]):
                tg.start_soon(functools.partial(engine.start, slow_three.with_options(id=f"wf-{i}"), i))
        _gate.set()
        Path(job.params["started"]).touch()
        progress(f"started {job.params['workflows']} workflows; waiting to be killed")
        await anyio.sleep_forever()
    return {}


async def w5_recover(job: Job) -> Figures:
    """W5, after the SIGKILL: open the engine again and wait for every run."""
    global _log
    _log = ExecutionLog(Path(job.params["log"]))
    t0 = time.perf_counter()
    async with _engine(job) as engine:

        async def one(i: int) -> None:
            assert await engine.get_handle(f"wf-{i}").result() == i + 2

        async with anyio.create_task_group() as tg:
            for i in range(job.params["workflows"]):
                tg.start_soon(one, i)
        seconds = elapsed_since(t0)
    return {"seconds": seconds, "lease_s": engine.lease}


async def w6_memory(job: Job) -> Figures:
    """W6: resident memory while N runs wait for a signal, at several N."""
    counts: list[int] = job.params["counts"]
    probe_engine = sa.create_engine(job.url)
    pending = sa.text("SELECT count(*) FROM retold_workflow_tasks")

    def pending_tasks() -> int:
        with probe_engine.connect() as conn:
            return int(conn.execute(pending).scalar_one())

    figures: Figures = {}
    async with _engine(job) as engine:
        for i in range(20):  # warm up every code path, then measure from here
            run = await engine.start(wait_for_go.with_options(id=f"warm-{i}"))
            await run.signal("go", i)
            assert await run.result() == i
        gc.collect()
        base = rss_bytes()
        started = 0
        for count in counts:
            while started < count:
                batch = min(count, started + 500)
                async with anyio.create_task_group() as tg:
                    for i in range(started, batch):
                        tg.start_soon(functools.partial(engine.start, wait_for_go.with_options(id=f"wait-{i}")))
                started = batch
                progress(f"{started}/{counts[-1]} runs waiting")
            while await anyio.to_thread.run_sync(pending_tasks):
                await anyio.sleep(0.2)
            gc.collect()
            grown = rss_bytes() - base
            figures[f"rss_bytes_{count}"] = grown
            figures[f"rss_bytes_per_run_{count}"] = grown / count
            figures[f"cached_runs_{count}"] = len(engine.cache)
        figures["cache_size"] = engine.cache.size
    probe_engine.dispose()
    return figures


def _pg_backends(url: str) -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL backend connected to the job's database (read from /proc)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND pid <> pg_backend_pid()")).scalars().all()
    finally:
        engine.dispose()
    seconds = {pid: process_cpu_seconds(pid) for pid in pids}
    return {pid: cpu for pid, cpu in seconds.items() if cpu is not None}


def _pg_commits(url: str) -> int:
    """Committed transactions of the job's database so far (``pg_stat_database``)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).scalar_one())
    finally:
        engine.dispose()


async def w8_start(job: Job) -> Figures:
    """W8, the client-only starter: N three-activity workflows at once, run by ``retold worker`` processes.

    CPU is taken around the timed part for this process (getrusage), each
    worker process and each PostgreSQL backend of the database (``/proc``);
    commits from ``pg_stat_database``, read ``settle`` seconds after a quiet
    moment (PostgreSQL publishes an idle backend's counts within 10 s).
    On a SQLite file (every process on one file) only the processes' CPU.
    """
    n: int = job.params["workflows"]
    pids: list[int] = job.params["worker_pids"]
    postgres = job.path is None  # else one SQLite file: no server, so no database CPU or commit count
    settle: float = job.params.get("settle", 11.0) if postgres else 0.0
    # SQLite cannot notify: every process polls, each as often as the other.
    async with retold.Client(job.url, poll_interval=0.5 if postgres else 0.05) as client:

        async def one(i: int, prefix: str) -> None:
            run = await client.start(three_steps.with_options(id=f"{prefix}-{i}"), i)
            assert await run.result(timeout=600) == i + 2

        async with anyio.create_task_group() as tg:
            for i in range(job.params.get("warmup", 20)):
                tg.start_soon(one, i, "warm")
        await anyio.sleep(settle)
        commits = await anyio.to_thread.run_sync(_pg_commits, job.url) if postgres else 0
        backends = await anyio.to_thread.run_sync(_pg_backends, job.url) if postgres else {}
        workers = [process_cpu_seconds(pid) or 0.0 for pid in pids]
        t0, cpu = time.perf_counter(), cpu_seconds()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i, "wf")
        seconds, cpu = elapsed_since(t0), cpu_seconds() - cpu
        workers = [(process_cpu_seconds(pid) or 0.0) - before for pid, before in zip(pids, workers, strict=True)]
        if postgres:
            backends_after = await anyio.to_thread.run_sync(_pg_backends, job.url)
            db_cpu = sum(after - backends.get(pid, 0.0) for pid, after in backends_after.items())
            await anyio.sleep(settle)
            commits = await anyio.to_thread.run_sync(_pg_commits, job.url) - commits
    total = cpu + sum(workers)
    figures: Figures = {
        "seconds": seconds, "workflows_per_s": n / seconds, "starter_cpu_s": cpu, "worker_cpu_s": workers,
        "cpu_ms_per_workflow": 1000 * total / n, "worker_cpu_ms_per_workflow": 1000 * sum(workers) / n,
        "starter_cpu_ms_per_workflow": 1000 * cpu / n,
    }
    if postgres:
        figures.update({"db_cpu_ms_per_workflow": 1000 * db_cpu / n, "db_backends": len(backends_after),
                        "commits_per_workflow": commits / n})
    return figures


WORKLOADS: dict[str, Callable[[Job], Awaitable[Figures]]] = {
    "probe": probe,
    "empty": empty,
    "W1": w1_throughput,
    "W2": w2_latency,
    "W3": w3_long_run,
    "W4-replay": w4_replay,
    "W4-build": w4_build,
    "W4-recover": w4_recover,
    "W5-run": w5_run,
    "W5-recover": w5_recover,
    "W6": w6_memory,
    "W8-start": w8_start,
}


def run_job(job: Job) -> Figures:
    """Run one job on asyncio (retold's default backend)."""
    return anyio.run(WORKLOADS[job.workload], job)


if __name__ == "__main__":
    child_main(run_job)
