"""Helpers shared by the harness (``run.py``) and the workload processes.

A workload process is started by ``run.py`` with ``--job JOB.json --out
OUT.json``: it reads its :class:`Job`, runs one workload once and writes a
flat dict of figures. Everything here is standard library or SQLAlchemy, so
the same helpers serve retold's process and the peer's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

Figures = dict[str, Any]
"""What one workload process reports: figure name -> number (or a note)."""


@dataclass(frozen=True)
class Job:
    """One workload, run once, in a fresh process.

    Attributes:
        workload: ``W1``... or a phase such as ``W5-run``.
        url: the database URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
        path: the SQLite file behind ``url``, or None on PostgreSQL.
        params: sizes and options of the workload.
    """

    workload: str
    url: str
    path: str | None
    params: dict[str, Any] = field(default_factory=dict)

    def to_file(self, target: Path) -> None:
        """Write the job as JSON for the workload process."""
        target.write_text(json.dumps(asdict(self)))

    @classmethod
    def from_file(cls, source: Path) -> Job:
        """Read a job written by :meth:`to_file`."""
        data = json.loads(source.read_text())
        return cls(workload=data["workload"], url=data["url"], path=data["path"], params=data["params"])


def child_main(run_job: Callable[[Job], Figures]) -> None:
    """Entry point of a workload process: run the job named on the command line.

    Args:
        run_job: runs one job on the system's event loop and returns its figures.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    job = Job.from_file(args.job)
    load_before = machine_load()
    try:
        figures = run_job(job)
    except Exception as exc:
        # The harness reports the reason (say, a URL this retold cannot open); the traceback goes to stderr.
        args.out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        raise
    figures["load_before"] = load_before
    figures["load_after"] = machine_load()
    args.out.write_text(json.dumps(figures))


def machine_load() -> dict[str, float]:
    """How busy the machine is: load averages and, where Linux reports them, CPU and IO pressure.

    Pressure is the share of the last 10 s in which some task waited for a
    CPU or for IO; the other engineers' test runs show up here.
    """
    one, five, fifteen = os.getloadavg()
    load = {"load_1m": one, "load_5m": five, "load_15m": fifteen}
    for resource_name in ("cpu", "io"):
        try:
            first = Path(f"/proc/pressure/{resource_name}").read_text().splitlines()[0]
        except (OSError, IndexError):
            continue
        fields = dict(item.split("=") for item in first.split()[1:])
        load[f"{resource_name}_pressure_10s"] = float(fields["avg10"])
    return load


def cpu_pressure(load: dict[str, float]) -> float:
    """The CPU pressure (share of the last 10 s in which some task waited for a CPU) in ``load``; 0 if unknown."""
    return load.get("cpu_pressure_10s", 0.0)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its waited-for children so far (``getrusage``)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) of any process of this machine so far, from ``/proc``.

    None when the process is gone (or ``/proc`` does not say).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StepClock:
    """Marks the start of every step (activity body) of a long workflow: per-step median beside the mean.

    The mark is one ``perf_counter_ns`` append, made inside the activity
    body, so the step between two marks is everything the engine does
    between two activities.
    """

    def __init__(self) -> None:
        self.marks: list[int] = []

    def mark(self) -> None:
        """Called by the activity body."""
        self.marks.append(time.perf_counter_ns())

    def figures(self) -> Figures:
        """p50 and p99 of the steps, in ms (no figure with fewer than two marks)."""
        steps = [(b - a) / 1e6 for a, b in zip(self.marks, self.marks[1:], strict=False)]
        if not steps:
            return {}
        return {"ms_per_step_p50": percentile(steps, 0.5), "ms_per_step_p99": percentile(steps, 0.99)}


