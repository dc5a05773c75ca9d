"""Retention: the database's size after writing N small finished runs and after purging them, and the
longest writer stall while the purge runs.

Each run is a small workflow that returns its input (2 events). After writing them,
the script purges them with ``engine.purge`` (the same code as
``Engine(retention=...)`` and ``retold purge``) while a prober starts a
run every 20 ms through the same engine and times each start: the
slowest start during the purge is the writer stall (beside the same figure
measured before the purge, with nothing purging).

SQLite: a new file (``auto_vacuum=INCREMENTAL``, freed pages handed back by
the purge) and, with ``--legacy``, a file made without it (freed pages kept
for reuse), then shrunk by the one-off ``VACUUM``. PostgreSQL:
``pg_total_relation_size`` of retold's tables after writing, after the purge
and after ``VACUUM`` (autovacuum's job).

    python benchmarks/retention_size.py --runs 100000 [--legacy] \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints the figures and writes ``benchmarks/results/<date>-retention.json``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa

import retold

RESULTS = Path(__file__).resolve().parent / "results"


@retold.workflow
async def small(n: int) -> int:
    return n


async def write(engine: retold.Engine, count: int, concurrency: int = 200) -> float:
    """Run ``count`` small runs to the end; return runs per second."""
    started = time.perf_counter()
    limiter = anyio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with limiter:
            await (await engine.start(small, n)).result()

    async with anyio.create_task_group() as group:
        for n in range(count):
            group.start_soon(one, n)
    return count / (time.perf_counter() - started)


async def probe(engine: retold.Engine, stop: anyio.Event, latencies: list[float]) -> None:
    """Start a run every 20 ms until ``stop``; record each start's latency (seconds)."""
    while not stop.is_set():
        begun = time.perf_counter()
        await engine.start(small, -1)
        latencies.append(time.perf_counter() - begun)
        await anyio.sleep(0.02)


async def stalls(engine: retold.Engine, during: Any) -> tuple[dict[str, float], Any]:
    """Latency figures of the prober while ``during()`` runs, and what it returned."""
    latencies: list[float] = []
    stop = anyio.Event()
    result: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(probe, engine, stop, latencies)

        async def body() -> None:
            result.append(await during())
            stop.set()

        group.start_soon(body)
    ordered = sorted(latencies)
    return {
        "starts": len(latencies),
        "start_p50_ms": 1000 * statistics.median(ordered),
        "start_p99_ms": 1000 * ordered[max(0, int(len(ordered) * 0.99) - 1)],
        "start_max_ms": 1000 * ordered[-1],
    }, result[0]


async def measure(url: str, count: int, size: Any, vacuum: Any) -> dict[str, Any]:
    """Write, purge while probing, and read the database's size at each step."""
    figures: dict[str, Any] = {"runs": count}
    async with retold.Engine(url, workflows=[small], poll_interval=0.05) as engine:
        figures["size_empty"] = size()
        figures["write_runs_per_s"] = await write(engine, count)
        figures["size_written"] = size()

        async def idle() -> None:
            await anyio.sleep(3.0)

        figures["baseline"], _ = await stalls(engine, idle)
        begun = time.perf_counter()

        async def purge() -> retold.PurgeReport:
            return await engine.purge(0, workflow="small")

        figures["during_purge"], report = await stalls(engine, purge)
        figures["purge_seconds"] = time.perf_counter() - begun
        figures["purged"] = report.as_dict()
        figures["purge_runs_per_s"] = report.runs / figures["purge_seconds"]
        figures["size_purged"] = size()
    figures.update(vacuum())
    return figures


def sqlite_size(path: Path) -> int:
    """The file's size with its WAL folded in (``wal_checkpoint(TRUNCATE)``)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def sqlite_case(folder: Path, count: int, legacy: bool) -> dict[str, Any]:
    path = folder / ("legacy.db" if legacy else "new.db")
    if legacy:
        with sqlite3.connect(path) as conn:  # as a file retold made before it set auto_vacuum
            conn.execute("CREATE TABLE placeholder (x)")
            conn.execute("DROP TABLE placeholder")

    def vacuum() -> dict[str, Any]:
        with sqlite3.connect(path, isolation_level=None) as conn:
            out = {"auto_vacuum": conn.execute("PRAGMA auto_vacuum").fetchone()[0],
                   "freelist_pages_after_purge": conn.execute("PRAGMA freelist_count").fetchone()[0]}
            if legacy:
                begun = time.perf_counter()
                conn.executescript("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")  # the documented one-off step
                out["vacuum_seconds"] = time.perf_counter() - begun
        out["size_vacuumed"] = sqlite_size(path)
        return out

    return anyio.run(measure, f"sqlite:///{path}", count, lambda: sqlite_size(path), vacuum)


def postgres_case(base: str, count: int) -> dict[str, Any]:
    schema = f"retold_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)
    sizes = sa.text(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind = 'r'")

    def size() -> int:
        with admin.connect() as conn:
            return int(conn.execute(sizes, {"schema": schema}).scalar_one())

    def vacuum() -> dict[str, Any]:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'SET search_path = "{schema}"')
            conn.exec_driver_sql("VACUUM")
            vacuumed = size()
            conn.exec_driver_sql("VACUUM FULL")
        return {"size_vacuumed": vacuumed, "size_vacuum_full": size()}

    try:
        return anyio.run(measure, url, count, size, vacuum)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def show(name: str, f: dict[str, Any]) -> None:
    print(f"\n{name}: {f['runs']} runs written at {f['write_runs_per_s']:.0f}/s, "
          f"purged in {f['purge_seconds']:.1f} s ({f['purge_runs_per_s']:.0f} runs/s, {f['purged']['events']} events)")
    print(f"  size: written {mib(f['size_written'])}, purged {mib(f['size_purged'])}, "
          f"vacuumed {mib(f['size_vacuumed'])}"
          + (f", VACUUM FULL {mib(f['size_vacuum_full'])}" if "size_vacuum_full" in f else ""))
    for phase in ("baseline", "during_purge"):
        s = f[phase]
        print(f"  1-run start latency {phase}: p50 {s['start_p50_ms']:.1f} ms, p99 {s['start_p99_ms']:.1f} ms, "
              f"max {s['start_max_ms']:.1f} ms ({s['starts']} starts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--legacy", action="store_true", help="Also a SQLite file without auto_vacuum.")
    parser.add_argument("--postgres", metavar="URL", help="Also PostgreSQL at this URL.")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{date.today()}-retention.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"command": "python benchmarks/retention_size.py " + " ".join(
        a for a in (f"--runs {args.runs}", "--legacy" if args.legacy else "",
                    "--postgres URL" if args.postgres else "") if a)}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = sqlite_case(Path(tmp), args.runs, legacy=False)
        show("SQLite (new file, auto_vacuum=INCREMENTAL)", results["sqlite"])
        if args.legacy:
            results["sqlite_legacy"] = sqlite_case(Path(tmp), args.runs, legacy=True)
            show("SQLite (older file, no auto_vacuum; then VACUUM)", results["sqlite_legacy"])
    if args.postgres:
        results["postgres"] = postgres_case(args.postgres, args.runs)
        show("PostgreSQL", results["postgres"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
