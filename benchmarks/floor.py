"""The physical floor, measured in the same run: what the disk allows at best.

Two figures, on the same kind of database the systems use:

- the cost of one durable commit (one small row per transaction, WAL and
  ``synchronous=FULL`` on SQLite; a normal commit on PostgreSQL), which bounds
  any design that commits once per step;
- rows per second of a raw batched insert of the events of three-activity
  workflows, encoded as retold stores them, 1,000 rows per transaction: the
  bound for a design that groups many steps into one commit.

    python benchmarks/floor.py --job JOB.json --out OUT.json
"""

from __future__ import annotations

import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import sqlalchemy as sa

import retold
from _common import Figures, Job, child_main, elapsed_since
from retold.history import events as ev

Row = tuple[str, int, str, float, bytes, bytes | None]


def workflow_events(i: int) -> list[ev.Event]:
    """The history of one completed three-activity workflow."""
    options = retold.ActivityOptions().to_json()
    events: list[ev.Event] = [
        ev.WorkflowStarted(seq=1, at=0.0, workflow="three_steps", workflow_id=f"wf-{i}", input=orjson.dumps([i]))
    ]
    for k in range(3):
        seq = len(events) + 1
        events.append(ev.ActivityScheduled(seq=seq, at=0.0, activity="noop", input=orjson.dumps([i + k]),
                                           options=options))
        events.append(ev.ActivityCompleted(seq=seq + 1, at=0.0, scheduled=seq, attempt=1,
                                           result=orjson.dumps(i + k)))
    events.append(ev.WorkflowCompleted(seq=len(events) + 1, at=0.0, result=orjson.dumps(i + 2)))
    return events


def rows(workflows: int) -> Iterator[Row]:
    """Event rows of ``workflows`` workflows, as (run_id, seq, type, at, meta, payload)."""
    now = time.time()
    for i in range(workflows):
        run_id = uuid.uuid4().hex
        for event in workflow_events(i):
            type_name, meta, payload = ev.encode_event(event)
            yield run_id, event.seq, type_name, now, meta, payload


def _batches(items: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _measure(commit_one: Callable[[Row], None], insert_many: Callable[[list[Row]], None],
             job: Job) -> Figures:
    commits: int = job.params["commits"]
    sample = list(rows(commits))
    timings = []
    for row in sample:
        t0 = time.perf_counter()
        commit_one(row)
        timings.append(elapsed_since(t0))
    all_rows = list(rows(job.params["workflows"]))
    t0 = time.perf_counter()
    for batch in _batches(all_rows, job.params["batch"]):
        insert_many(batch)
    seconds = elapsed_since(t0)
    return {
        "commit_ms": 1000 * statistics.median(timings),
        "commits_per_s": 1 / statistics.median(timings),
        "batched_rows_per_s": len(all_rows) / seconds,
        "events_per_workflow": len(all_rows) / job.params["workflows"],
    }


_DDL = ("CREATE TABLE events (run_id VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(32) NOT NULL, "
        "at FLOAT NOT NULL, meta {blob} NOT NULL, payload {blob}, PRIMARY KEY (run_id, seq))")
_INSERT = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)"


def sqlite_floor(job: Job) -> Figures:
    """The floor on a SQLite file in WAL mode with synchronous=FULL."""
    assert job.path is not None
    conn = sqlite3.connect(job.path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(_DDL.format(blob="BLOB"))

    def commit_one(row: Row) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_INSERT, row)
        conn.execute("COMMIT")

    def insert_many(batch: list[Row]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, batch)
        conn.execute("COMMIT")

    try:
        return {**_measure(commit_one, insert_many, job), "sqlite_version": sqlite3.sqlite_version}
    finally:
        conn.close()


def sql_floor(job: Job) -> Figures:
    """The floor on another database (PostgreSQL), through SQLAlchemy with the job's driver."""
    engine = sa.create_engine(job.url)
    insert = sa.text("INSERT INTO events VALUES (:run_id, :seq, :type, :at, :meta, :payload)")
    names = ("run_id", "seq", "type", "at", "meta", "payload")

    def params(row: Row) -> dict[str, Any]:
        return dict(zip(names, row, strict=True))

    with engine.begin() as conn:
        conn.execute(sa.text(_DDL.format(blob="BYTEA")))

    def commit_one(row: Row) -> None:
        with engine.begin() as conn:
            conn.execute(insert, params(row))

    def insert_many(batch: list[Row]) -> None:
        with engine.begin() as conn:
            conn.execute(insert, [params(r) for r in batch])

    try:
        return _measure(commit_one, insert_many, job)
    finally:
        engine.dispose()


def run_job(job: Job) -> Figures:
    """Measure the floor for the job's database."""
    return sqlite_floor(job) if job.path is not None else sql_floor(job)


if __name__ == "__main__":
    child_main(run_job)
