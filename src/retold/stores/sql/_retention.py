"""Retention: deleting closed runs older than a cut-off, in short transactions.

A purge walks the closed runs by close time, a batch at a time; each batch
is one short transaction, sized to take about 20 ms (at most ``batch_size``
runs), and the next waits as long as the last one took, so a purge never
holds the writer (SQLite's one writer, PostgreSQL's row locks) for long and
the engines sharing the database keep working.

What goes together, so that no row left behind names one that is gone:

* A run goes with everything of its own: its events, inbox, timers and any
  task left over. A running run is never touched (it has no close time).
* A run goes with its children (the runs whose ``parent_run_id`` it is, and
  theirs), whatever their own close time. While any of them is still running
  (a child still cancelling after its parent closed), the run is kept and
  counted in ``kept``: a later purge takes it.
* The last run of a workflow id goes with the earlier runs of its
  continue-as-new chain, and with them the workflow id's row: the id and its
  idempotency key can then be used again. An earlier, continued run can go
  alone once it is old enough: the chain loses its oldest end, and the
  workflow id's row names the oldest run left as its first.
* A retained parent's history may name a child run that went before it:
  looking that run up says it does not exist.

On SQLite, freed pages go back to the file system with ``PRAGMA
incremental_vacuum`` after each batch, in a file created with
``auto_vacuum=INCREMENTAL`` (every file retold creates; an older file needs
a one-off ``VACUUM``, see docs/operations.md). Elsewhere pages are reused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._purge import PurgeReport
from . import _schema as t

if TYPE_CHECKING:
    from ._store import SqlStore

__all__ = ["Pass", "purge"]

_CHUNK = 500  # ids per IN (...) list
_MIN_PAUSE = 0.005  # seconds between two batches, at least
_TARGET = 0.02  # seconds a batch should take: the batch size adapts to it
_MIN_BATCH = 5
_VACUUM_PAGES = 256  # pages handed back per incremental_vacuum (1 MiB of 4 KiB pages)

_r = t.runs
_COLUMNS = (_r.c.run_id, _r.c.workflow_id, _r.c.closed_at, _r.c.next_run_id, _r.c.parent_run_id, _r.c.created_at)


@dataclass
class Pass:
    """One purge: its filters, and where its walk over the closed runs is."""

    before: float
    statuses: Sequence[str] | None
    workflow: str | None
    batch_size: int  # at most; the batches start smaller and adapt to take about _TARGET seconds
    dry_run: bool
    cursor: tuple[float, str] | None = None  # (closed_at, run_id) of the last run looked at
    seen: set[str] = field(default_factory=set)  # dry run: runs counted already
    size: int = 0  # runs in the next batch
    took: float = 0.0  # seconds the last batch's statements took

    def adapt(self) -> None:
        """Size the next batch so that it takes about ``_TARGET`` seconds."""
        if self.took > _TARGET:
            self.size = max(min(_MIN_BATCH, self.batch_size), self.size // 2)
        elif self.took < _TARGET / 2:
            self.size = min(self.batch_size, self.size * 2)


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield list(items[i:i + _CHUNK])


def _candidates(conn: Connection, p: Pass) -> list[Any]:
    """The next closed runs that match, oldest close first (locked on PostgreSQL, skipping locked ones)."""
    stmt = sa.select(*_COLUMNS).where(_r.c.closed_at < p.before)
    if p.statuses is not None:
        stmt = stmt.where(_r.c.status.in_(list(p.statuses)))
    if p.workflow is not None:
        stmt = stmt.where(_r.c.workflow == p.workflow)
    if p.cursor is not None:
        at, run_id = p.cursor
        # Written so that the close-time index serves it (a bare OR made SQLite sort every old run).
        stmt = stmt.where(_r.c.closed_at >= at, sa.or_(_r.c.closed_at > at, _r.c.run_id > run_id))
    stmt = stmt.order_by(_r.c.closed_at, _r.c.run_id).limit(p.size)
    if not p.dry_run:
        # Another purge (another engine) takes the rows it holds; SQLite ignores the clause.
        stmt = stmt.with_for_update(skip_locked=True)
    return list(conn.execute(stmt).all())


def _related(conn: Connection, runs: Sequence[Any]) -> list[Any]:
    """The children of ``runs``, and the whole chain of each run that is the last of its chain."""
    ids = [row.run_id for row in runs]
    last = [row.workflow_id for row in runs if row.next_run_id is None]
    found: list[Any] = []
    for chunk in _chunks(ids):
        found += conn.execute(sa.select(*_COLUMNS).where(_r.c.parent_run_id.in_(chunk))).all()
    for chunk in _chunks(last):
        found += conn.execute(sa.select(*_COLUMNS).where(_r.c.workflow_id.in_(chunk))).all()
    return found


class _Groups:
    """Runs that must go together, merged as they are found (union-find)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.rows: dict[str, Any] = {}

    def add(self, row: Any) -> bool:
        """Add a run; False if it was there already."""
        if row.run_id in self.rows:
            return False
        self.rows[row.run_id] = row
        self.parent[row.run_id] = row.run_id
        return True

    def find(self, run_id: str) -> str:
        root = run_id
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[run_id] != root:  # path compression
            self.parent[run_id], run_id = root, self.parent[run_id]
        return root

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def _group(conn: Connection, roots: Sequence[Any], seen: Collection[str]) -> tuple[dict[str, Any], set[str]]:
    """The runs that go with ``roots`` (see the module's docstring).

    Returns the runs that can go, and the roots that must stay because a run
    they go with is still running.
    """
    groups = _Groups()
    for root in roots:
        groups.add(root)
    frontier = list(roots)
    while frontier:
        parents = {row.run_id for row in frontier}
        last_of = {row.workflow_id: row.run_id for row in frontier if row.next_run_id is None}
        nxt = []
        for row in _related(conn, frontier):
            if row.run_id in seen:
                continue  # a dry run counted it already
            if groups.add(row) and row.closed_at is not None:
                nxt.append(row)  # a running run is not followed: it keeps its group anyway
            if row.parent_run_id in parents:
                groups.join(row.run_id, row.parent_run_id)
            if row.workflow_id in last_of:
                groups.join(row.run_id, last_of[row.workflow_id])
        frontier = nxt
    blocked = {groups.find(run_id) for run_id, row in groups.rows.items() if row.closed_at is None}
    doomed = {run_id: row for run_id, row in groups.rows.items() if groups.find(run_id) not in blocked}
    kept = {root.run_id for root in roots if groups.find(root.run_id) in blocked}
    return doomed, kept


