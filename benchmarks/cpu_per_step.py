"""CPU seconds per unit of work (getrusage) beside wall time, in this process, on a store of each kind.

W3: one workflow of N sequential no-op activities (CPU per step); W1: N
workflows of 3 activities started at once (CPU per workflow). Run it with
two installs to compare (the figures of one install vary less than wall
time on a shared machine, but alternate the runs and quote medians).

The CPU is this process's (the engine's): a server's own (PostgreSQL's,
nats-server's) is not counted. Each repetition gets a fresh store: a new
SQLite file, a new PostgreSQL schema, a new NATS prefix.

    python benchmarks/cpu_per_step.py [--units 500] [--repeat 3] [--json out.json] [--only W3] [--at-once]
        [--url sqlite|memory://|postgresql+psycopg://...|nats://...] (several --url: one after the other, alternated)
        [--count] [--group-commit]

``--count`` also prints what each unit cost the store (counted on the engine's
store object, so a figure that does not depend on the machine's load):
transactions, history loads, claims, and the runs rebuilt by replay.
``--group-commit``: on PostgreSQL, the engine's store is ``SqlStore(url, group_commit=True)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

import retold


@retold.activity
async def noop(i: int) -> int:
    """Nothing, at once."""
    return i


@retold.workflow
async def chain(n: int) -> int:
    """N activities one after another."""
    total = 0
    for i in range(n):
        total += await retold.execute(noop, i)
    return total


@retold.workflow
async def three() -> int:
    """Three activities one after another."""
    return sum([await retold.execute(noop, i) for i in range(3)])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.asynccontextmanager
async def fresh_store(url: str) -> AsyncIterator[str]:
    """A URL of an empty store of ``url``'s kind, removed afterwards."""
    if url == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/cpu.db"
    elif url.startswith("memory:"):
        yield url
    elif url.startswith(("nats://", "tls://")):
        from retold.stores.nats import delete_store

        base, _, query = url.partition("?")
        options = "".join(f"&{o}" for o in query.split("&") if o and not o.startswith("prefix="))
        fresh = f"{base}?prefix=cpu_{uuid.uuid4().hex[:10]}{options}"
        try:
            yield fresh
        finally:
            await delete_store(fresh)
    else:
        import sqlalchemy as sa

        schema = f"retold_cpu_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            yield sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()


_COUNTED = ("transact", "load", "claim_workflow_tasks", "claim_activity_tasks", "get_run")


def _count_calls(store: object, counts: dict[str, int]) -> None:
    """Count calls to the store methods in :data:`_COUNTED` on this store object."""
    for name in _COUNTED:
        method = getattr(store, name)

        async def counted(*args: object, _method: Any = method, _name: str = name, **kwargs: object) -> Any:
            counts[_name] += 1
            return await _method(*args, **kwargs)

        setattr(store, name, counted)


def _store(url: str, group_commit: bool) -> Any:
    """The store to give the engine: None (the URL's) unless group commit is asked for on PostgreSQL."""
    if not group_commit or not url.startswith("postgres"):
        return None
    from retold.stores.sql import SqlStore

    return SqlStore(url, group_commit=True)


async def measure(
    kind: str, units: int, url: str, at_once: bool = False, counts: dict[str, float] | None = None,
    group_commit: bool = False,
) -> tuple[float, float]:
    """(CPU ms, wall ms) per unit of ``kind`` (``at_once``: W1's workflows started together, as run.py's W1).

    ``counts``: filled with store calls and replays per unit (see ``--count``).
    """
    async with fresh_store(url) as store_url, \
            retold.Engine(store_url, store=_store(store_url, group_commit), workflows=[chain, three],
                          activities=[noop]) as engine:
        await (await engine.start(chain, 10)).result(timeout=60)  # warm up
        calls = dict.fromkeys(_COUNTED, 0)
        replays = engine.cache.replays
        if counts is not None:
            _count_calls(engine.store, calls)
        cpu, wall = _cpu(), time.perf_counter()
        if kind == "W3":
            await (await engine.start(chain, units)).result(timeout=600)
        elif at_once:
            async def one() -> None:
                await (await engine.start(three)).result(timeout=600)

            async with anyio.create_task_group() as tg:
                for _ in range(units):
                    tg.start_soon(one)
        else:
            runs = [await engine.start(three) for _ in range(units)]
            for run in runs:
                await run.result(timeout=600)
        figures = (_cpu() - cpu) / units * 1e3, (time.perf_counter() - wall) / units * 1e3
        if counts is not None:
            counts.update({name: n / units for name, n in calls.items()})
            counts["replays"] = (engine.cache.replays - replays) / units
        return figures


def main() -> None:
    """Measure, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", choices=("W1", "W3"), default=None, help="one of the two workloads")
    parser.add_argument("--at-once", action="store_true",
                        help="W1: start every workflow together, each awaited by its own task (run.py's W1)")
    parser.add_argument("--count", action="store_true",
                        help="also print store calls (transactions, loads, claims) and replays per unit")
    parser.add_argument("--group-commit", action="store_true", help="PostgreSQL: SqlStore(url, group_commit=True)")
    parser.add_argument("--url", action="append", default=None,
                        help="sqlite (default), memory://, a PostgreSQL URL or a NATS URL; repeat to compare")
    args = parser.parse_args()
    urls: list[str] = args.url or ["sqlite"]
    figures: dict[str, dict[str, dict[str, object]]] = {}
    for kind in (args.only,) if args.only else ("W3", "W1"):
        runs: dict[str, list[tuple[float, float]]] = {url: [] for url in urls}
        counted: dict[str, list[dict[str, float]]] = {url: [] for url in urls}
        for _ in range(args.repeat):
            for url in urls:  # alternated, so that a busy moment of the machine hits every store alike
                counts: dict[str, float] | None = {} if args.count else None
                runs[url].append(anyio.run(measure, kind, args.units, url, args.at_once, counts, args.group_commit))
                if counts is not None:
                    counted[url].append(counts)
        unit = "step" if kind == "W3" else "workflow"
        for url in urls:
            cpu = [r[0] for r in runs[url]]
            wall = [r[1] for r in runs[url]]
            name = url.split("://")[0].split("+")[0]
            figures.setdefault(name, {})[kind] = {
                "cpu_ms_per_unit": cpu, "wall_ms_per_unit": wall,
                "cpu_median": statistics.median(cpu), "wall_median": statistics.median(wall)}
            print(f"{name} {kind}: CPU {statistics.median(cpu):.3f} ms per {unit} "
                  f"({', '.join(f'{c:.3f}' for c in cpu)}), wall {statistics.median(wall):.3f} ms")
            if counted[url]:
                per = {key: statistics.median(c[key] for c in counted[url]) for key in counted[url][0]}
                figures[name][kind]["per_unit"] = per
                print(f"  per {unit}: " + ", ".join(f"{key} {value:.2f}" for key, value in per.items()))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
