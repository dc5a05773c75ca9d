"""Chaos: worker processes on PostgreSQL run workflows of 3 activities while one is SIGKILLed every second.

A driver starts ``--workers`` processes (``python -m retold worker chaos``), starts
``--workflows`` runs from a client-only engine, and every ``--kill-every``
seconds (jittered) SIGKILLs a random worker and starts a replacement. Then it
checks, from the database and the activities' own logs:

* every run completed with the right result;
* every history numbers its events 1..N without a gap, and has exactly one
  completion per scheduled activity;
* an activity body ran more than once only when the earlier runs were in
  processes that were killed (it was in flight at a kill).

It prints the figures (kills, re-executions, time to finish) and writes them
as JSON; the exit status is 1 if a check failed.

    python benchmarks/chaos.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test
        [--workflows 1000] [--workers 4] [--kill-every 1.0 | --kill-at 0.2,0.5] [--max-kills N] [--json out.json]

The runs live in a fresh schema of that database, dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa

import retold
from retold.history import events as ev

HERE = Path(__file__).resolve().parent


# -- what the workers host (``python -m retold worker chaos`` imports this module) ------------


def _log(**record: Any) -> None:
    directory = os.environ.get("CHAOS_LOG_DIR")
    if directory:
        with Path(directory, f"{os.getpid()}.log").open("a") as f:
            f.write(json.dumps({**record, "pid": os.getpid()}) + "\n")  # one write: never split by a kill


@retold.activity
async def chaos_step(i: int, step: int, seconds: float) -> int:
    """One step: log its start and end around a short wait."""
    attempt = retold.activity_info().attempt
    _log(ev="start", i=i, step=step, attempt=attempt)
    await anyio.sleep(seconds * random.uniform(0.5, 1.5))
    _log(ev="done", i=i, step=step, attempt=attempt)
    return i * 10 + step


@retold.workflow
async def chaos_flow(i: int, seconds: float) -> list[int]:
    """Three steps in a row."""
    return [await retold.execute(chaos_step, i, step, seconds) for step in range(3)]


# -- the driver ------------------------------------------------------------------------------------


class Workers:
    """The worker processes, their replacements, and who was killed."""

    def __init__(self, url: str, logs: Path, options: list[str]) -> None:
        self.url, self.logs, self.options = url, logs, options
        self.live: list[subprocess.Popen[bytes]] = []
        self.stderr: dict[int, Path] = {}
        self.killed: set[int] = set()
        self.env = {**os.environ, "CHAOS_LOG_DIR": str(logs), "PYTHONPATH": str(HERE)}

    def spawn(self) -> subprocess.Popen[bytes]:
        path = self.logs / f"worker-{len(self.live) + len(self.killed)}.err"
        with path.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "retold", "worker", "chaos", "--url", self.url, *self.options],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        self.live.append(proc)
        self.stderr[proc.pid] = path
        return proc

    def kill_one(self, rng: random.Random) -> int:
        victim = rng.choice(self.live)
        victim.kill()
        victim.wait()
        self.live.remove(victim)
        self.killed.add(victim.pid)
        self.spawn()
        return victim.pid

    def stop(self) -> list[int]:
        """SIGTERM every worker once it is up (before, Python's default handler would kill it)."""
        deadline = time.monotonic() + 60
        for proc in self.live:
            while " ready (pid" not in self.stderr[proc.pid].read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
        for proc in self.live:
            proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout=60) for proc in self.live]


def sql_histories(url: str) -> dict[str, list[ev.Event]]:
    """Every run's history by workflow id, read from the database's tables."""
    engine = sa.create_engine(url)
    histories: dict[str, list[ev.Event]] = collections.defaultdict(list)
    with engine.connect() as conn:
        workflow_of: dict[str, str] = dict(conn.execute(sa.text("SELECT run_id, workflow_id FROM retold_runs")).all())
        rows = conn.execute(sa.text(
            "SELECT r.run_id, e.seq, e.at, c.name, e.meta, e.payload FROM retold_events e"
            " JOIN retold_runs r ON r.rk = e.rk JOIN retold_event_types c ON c.code = e.type"
            " ORDER BY r.run_id, e.seq"))
        for run_id, seq, at, type_, meta, payload in rows:
            histories[workflow_of[run_id]].append(ev.decode_event(seq, at, type_, bytes(meta),
                                                                  None if payload is None else bytes(payload)))
    engine.dispose()
    return histories


