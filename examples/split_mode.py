"""Split mode: this program starts orders like a web app would; two worker processes run them.

    python examples/split_mode.py [--db split.db | --url postgresql+psycopg://user@host/db]

The workers are ``python -m retold worker split_mode``: they import this file
as the module ``split_mode`` and host every workflow and activity defined at
its top level. This program opens a ``retold.Client``, which hosts nothing:
it starts runs, waits for results and sends SIGTERM to the workers at the end,
which drain and exit with status 0. On a SQLite file the processes must share
one machine; on PostgreSQL they may run anywhere.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

import retold

HERE = Path(__file__).resolve().parent
T0 = time.monotonic()


def say(line: str) -> None:
    print(f"{time.monotonic() - T0:5.2f}s  {line}", flush=True)


@retold.activity
async def reserve_stock(order_id: str) -> int:
    """Reserve the items; returns the pid of the worker that ran it."""
    await anyio.sleep(0.05)
    return os.getpid()


@retold.activity
async def charge_card(order_id: str, cents: int) -> int:
    """Charge the customer; returns the pid of the worker that ran it."""
    await anyio.sleep(0.05)
    return os.getpid()


@retold.workflow
async def fulfil_order(order_id: str, cents: int) -> list[int]:
    """Reserve, then charge: two activities, maybe on two different workers."""
    return [await retold.execute(reserve_stock, order_id), await retold.execute(charge_card, order_id, cents)]


def start_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    with log.open("w") as err:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module, the example's URL
            [sys.executable, "-m", "retold", "worker", "split_mode", "--url", url],
            env=env, stdout=subprocess.DEVNULL, stderr=err,
        )


async def wait_ready(worker: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait for the worker's "ready" line: before it, a SIGTERM would kill it instead of draining it."""
    with anyio.fail_after(timeout):
        while " ready (pid" not in log.read_text():
            if worker.poll() is not None:
                raise SystemExit(f"worker {worker.pid} exited with {worker.returncode}:\n{log.read_text()}")
            await anyio.sleep(0.05)


async def main(url: str, logs: Path) -> None:
    async with retold.Client(url) as web_app:  # starts runs, runs nothing
        workers = [start_worker(url, logs / f"worker-{i}.log") for i in range(2)]
        say(f"[app] started workers {[w.pid for w in workers]}")
        for i, worker in enumerate(workers):
            await wait_ready(worker, logs / f"worker-{i}.log")
        runs = [
            await web_app.start(fulfil_order.with_options(id=f"order-{i}"), f"order-{i}", 500 + i) for i in range(6)
        ]
        for run in runs:
            reserved_by, charged_by = await run.result(timeout=60)
            say(f"[app] {run.workflow_id}: reserved by worker {reserved_by}, charged by worker {charged_by}")
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        statuses = [worker.wait(timeout=60) for worker in workers]
        say(f"[app] workers drained and exited with {statuses}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", default="split.db", help="SQLite file shared by the processes")
    parser.add_argument("--url", help="a store URL instead of --db, e.g. postgresql+psycopg://...")
    args = parser.parse_args()
    store_url = args.url or f"sqlite:///{Path(args.db).resolve()}"
    log_dir = Path(args.db).resolve().parent
    anyio.run(main, store_url, log_dir)
