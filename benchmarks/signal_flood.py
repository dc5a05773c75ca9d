"""Signals consumed per second while senders keep sending (issue: a flood used to starve a run).

One run counts the signals it takes in, recording a marker (a command, so
only a committed step writes it) for each. Senders in the same process send
at a target rate for a fixed time; the figure is markers committed per
second during the flood (a send is skipped, and counted, when 200 are
already waiting for the store), with the engine process's CPU seconds per
consumed signal beside it, and how many times the run was rebuilt by
replaying its history. Medians of ``--repeat`` runs per (store, rate).

Second scenario (``close``): a run takes ``--close-after`` signals and
returns while the senders keep sending; the figure is the seconds until it
closed (or ``null``: not within ``--deadline``), and its replays. A refused
``signal()`` (``SignalBufferFullError``) is counted and not sent again.

To measure another checkout's code (the figures before a change), run this
file with ``PYTHONPATH=<that checkout>/src``.

    python benchmarks/signal_flood.py --rates 300,3000 --seconds 5 --repeat 3 \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints a table and writes ``benchmarks/results/<date>-signal-flood.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa

import retold
from retold.history import events as ev


@retold.workflow
async def closes(k: int) -> int:
    for i in range(k):
        await retold.wait_signal("tick", str)
        retold.side_effect(_const(i))
    return k


@retold.workflow
async def flooded() -> int:
    count = 0
    while True:
        value = await retold.wait_signal("tick", str)
        if value == "stop":
            return count
        count += 1
        retold.side_effect(_const(count))


def _const(n: int) -> Callable[[], int]:
    return lambda: n


async def _markers(engine: retold.Engine, run_id: str) -> int:
    return sum(1 for e in (await engine.history(run_id)).events if isinstance(e, ev.MarkerRecorded))


class _Replays:
    """Counts the runs rebuilt from their history by the workflow worker (works on any version of it)."""

    count = 0

    def __init__(self) -> None:
        from retold.engine import _workflow_worker as worker

        original = worker.replay  # type: ignore[attr-defined]

        def counted(*args: Any, **kwargs: Any) -> Any:
            _Replays.count += 1
            return original(*args, **kwargs)

        worker.replay = counted  # type: ignore[attr-defined]


MAX_IN_FLIGHT = 200  # sends waiting for the store at once; past it a send is skipped (counted)


class _Sender:
    """Sends at a target rate, at most MAX_IN_FLIGHT at once, counting what the store did with them."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.sent = self.refused = self.skipped = self.in_flight = 0

    async def send_one(self) -> None:
        self.in_flight += 1
        try:
            await self.run.signal("tick", "x")
            self.sent += 1
        except retold.SignalBufferFullError:
            self.refused += 1
        except retold.RunFinishedError:
            pass
        finally:
            self.in_flight -= 1

    async def pace(self, rate: int, tg: Any, seconds: float = float("inf")) -> None:
        """Start ``rate`` sends a second, in ticks of 10 ms, for ``seconds`` (or until cancelled)."""
        tick, due, start = 0.01, 0.0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            due += rate * tick
            while due >= 1:
                if self.in_flight >= MAX_IN_FLIGHT:
                    self.skipped += 1  # the store is not keeping up with the senders
                else:
                    tg.start_soon(self.send_one)
                due -= 1
            await anyio.sleep(tick)


async def close(url: str, rate: int, k: int, deadline: float) -> dict[str, Any]:
    async with retold.Engine(url, workflows=[closes], poll_interval=0.05) as engine:
        run = await engine.start(closes.with_options(id=f"close-{uuid.uuid4().hex[:8]}"), k)
        assert run.run_id is not None
        replays0 = _Replays.count
        sender = _Sender(run)
        begin = time.perf_counter()
        closed_after: float | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.pace, rate, tg)
            with anyio.move_on_after(deadline):
                await run.result(timeout=deadline + 1)
                closed_after = time.perf_counter() - begin
            tg.cancel_scope.cancel()
        consumed = await _markers(engine, run.run_id)
        replays = _Replays.count - replays0
        if closed_after is None:
            await engine.terminate(run.run_id, "benchmark over")
        return {"closed_after_s": closed_after, "consumed": consumed, "sent": sender.sent,
                "refused": sender.refused, "skipped": sender.skipped, "replays": replays}