NATS_SNAPSHOT: dict[str, int] = {}  # the log position of the snapshot the checker's copy began from


def nats_histories(url: str) -> dict[str, list[ev.Event]]:
    """Every run's history by workflow id, read through a NATS store (a fresh process's copy of the log)."""
    from retold.stores.nats import NatsStore

    async def read() -> dict[str, list[ev.Event]]:
        store = NatsStore(url)
        await store.open()
        NATS_SNAPSHOT[url] = store.snapshot_seq
        try:
            runs = await store.list_runs(status=None, workflow=None, limit=1_000_000, offset=0)
            return {r.workflow_id: (await store.load(r.run_id, 0))[1] for r in runs}
        finally:
            await store.close()

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from the driver's loop: a loop of its own
        return pool.submit(lambda: anyio.run(read)).result()


def check(url: str, logs: Path, n: int, killed: set[int]) -> tuple[list[str], dict[str, int]]:
    """Read every history and log; return the problems found and the counts."""
    problems: list[str] = []
    histories = nats_histories(url) if url.startswith(("nats://", "tls://")) else sql_histories(url)
    for i in range(n):
        history = histories.get(f"chaos-{i}", [])
        if [e.seq for e in history] != list(range(1, len(history) + 1)):
            problems.append(f"chaos-{i}: event numbers {[e.seq for e in history]}")
        scheduled = sorted(e.seq for e in history if isinstance(e, ev.ActivityScheduled))
        completed = sorted(e.scheduled for e in history if isinstance(e, ev.ActivityCompleted))
        if len(scheduled) != 3 or completed != scheduled:
            problems.append(f"chaos-{i}: scheduled {scheduled}, completed {completed}")
        if not history or not isinstance(history[-1], ev.WorkflowCompleted):
            problems.append(f"chaos-{i}: does not end with WorkflowCompleted")
    starts: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for path in logs.glob("*.log"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["ev"] == "start":
                starts[(record["i"], record["step"])].append(record["pid"])
    reruns = 0
    for (i, step), pids in sorted(starts.items()):
        reruns += len(pids) - 1
        # Which run was the last is unknown from a log: what matters is that at
        # most one run was by a process that survived, i.e. every other run's
        # process was killed while the body was in flight (or before its result committed).
        survivors = [pid for pid in pids if pid not in killed]
        if len(survivors) > 1:
            problems.append(f"chaos-{i} step {step} ran {len(pids)} times in live processes {survivors}")
    if len(starts) != 3 * n:
        problems.append(f"{len(starts)} activities ran, expected {3 * n}")
    return problems, {"activity_runs": sum(len(p) for p in starts.values()), "re_executions": reruns}


def activities_started(logs: Path) -> int:
    """How many activity bodies have started so far, from the workers' logs."""
    return sum(path.read_text().count('"ev": "start"') for path in logs.glob("*.log"))


async def drive(args: argparse.Namespace, url: str, logs: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    options = ["--lease", str(args.lease), "--poll-interval", str(args.poll_interval), "--grace", "5",
               "--concurrency", str(args.concurrency)]
    workers = Workers(url, logs, options)
    async with retold.Engine(url, run_workers=False, poll_interval=0.5) as client:  # creates the tables
        for _ in range(args.workers):
            workers.spawn()
        began = time.monotonic()
        handles: dict[int, retold.RunHandle[Any]] = {}
        kills: list[float] = []
        started = 0.0

        async def killer() -> None:
            if args.kill_at:  # on observed progress: every kill lands mid-run however slow the machine
                for fraction in args.kill_at:
                    while activities_started(logs) < fraction * 3 * args.workflows:
                        await anyio.sleep(0.02)
                    workers.kill_one(rng)
                    kills.append(time.monotonic() - began)
                return
            while args.max_kills is None or len(kills) < args.max_kills:
                await anyio.sleep(args.kill_every * rng.uniform(0.7, 1.3))
                workers.kill_one(rng)
                kills.append(time.monotonic() - began)

        async def start_all() -> None:
            nonlocal started
            limit = anyio.Semaphore(16)  # like a web app's concurrent requests

            async def start(i: int) -> None:
                async with limit:
                    handles[i] = await client.start("chaos_flow", i, args.step_seconds, id=f"chaos-{i}")

            async with anyio.create_task_group() as tg:
                for i in range(args.workflows):
                    tg.start_soon(start, i)
            started = time.monotonic() - began

        async def wait_all() -> None:
            await start_all()
            for i in range(args.workflows):
                result = await handles[i].result()
                if result != [i * 10, i * 10 + 1, i * 10 + 2]:
                    raise AssertionError(f"chaos-{i} returned {result}")

        with anyio.fail_after(args.timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(killer)  # from the first second: starts are not spared either
                await wait_all()
                tg.cancel_scope.cancel()
        finished = time.monotonic() - began
    statuses = workers.stop()
    problems, counts = check(url, logs, args.workflows, workers.killed)
    if any(statuses):
        problems.append(f"workers stopped by SIGTERM exited with {statuses}")
    return {
        "workflows": args.workflows, "workers": args.workers, "kills": len(kills),
        "re_executions": counts["re_executions"], "activity_runs": counts["activity_runs"],
        "start_seconds": round(started, 2), "seconds_to_finish": round(finished, 2),
        "workflows_per_s": round(args.workflows / finished, 1), "problems": problems,
        **({"nats_snapshot_seq": NATS_SNAPSHOT[url]} if url in NATS_SNAPSHOT else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("RETOLD_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default $RETOLD_TEST_POSTGRES_URL), or nats://host:4222")
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=1.0, help="seconds between kills (jittered)")
    parser.add_argument("--max-kills", type=int, help="stop killing after this many")
    parser.add_argument("--kill-at", type=lambda v: [float(x) for x in v.split(",")],
                        help="instead of a clock: kill once these fractions of the activities have "
                             "started, e.g. 0.2,0.45,0.7 (each kill then lands mid-run on any machine)")
    parser.add_argument("--step-seconds", type=float, default=0.02, help="mean duration of an activity")
    parser.add_argument("--lease", type=float, default=5.0,
                        help="lease of the workers (too short on a starved machine: live workers lose leases)")
    parser.add_argument("--concurrency", type=int, default=20, help="activity attempts at once per worker")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "chaos.json")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give --url or set RETOLD_TEST_POSTGRES_URL")
    if args.url.startswith(("nats://", "tls://")):
        return report(args, run_on_nats(args))
    schema = f"retold_chaos_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(args.url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures = anyio.run(drive, args, url.render_as_string(hide_password=False), Path(tmp))
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
    return report(args, figures)


def run_on_nats(args: argparse.Namespace) -> dict[str, Any]:
    """The runs in a stream of their own (a fresh prefix), deleted at the end."""
    import asyncio

    from retold.stores.nats import delete_store

    base, _, query = args.url.partition("?")
    options = "".join(f"&{o}" for o in query.split("&") if o and not o.startswith("prefix="))
    url = f"{base}?prefix=chaos_{uuid.uuid4().hex[:10]}{options}"  # the other options (snapshot_every) stay
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return anyio.run(drive, args, url, Path(tmp))
    finally:
        asyncio.run(delete_store(url))


def report(args: argparse.Namespace, figures: dict[str, Any]) -> int:
    """Print the figures and problems, write them as JSON; 1 if a check failed."""
    print(f"{figures['workflows']} workflows of 3 activities on {figures['workers']} workers: "
          f"{figures['kills']} kills, {figures['re_executions']} activity re-executions "
          f"({figures['activity_runs']} bodies run for {3 * figures['workflows']} activities), "
          f"all started after {figures['start_seconds']} s, finished in {figures['seconds_to_finish']} s "
          f"({figures['workflows_per_s']} workflows/s)")
    for problem in figures["problems"][:20]:
        print(f"PROBLEM: {problem}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.json}")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