def progress(message: str) -> None:
    """One progress line on stderr (stdout stays free for the peer's logs)."""
    print(f"    {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def latency_figures(seconds: Iterable[float], prefix: str = "") -> Figures:
    """p50, p99 and mean of latencies given in seconds, as milliseconds."""
    values = list(seconds)
    return {
        f"{prefix}p50_ms": 1000 * percentile(values, 0.50),
        f"{prefix}p99_ms": 1000 * percentile(values, 0.99),
        f"{prefix}mean_ms": 1000 * sum(values) / len(values),
    }


def rss_bytes() -> int:
    """Resident memory of this process now (Linux), else its peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return pages * os.sysconf("SC_PAGE_SIZE")


def sqlite_files(path: Path) -> list[Path]:
    """The database file and its WAL and shared-memory files, those that exist."""
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def sqlite_bytes(path: Path) -> int:
    """Bytes on disk of a SQLite database and its WAL, after a truncating checkpoint.

    Call it once every connection of the system under test is closed.
    """
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in sqlite_files(path) if not p.name.endswith("-shm"))


def prepare_sqlite_wal(path: Path) -> None:
    """Create an empty SQLite file in WAL mode (the mode is stored in the file)."""
    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        assert mode == "wal", mode
    finally:
        conn.close()


def database_bytes(job: Job) -> int:
    """Size of the job's database: SQLite files, or ``pg_database_size`` on PostgreSQL."""
    if job.path is not None:
        return sqlite_bytes(Path(job.path))
    if job.url.startswith("nats"):
        return nats_bytes(job.url)
    if job.url.startswith("memory:"):
        return 0  # nothing on disk
    import sqlalchemy as sa

    engine = sa.create_engine(job.url)
    try:
        with engine.connect() as conn:
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
    finally:
        engine.dispose()
    return int(size)


def nats_bytes(url: str) -> int:
    """Bytes of a NATS store's stream (its log), as the server counts them."""
    import asyncio

    import nats

    from retold.stores.nats._url import parse_url

    parsed = parse_url(url)
    servers, prefix = parsed.servers, parsed.prefix

    async def size() -> int:
        nc = await nats.connect(servers=servers)
        try:
            return int((await nc.jetstream().stream_info(f"{prefix}_log")).state.bytes)
        finally:
            await nc.close()

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from async code: a loop of its own
        return pool.submit(lambda: asyncio.run(size())).result()


class ExecutionLog:
    """Activity bodies append one line per execution, from any process.

    Lines are short and the file is opened with ``O_APPEND``, so concurrent
    writers never interleave; a SIGKILL loses nothing already written (the
    page cache survives the process).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(self, key: str) -> None:
        """Record one completed execution of the activity with this key."""
        os.write(self._fd, f"{key}\n".encode())

    @staticmethod
    def keys(path: Path) -> list[str]:
        """Every key recorded in ``path``, in order, repeats included."""
        if not path.exists():
            return []
        return path.read_text().splitlines()


def elapsed_since(t0: float) -> float:
    """Seconds on the performance counter since ``t0``."""
    return time.perf_counter() - t0


class SqlCounter:
    """Counts what a system asks of its database, through SQLAlchemy's events (W1 and W3 with ``count_sql``).

    Counts statements (not BEGIN or PRAGMA), committed transactions, those
    that wrote, and, on SQLite, those committed with ``synchronous=FULL``
    (one WAL sync each). It adds a query per commit, so runs that count are
    not the timed ones.
    """

    def __init__(self, sqlite: bool) -> None:
        import sqlalchemy as sa

        self.sqlite = sqlite
        self.counts = dict.fromkeys(("statements", "transactions", "write_transactions", "synced_commits"), 0)
        self._wrote: set[int] = set()  # SQLite connections (by id) whose transaction wrote
        if sqlite:
            # retold runs its hot statements on the sqlite3 connection, past
            # SQLAlchemy's events: count what SQLite itself is asked to run.
            sa.event.listen(sa.pool.Pool, "connect", self._trace)
        else:
            sa.event.listen(sa.Engine, "before_cursor_execute", self._statement)
        sa.event.listen(sa.Engine, "commit", self._commit)

    def _trace(self, dbapi_conn: Any, _record: Any) -> None:
        key = id(dbapi_conn)

        def traced(statement: str) -> None:
            verb = statement.lstrip()[:6].upper()
            if verb.startswith(("BEGIN", "PRAGMA", "COMMIT", "SAVEPO", "RELEAS", "ROLLBA")):
                return
            self.counts["statements"] += 1
            if verb in ("INSERT", "UPDATE", "DELETE"):
                self._wrote.add(key)

        dbapi_conn.set_trace_callback(traced)

    @classmethod
    def maybe(cls, job: Job) -> SqlCounter | None:
        """A counter when the job asks for one."""
        return cls(job.path is not None) if job.params.get("count_sql") else None

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.lstrip()[:6].upper()
        if verb.startswith(("BEGIN", "PRAGMA")):
            return
        self.counts["statements"] += 1
        if verb in ("INSERT", "UPDATE", "DELETE"):
            conn.info["wrote"] = True

    def _commit(self, conn: Any) -> None:
        self.counts["transactions"] += 1
        wrote = conn.info.pop("wrote", False)
        if self.sqlite:
            driver = conn.connection.driver_connection
            wrote = id(driver) in self._wrote
            self._wrote.discard(id(driver))
        if not wrote:
            return
        self.counts["write_transactions"] += 1
        if self.sqlite:
            level = conn.connection.driver_connection.execute("PRAGMA synchronous").fetchone()[0]
            self.counts["synced_commits"] += level >= 2

    def reset(self) -> None:
        """Start counting from zero (after setup and warm-up)."""
        self.counts = dict.fromkeys(self.counts, 0)

    def per(self, units: int, unit: str) -> Figures:
        """The counts divided by ``units`` (steps, workflows)."""
        return {f"{name}_per_{unit}": value / units for name, value in self.counts.items()}


@contextlib.contextmanager
def postgres_schema(url: str, prefix: str) -> Iterator[str]:
    """``url`` with a fresh schema of its own (``prefix_<random>``) as its search path; dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield sa.make_url(url).update_query_dict(
            {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
