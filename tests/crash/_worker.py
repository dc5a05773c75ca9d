"""Child process for the SIGKILL tests: hosts a chain of activities on a SQLite file.

Usage::

    python _worker.py crash   DB LOG SPEC   # start the runs, then run until killed
    python _worker.py recover DB LOG SPEC   # open an engine, wait for every run, print results

``SPEC`` is a JSON object: ``{"lease": float | null, "timeout": float, "runs": [{"id": str, "steps": int,
"block": int, "delay": float, "sleep_after": int, "sleep_seconds": float}, ...]}``.

Every activity attempt appends JSON lines to ``LOG`` (``O_APPEND``, fsync'd):
``{"ev": "start"|"done", "wf", "step", "attempt", "key", "run_id", "seq", "pid", "t"}``.
In the ``crash`` phase the activity whose step equals the run's ``block`` never
returns, so the test can kill the process while it is in flight; in the
``recover`` phase nothing blocks. The recovery phase never calls ``start()``:
it only opens an engine and waits on handles.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import anyio

import retold

PHASE = "crash"
LOG_PATH = ""


def log_line(record: dict[str, Any]) -> None:
    """Append one JSON line to the log durably (one write, then fsync)."""
    record = {**record, "pid": os.getpid(), "t": time.time()}
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(LOG_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@retold.activity(name="crash_step", retry=retold.RetryPolicy(max_attempts=1))
async def crash_step(wf_id: str, step: int, block: int, delay: float) -> str:
    """One step: log the start, maybe block (crash phase) or pause, log the end."""
    info = retold.activity_info()
    fields = {
        "wf": wf_id, "step": step, "attempt": info.attempt, "key": info.idempotency_key,
        "run_id": info.run_id, "seq": info.seq,
    }
    log_line({"ev": "start", **fields})
    if PHASE == "crash" and step == block:
        await anyio.sleep(3600)  # in flight until SIGKILL
    if delay > 0:
        await anyio.sleep(delay)
    log_line({"ev": "done", **fields})
    return f"{wf_id}:step{step}"


@retold.workflow(name="crash_chain")
async def crash_chain(
    wf_id: str, steps: int, block: int, delay: float, sleep_after: int, sleep_seconds: float
) -> list[str]:
    """Run ``steps`` sequential activities, with a durable timer after step ``sleep_after``."""
    results: list[str] = []
    for step in range(1, steps + 1):
        results.append(await retold.execute(crash_step, wf_id, step, block, delay))
        if step == sleep_after:
            await asyncio.sleep(sleep_seconds)
    return results


def make_engine(db: str, spec: dict[str, Any]) -> retold.Engine:
    """An engine on the SQLite file; ``spec["lease"]`` None keeps the default lease."""
    url = f"sqlite:///{db}"
    if spec["lease"] is None:
        return retold.Engine(url, workflows=[crash_chain], activities=[crash_step])
    return retold.Engine(
        url, workflows=[crash_chain], activities=[crash_step], lease=float(spec["lease"])
    )


async def crash_phase(db: str, spec: dict[str, Any]) -> None:
    async with make_engine(db, spec) as engine:
        log_line({"ev": "engine-open", "phase": "crash"})
        for run in spec["runs"]:
            await engine.start(
                crash_chain.with_options(id=run["id"]), run["id"], int(run["steps"]), int(run["block"]),
                float(run["delay"]), int(run["sleep_after"]), float(run["sleep_seconds"]),
            )
        log_line({"ev": "started-all", "phase": "crash"})
        await anyio.sleep_forever()


async def recover_phase(db: str, spec: dict[str, Any]) -> None:
    results: dict[str, list[str]] = {}
    async with make_engine(db, spec) as engine:
        log_line({"ev": "engine-open", "phase": "recover"})
        with anyio.fail_after(float(spec.get("timeout", 30.0))):
            for run in spec["runs"]:
                handle = engine.get_handle(run["id"])
                results[run["id"]] = await handle.result()
        log_line({"ev": "all-done", "phase": "recover"})
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    global PHASE, LOG_PATH
    phase, db, log_path, spec_json = argv
    PHASE, LOG_PATH = phase, log_path
    spec: dict[str, Any] = json.loads(spec_json)
    if phase == "crash":
        anyio.run(crash_phase, db, spec)
    elif phase == "recover":
        anyio.run(recover_phase, db, spec)
    else:
        raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
