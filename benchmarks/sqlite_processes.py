"""Several processes on one SQLite file: signals racing a run's completion.

A worker process (``python -m retold worker``) runs one workflow that takes
in signals and completes after ``--complete-after`` of them; ``--senders``
client processes each send ``--signals`` signals to it, as fast as they can,
``--concurrency`` at a time. Each sender records which signals were
acknowledged and which raised. Then the history is checked:

- lost: acknowledged but not in the history (must be 0);
- duplicated: in the history more than once (must be 0);
- errors: calls that raised anything but RunFinishedError (the run had
  completed: a clean refusal that wrote nothing) or SignalBufferFullError
  (the run had ``max_pending_signals`` unprocessed signals: back-pressure,
  nothing written; the sender waits a little and sends that signal again,
  as a client should, and the retries are counted apart), "database is
  locked" included (must be 0);
- lock_errors: how many of the errors were "database is locked".

    python benchmarks/sqlite_processes.py --senders 4 --signals 10000 [--busy-timeout 10]

Prints the counts and writes ``benchmarks/results/<date>-sqlite-processes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import anyio

import retold
from retold.history import events as ev

ROOT = Path(__file__).resolve().parents[1]


@retold.workflow
async def sink(limit: int) -> int:
    """Take in signals until ``limit`` have come."""
    count = 0
    while count < limit:
        await retold.wait_signal("s", str)
        count += 1
    return count


async def _sender(url: str, index: int, signals: int, concurrency: int, out: str) -> None:
    acknowledged: list[str] = []
    errors: Counter[str] = Counter()
    refused = 0
    buffer_full = 0
    async with retold.Engine(url, workflows=[sink], run_workers=False) as engine:
        handle = engine.get_handle("sink")
        queue = iter(range(signals))

        async def lane() -> None:
            nonlocal refused, buffer_full
            for i in queue:
                value = f"{index}-{i}"
                while True:
                    try:
                        await handle.signal("s", value)
                    except retold.SignalBufferFullError:
                        buffer_full += 1  # back-pressure: nothing was written; send it again shortly
                        await anyio.sleep(0.05)
                        continue
                    except retold.RunFinishedError:
                        refused += 1
                    except Exception as exc:  # noqa: BLE001 - counted, by kind
                        errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                    else:
                        acknowledged.append(value)
                    break

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(lane)
    Path(out).write_text(json.dumps({"acknowledged": acknowledged, "refused": refused, "errors": errors,
                                           "buffer_full": buffer_full}))


def run(senders: int, signals: int, concurrency: int, complete_after: int,
        busy_timeout: float | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'shared.db'}"
        if busy_timeout is not None:  # every process (the worker's CLI too) reads it from the URL
            url += f"?busy_timeout={busy_timeout}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / "src", ROOT, ROOT / "benchmarks"))}

        async def start() -> None:
            async with retold.Engine(url, workflows=[sink], run_workers=False) as engine:
                await engine.start(sink.with_options(id="sink"), complete_after)

        anyio.run(start)
        err = Path(tmp) / "worker.err"
        with err.open("w") as err_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "retold", "worker", "sqlite_processes:sink", "--url", url],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err_file)
        try:
            started = time.perf_counter()
            procs = [subprocess.Popen(
                [sys.executable, __file__, "--send", url, str(i), str(signals), str(concurrency),
                 str(Path(tmp) / f"sender-{i}.json")], cwd=ROOT, env=env) for i in range(senders)]
            for proc in procs:
                proc.wait()
            elapsed = time.perf_counter() - started

            async def check() -> dict[str, Any]:
                async with retold.Engine(url, workflows=[sink], run_workers=False) as engine:
                    with anyio.fail_after(600):
                        record = await engine.wait_closed("sink")
                    history = await engine.history("sink")
                    got = [engine.codec.decode(e.input, str) for e in history.events
                           if isinstance(e, ev.SignalReceived)]
                    return {"status": record.status, "got": got}

            final = anyio.run(check)
        finally:
            worker.terminate()
            worker.wait(60)
        acknowledged: list[str] = []
        refused = 0
        buffer_full = 0
        errors: Counter[str] = Counter()
        for i in range(senders):
            data = json.loads((Path(tmp) / f"sender-{i}.json").read_text())
            acknowledged += data["acknowledged"]
            refused += data["refused"]
            buffer_full += data["buffer_full"]
            errors.update(data["errors"])
        recorded = Counter(final["got"])
        return {
            "senders": senders, "signals_each": signals, "concurrency": concurrency,
            "complete_after": complete_after, "busy_timeout": busy_timeout or 10.0,
            "seconds": round(elapsed, 2), "status": final["status"],
            "acknowledged": len(acknowledged), "refused_after_completion": refused,
            "recorded": len(final["got"]),
            "lost": sum(1 for value in acknowledged if value not in recorded),
            "duplicated": sum(n - 1 for n in recorded.values() if n > 1),
            "errors": sum(errors.values()),
            "lock_errors": sum(n for kind, n in errors.items() if "locked" in kind),
            "error_kinds": dict(errors.most_common(5)),
            "buffer_full_retries": buffer_full,
            "worker_log_errors": err.read_text().count("OperationalError"),
        }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        url, index, signals, concurrency, out = sys.argv[2:7]
        anyio.run(_sender, url, int(index), int(signals), int(concurrency), out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--signals", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--busy-timeout", type=float, default=None,
                        help="SQLite busy_timeout of every process, seconds (default: the store's, 10)")
    parser.add_argument("--out", default=None, help="where to write the JSON (default: benchmarks/results/)")
    parser.add_argument("--complete-after", type=int, default=None,
                        help="signals the run takes before completing (default: 3/4 of all sent)")
    args = parser.parse_args()
    complete_after = args.complete_after or args.senders * args.signals * 3 // 4
    result = run(args.senders, args.signals, args.concurrency, complete_after, args.busy_timeout)
    print(json.dumps(result, indent=2))
    target = Path(args.out) if args.out else Path(__file__).parent / "results" / f"{date.today()}-sqlite-processes.json"
    target.write_text(json.dumps(result, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