def _rows(conn: Connection, table: sa.Table, ids: Sequence[str], dry_run: bool) -> int:
    """Delete (or, in a dry run, count) the rows of ``table`` that belong to runs ``ids``."""
    total = 0
    for chunk in _chunks(ids):
        where = table.c.run_id.in_(chunk)
        if dry_run:
            total += int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())
        else:
            total += conn.execute(table.delete().where(where)).rowcount
    return total


def _workflow_rows(conn: Connection, doomed: dict[str, Any], p: Pass) -> int:
    """Delete the rows of workflow ids left with no run; point the others at their oldest run left."""
    wids = sorted({row.workflow_id for row in doomed.values()})
    left: dict[str, list[Any]] = {wid: [] for wid in wids}
    for chunk in _chunks(wids):
        for row in conn.execute(sa.select(*_COLUMNS).where(_r.c.workflow_id.in_(chunk))):
            if row.run_id not in doomed and row.run_id not in p.seen:
                left[row.workflow_id].append(row)
    wf = t.workflows
    gone = [wid for wid in wids if not left[wid]]
    count = 0
    for chunk in _chunks(gone):
        where = wf.c.workflow_id.in_(chunk)
        if p.dry_run:
            count += int(conn.execute(sa.select(sa.func.count()).select_from(wf).where(where)).scalar_one())
        else:
            count += conn.execute(wf.delete().where(where)).rowcount
    if p.dry_run:
        return count
    moved = [wid for wid in wids if left[wid]]
    for chunk in _chunks(moved):
        firsts = conn.execute(sa.select(wf.c.workflow_id, wf.c.first_run_id).where(wf.c.workflow_id.in_(chunk)))
        for wid, first in firsts.all():
            if first not in doomed:
                continue
            # The head of what is left of the chain: the run no other run continued into.
            runs = left[wid]
            successors = {row.next_run_id for row in runs}
            heads = [row for row in runs if row.run_id not in successors] or runs
            head = min(heads, key=lambda row: (row.created_at, row.run_id))
            conn.execute(wf.update().where(wf.c.workflow_id == wid).values(first_run_id=head.run_id))
    return count