async def one(url: str, rate: int, seconds: float, drain: float) -> dict[str, Any]:
    async with retold.Engine(url, workflows=[flooded], poll_interval=0.05) as engine:
        run = await engine.start(flooded.with_options(id=f"flood-{uuid.uuid4().hex[:8]}"))
        assert run.run_id is not None
        run_id = run.run_id
        replays0 = _Replays.count
        sender = _Sender(run)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            await sender.pace(rate, tg, seconds)
            tg.cancel_scope.cancel()
        wall = time.perf_counter() - wall0
        consumed = await _markers(engine, run_id)
        cpu = time.process_time() - cpu0
        replays = _Replays.count - replays0
        # Then the run takes in what is left (at most --drain seconds) and stops.
        total: int | None = None
        with anyio.move_on_after(drain):
            while True:
                try:
                    await run.signal("tick", "stop")
                    break
                except retold.SignalBufferFullError:
                    await anyio.sleep(0.05)
            total = await run.result(timeout=drain + 1)
        if total is None:
            await engine.terminate(run_id, "benchmark over")
        return {
            "sent": sender.sent, "refused": sender.refused, "skipped": sender.skipped,
            "consumed_during_flood": consumed, "consumed_per_s": consumed / wall, "sent_per_s": sender.sent / wall,
            "cpu_ms_per_signal": 1000 * cpu / max(consumed, 1), "total_consumed": total, "replays": replays,
        }


def _sqlite_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / f'flood-{uuid.uuid4().hex[:8]}.db'}"


def _postgres_url(base: str) -> str:
    schema = f"retold_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    return sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="300,3000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL to measure it too")
    parser.add_argument("--close-after", type=int, default=200, help="signals the closing run takes")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds the closing run is given")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds the flooded run is given to take in what is left after the flood")
    parser.add_argument("--stores", default="sqlite,postgres", help="which of sqlite,postgres to measure")
    parser.add_argument("--label", default="", help="added to the JSON file's name (e.g. before, after)")
    args = parser.parse_args()
    _Replays()
    rates = [int(r) for r in args.rates.split(",")]
    results: dict[str, Any] = {"seconds": args.seconds, "repeat": args.repeat, "code": retold.__file__,
                               "max_in_flight": MAX_IN_FLIGHT, "runs": {}}
    print(f"code: {retold.__file__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base: str | None = args.postgres
        stores: dict[str, Callable[[], str]] = {"sqlite": lambda: _sqlite_url(Path(tmp))}
        if base is not None:
            stores["postgres"] = lambda: _postgres_url(base)
        stores = {name: make for name, make in stores.items() if name in args.stores.split(",")}
        for store, make_url in stores.items():
            for rate in rates:
                runs = [anyio.run(one, make_url(), rate, args.seconds, args.drain) for _ in range(args.repeat)]
                key = f"{store}@{rate}/s"
                results["runs"][key] = runs
                med = {k: statistics.median(r[k] for r in runs)
                       for k in ("sent_per_s", "consumed_per_s", "cpu_ms_per_signal", "replays", "skipped")}
                results.setdefault("medians", {})[key] = med
                print(f"{key:>16}: sent {med['sent_per_s']:8.0f}/s  consumed {med['consumed_per_s']:8.0f}/s  "
                      f"CPU {med['cpu_ms_per_signal']:.3f} ms/signal  replays {med['replays']:.0f}  "
                      f"skipped {med['skipped']:.0f}  "
                      f"(median of {args.repeat})", flush=True)
            for rate in rates:
                key = f"{store}@{rate}/s close after {args.close_after}"
                closing = [anyio.run(close, make_url(), rate, args.close_after, args.deadline)
                           for _ in range(args.repeat)]
                results.setdefault("close", {})[key] = closing
                print(f"{key:>32}: closed after " + ", ".join(
                    f"not in {args.deadline:.0f} s ({c['consumed']} consumed)" if c["closed_after_s"] is None
                    else "{:.2f} s".format(c["closed_after_s"]) for c in closing)
                    + "; replays " + ", ".join(str(c["replays"]) for c in closing)
                    + "; refused " + ", ".join(str(c["refused"]) for c in closing)
                    + "; skipped " + ", ".join(str(c["skipped"]) for c in closing), flush=True)
    label = f"-{args.label}" if args.label else ""
    out = Path(__file__).parent / "results" / f"{date.today()}-signal-flood{label}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