def batch(conn: Connection, p: Pass) -> PurgeReport:
    """Purge (or count) the runs of the next batch; move ``p.cursor`` past them (None: the walk is over)."""
    begun = time.perf_counter()
    try:
        return _batch(conn, p)
    finally:
        p.took = time.perf_counter() - begun


def _batch(conn: Connection, p: Pass) -> PurgeReport:
    candidates = _candidates(conn, p)
    doomed, kept_roots = _group(conn, [row for row in candidates if row.run_id not in p.seen], p.seen)
    kept = len(kept_roots)
    last = candidates[-1] if candidates else None
    p.cursor = (last.closed_at, last.run_id) if last is not None and len(candidates) == p.size else None
    if not doomed:
        return PurgeReport(kept=kept, dry_run=p.dry_run)
    ids = sorted(doomed)
    # The runs' rows first: other transactions lock a run's row before the rest of its rows.
    runs = len(ids) if p.dry_run else _rows(conn, t.runs, ids, dry_run=False)
    if not p.dry_run:
        _rows(conn, t.search_attributes, ids, dry_run=False)
    workflow_ids = _workflow_rows(conn, doomed, p)
    report = PurgeReport(
        runs=runs,
        workflow_ids=workflow_ids,
        events=_rows(conn, t.events, ids, p.dry_run),
        tasks=_rows(conn, t.workflow_tasks, ids, p.dry_run) + _rows(conn, t.activity_tasks, ids, p.dry_run),
        inbox=_rows(conn, t.inbox, ids, p.dry_run),
        timers=_rows(conn, t.timers, ids, p.dry_run),
        kept=kept,
        dry_run=p.dry_run,
    )
    if p.dry_run:
        p.seen.update(ids)
    return report


def _vacuum(store: SqlStore) -> int:
    """Hand up to ``_VACUUM_PAGES`` free pages back to the file system (a SQLite file with auto_vacuum).

    Returns how many free pages are left.
    """
    with store._d.engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            # Outside any transaction: the pragma is its own write, and
            # executescript steps it to the end (execute() would free one page).
            if driver.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                return 0  # NONE (a file from before retold set it: pages are reused) or FULL
            if driver.execute("PRAGMA freelist_count").fetchone()[0]:
                # It takes the write lock: wait for it as transactions do (the
                # connection's busy handler waits a few milliseconds a try).
                deadline = time.monotonic() + getattr(store._d, "busy_timeout", 10.0)
                while True:
                    try:
                        driver.executescript(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})")
                        break
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or time.monotonic() >= deadline:
                            raise
            return int(driver.execute("PRAGMA freelist_count").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # another process held the write lock past the busy timeout: a later purge frees them


async def purge(store: SqlStore, p: Pass) -> PurgeReport:
    """Run a whole purge, batch by batch, pausing between batches as long as each took."""
    report = PurgeReport(dry_run=p.dry_run)
    sqlite = store.dialect == "sqlite"
    p.size = min(p.batch_size, 20)
    while True:
        started = anyio.current_time()
        if p.dry_run:
            report += await store._read(batch, p)
        else:
            report += await store._run_outside(batch, p)
            if sqlite:
                await anyio.to_thread.run_sync(store._on_writer_connection, _vacuum, store, limiter=store._d.limiter)
        p.adapt()
        if p.cursor is None:
            break
        if not p.dry_run:
            await anyio.sleep(max(anyio.current_time() - started, _MIN_PAUSE))
    # Free pages the batches left (a batch hands back at most _VACUUM_PAGES).
    left = -1
    while sqlite and not p.dry_run:
        started = anyio.current_time()
        now_left = await anyio.to_thread.run_sync(store._on_writer_connection, _vacuum, store, limiter=store._d.limiter)
        if not now_left or now_left == left:
            break
        left = now_left
        await anyio.sleep(max(anyio.current_time() - started, _MIN_PAUSE))
    return report
