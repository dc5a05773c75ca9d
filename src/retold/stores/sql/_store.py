"""The SQL store: SQLite (the default) or PostgreSQL, through SQLAlchemy Core.

Each public method is one transaction run in a worker thread. The SQL is
written once; what differs between databases (connecting, beginning a
transaction, the clock, row locks, notifications) is a small
:class:`~._dialect.Dialect`: see ``_sqlite.py`` and ``_postgres.py``.

Statements that would race between processes on PostgreSQL under READ
COMMITTED are written so they cannot: claims take rows ``FOR UPDATE SKIP
LOCKED`` (SQLite ignores the clause: its writers are serialised), an append
locks the run's row first (a conditional ``UPDATE`` of ``last_seq``, or
``lock_run``), deletes that decide who acts check their row count, and
inserts that may collide use ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, TypeVar

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import RunNotFoundError, SchemaError, StoreError
from ...history import events as ev
from .._plan import Tx
from .._protocol import ActivityTask, RunRecord
from . import _schema as t
from ._dialect import dialect_for
from ._migrations import migrate
from ._records import row_to_run
from ._sqlite import boot_clock
from ._statements import Statements
from ._tx import ACTIVITY, WORKFLOW, SqlTx

__all__ = ["SqlStore"]

_T = TypeVar("_T")

def _locked(exc: StoreError) -> bool:
    """Whether a store error is SQLite's "database is locked" (or busy)."""
    text = str(exc.__cause__ or exc).lower()
    return "database is locked" in text or "database is busy" in text


def _failure(record: RunRecord, data: bytes | None) -> dict[str, Any] | None:
    """A workflow task's stored failure, for an open run."""
    return orjson.loads(data) if data and record.status == "running" else None


class _Queued:
    """A transaction body waiting for a group commit, and then its outcome."""

    __slots__ = ("args", "error", "fn", "result", "taken")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.taken = False
        self.result: Any = None
        self.error: Exception | None = None

class SqlStore:
    """A :class:`~retold.stores.Store` on SQLite or PostgreSQL, through SQLAlchemy Core.

    Args:
        url: ``sqlite:///path.db`` (a file, created if missing),
            ``memory://`` (a private in-memory SQLite database) or
            ``postgresql+psycopg://user:password@host:5432/dbname``
            (``postgresql://`` means the same; needs ``retold[postgres]``).
        clock: the store's clock, for tests; timers, event times and (unless
            ``lease_clock`` is given) leases use it. By default SQLite uses
            this machine's clock and PostgreSQL the server's, so machines
            with skewed clocks agree.
        lease_clock: the clock leases are judged by, for tests. By default
            SQLite uses the time since the machine booted (the same for
            every process on it, and blind to steps of the wall clock) and
            PostgreSQL the server's clock.
        pool_size: PostgreSQL connections for transactions (the engine's
            listener takes one more); SQLite runs one transaction at a time.
        max_pending_signals: how many signals a run may have that it has
            not processed yet; past it, ``signal()`` raises
            :class:`~retold.SignalBufferFullError` and writes nothing.
        busy_timeout: SQLite: how long (seconds) a transaction waits for
            another process's write lock before failing with a StoreError.

    Raises:
        StoreError: the URL is not supported, or its driver is missing.
    """

    def __init__(
        self, url: str, *, clock: Callable[[], float] | None = None, pool_size: int = 4,
        max_pending_signals: int = 10_000, busy_timeout: float = 10.0,
        lease_clock: Callable[[], float] | None = None,
    ) -> None:
        if pool_size < 1:
            raise StoreError(f"SqlStore pool_size must be at least 1, got {pool_size}")
        if max_pending_signals < 1:
            raise StoreError(f"SqlStore max_pending_signals must be at least 1, got {max_pending_signals}")
        if busy_timeout < 0:
            raise StoreError(f"SqlStore busy_timeout must not be negative, got {busy_timeout}")
        self.max_pending_signals = max_pending_signals  # read by the engine, which enforces it
        self._d = dialect_for(url, pool_size=pool_size, busy_timeout=busy_timeout)
        dbapi = self._d.engine.dialect.dbapi
        self._driver_errors: tuple[type[Exception], ...] = (dbapi.Error,) if dbapi is not None else ()
        self.url = self._d.url
        self._engine = self._d.engine
        self._q = Statements(self._d.insert, self._engine.dialect if self._d.name == "sqlite" else None)
        self._clock = clock
        # SQLite has one writer: batch durable transactions (see _run).
        self._group_commit = self._d.name == "sqlite"
        # Elsewhere transactions queue, first come first served, for the
        # pool's connections. Requests from outside (start, signal, cancel)
        # take at most all but one: a flood of them cannot queue ahead of
        # every step of the runs they feed.
        self._outside: anyio.CapacityLimiter | None = (
            None if self._group_commit or pool_size < 2 else anyio.CapacityLimiter(pool_size - 1))
        self._queue: list[_Queued] = []
        self._queue_lock = threading.Lock()
        if clock is not None or not self._d.server_clock:
            fixed = clock or self._d.wall
            self._now: Callable[[Connection], float] = lambda _conn: fixed()
        else:
            self._now = self._d.now
        # Leases: on one machine (SQLite) a clock that counts from boot, so
        # that steps of the wall clock do not end or stretch them; with
        # PostgreSQL, the server's clock, shared by every machine.
        lease_source = lease_clock or clock
        if lease_source is not None:
            self._lease_now: Callable[[Connection], float] = lambda _conn: lease_source()
        elif self._d.server_clock:
            self._lease_now = self._d.now
        else:
            self._lease_now = lambda _conn: boot_clock()

    # -- plumbing --------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """The database: ``sqlite`` or ``postgresql``."""
        return self._d.name

    def now(self) -> float:
        """The store's clock (on PostgreSQL, the server's as last measured)."""
        return self._clock() if self._clock is not None else self._d.wall()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if not self._group_commit:
            return await anyio.to_thread.run_sync(self._tx, fn, *args, limiter=self._d.limiter)
        # Group commit: queue the work, then take a turn at the writer. The
        # first turn takes everything queued so far and runs it in one
        # transaction, each piece in a savepoint of its own: one fsync for
        # many runs' steps. A piece's outcome is known only after COMMIT.
        item = _Queued(fn, args)
        with self._queue_lock:
            self._queue.append(item)
        try:
            async with self._d.limiter:  # our turn at the writer
                if not item.taken:  # else an earlier turn already ran it: no thread hop
                    await anyio.to_thread.run_sync(self._drain)
        except BaseException:
            with self._queue_lock:
                if not item.taken:  # cancelled before any turn took it: it never runs
                    self._queue.remove(item)
            raise
        if item.error is not None:
            raise item.error
        result: _T = item.result
        return result

    async def _run_outside(self, fn: Callable[..., _T], *args: Any) -> _T:
        """A durable transaction asked for from outside the engine (start, signal, cancel)."""
        if self._outside is None:
            return await self._run(fn, *args)
        async with self._outside:
            return await self._run(fn, *args)

    def _drain(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue, []
            for item in batch:
                item.taken = True
        if not batch:
            return  # an earlier turn ran ours
        if len(batch) == 1:
            item = batch[0]
            try:
                item.result = self._tx(item.fn, *item.args)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                item.error = exc
            return
        # Each piece's outcome stays here until COMMIT returns: if anything
        # fails before (BEGIN finding the file locked past the busy timeout,
        # a savepoint, the COMMIT itself), every piece gets that error, and
        # no caller is told its work was written when it was not.
        outcomes: list[tuple[Any, Exception | None]] = []
        try:
            with self._d.begin() as conn:
                # Savepoints on the driver: SQLAlchemy's cost as much as a statement's work.
                driver = conn.connection.driver_connection
                assert driver is not None
                for item in batch:
                    driver.execute("SAVEPOINT retold_piece")
                    try:
                        outcomes.append((item.fn(conn, *item.args), None))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller
                        driver.execute("ROLLBACK TO retold_piece")
                        outcomes.append((None, self._as_store_error(exc)))
                    driver.execute("RELEASE retold_piece")
                self._d.before_commit(conn)
        except BaseException as exc:
            failed = self._as_store_error(exc) if isinstance(exc, Exception) else StoreError(
                f"the transaction on {self.url} was interrupted: {exc!r}")
            for i, item in enumerate(batch):
                # A piece that failed on its own (rolled back to its savepoint)
                # keeps its own error; every other one was not written.
                own = outcomes[i][1] if i < len(outcomes) else None
                item.error = own if own is not None else failed
            if not isinstance(exc, Exception):
                raise
            return
        for item, (result, error) in zip(batch, outcomes, strict=True):
            item.result, item.error = result, error

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a transaction that only reads, on a read transaction of its own.

        On a SQLite file it never takes the write lock, so a long read (a
        big history) stalls no writer, here or in another process.
        """
        return await anyio.to_thread.run_sync(
            self._tx_in, self._d.begin_read, fn, *args, limiter=self._d.read_limiter
        )

    async def _run_lease_only(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a transaction that only moves leases, without waiting for the disk.

        Losing such a transaction to a power cut only hands a task back to the
        queue (SQLite commits it with ``synchronous=NORMAL``, PostgreSQL with
        ``synchronous_commit=off``); the next durable commit writes it to
        disk anyway. It must never append an event.
        """
        for attempt in range(3):
            try:
                return await anyio.to_thread.run_sync(self._tx_lease_only, fn, *args, limiter=self._d.limiter)
            except StoreError as exc:
                # Another process held SQLite's write lock past the busy
                # timeout: nothing was written, and moving a lease is safe to retry.
                if attempt == 2 or not _locked(exc):
                    raise
        raise AssertionError("unreachable")

    def _db_error(self, exc: sa.exc.DBAPIError) -> StoreError:
        error = StoreError(f"database error on {self.url}: {exc.orig}")
        error.__cause__ = exc
        return error

    def _as_store_error(self, exc: Exception) -> Exception:
        """A database error as a StoreError (whether SQLAlchemy wrapped it or the driver raised it)."""
        if isinstance(exc, sa.exc.DBAPIError):
            return self._db_error(exc)
        if isinstance(exc, self._driver_errors):
            error = StoreError(f"database error on {self.url}: {exc}")
            error.__cause__ = exc
            return error
        return exc

    def _tx(self, fn: Callable[..., _T], *args: Any) -> _T:
        return self._tx_in(self._d.begin, fn, *args)

    def _tx_lease_only(self, fn: Callable[..., _T], *args: Any) -> _T:
        return self._tx_in(self._d.begin_lease_only, fn, *args)

    def _tx_in(
        self, begin: Callable[[], AbstractContextManager[Connection]], fn: Callable[..., _T], *args: Any
    ) -> _T:
        try:
            with begin() as conn:
                result = fn(conn, *args)
                self._d.before_commit(conn)
                return result
        except sa.exc.DBAPIError as exc:
            raise self._db_error(exc) from exc
        except self._driver_errors as exc:  # raised on the driver's connection (BEGIN, direct statements)
            raise self._as_store_error(exc) from exc

    async def open(self) -> None:
        """Create the tables or upgrade them; refuse a database that is not ours or is newer."""
        try:
            await self._run(self._open)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sa.exc.DatabaseError) and not isinstance(cause, sa.exc.OperationalError):
                raise SchemaError(f"{self.url} is not a {self._d.title} database: {cause.orig}") from exc
            raise
        try:
            await anyio.to_thread.run_sync(self._d.after_open, limiter=self._d.limiter)
        except sa.exc.DBAPIError as exc:
            raise self._db_error(exc) from exc

    def _open(self, conn: Connection) -> None:
        self._d.schema_lock(conn)
        try:
            names = self._d.retold_tables(set(sa.inspect(conn).get_table_names()))
        except sa.exc.DatabaseError as exc:
            raise SchemaError(f"{self.url} is not a {self._d.title} database: {exc.orig}") from exc
        if names and t.meta.name not in names:
            raise SchemaError(
                f"{self.url} is not a retold database (it has tables "
                f"{', '.join(sorted(names)[:5])}); point retold at a new "
                f"{'file' if self._d.name == 'sqlite' else 'database or schema'}"
            )
        migrate(conn, self.url)

    async def close(self) -> None:
        """Close the database connections, once no transaction of this store is running.

        A connection still checked out when its pool is disposed would go
        back to the dead pool and be left open, so take every slot first
        (a caller cancelled meanwhile leaves its thread to finish).
        """
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            held: list[tuple[anyio.CapacityLimiter, object]] = []
            try:
                for limiter in {id(x): x for x in (self._d.limiter, self._d.read_limiter)}.values():
                    for _ in range(int(limiter.total_tokens)):
                        token = object()
                        await limiter.acquire_on_behalf_of(token)
                        held.append((limiter, token))
            finally:
                for limiter, token in held:
                    limiter.release_on_behalf_of(token)
        self._d.dispose()

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work(kind)`` when any process creates work, until cancelled.

        ``kind`` is ``"workflow"``, ``"activity"`` or ``"closed"``. On
        PostgreSQL this listens on a connection of its own; on SQLite it
        returns at once (engines poll).
        """
        await self._d.listen(on_work)

    async def transact(self, fn: Callable[[Tx], _T], *, outside: bool = False) -> _T:
        """Run ``fn`` in one durable transaction (see :meth:`Store.transact`).

        On SQLite it joins a group commit; ``outside`` (a start, a signal, a
        cancel) takes at most all but one of PostgreSQL's connections.
        """
        body: Callable[[Connection], _T] = lambda conn: fn(SqlTx(self, conn))  # noqa: E731
        if outside:
            return await self._run_outside(body)
        return await self._run(body)

    def _resolve(self, conn: Connection, run_or_workflow_id: str) -> Any:
        row = self._q.run_by_id(conn, {"b_run_id": run_or_workflow_id}).first()
        if row is None:
            current = self._q.current_run(conn, {"b_id": run_or_workflow_id}).scalar()
            if current is not None:
                row = self._q.run_by_id(conn, {"b_run_id": current}).first()
        if row is None:
            raise RunNotFoundError(run_or_workflow_id)
        return row

    async def claim_workflow_tasks(
        self, owner: str, workflows: Sequence[str], limit: int, lease: float, *, suspects: int | None = None,
        fingerprint: str | None = None,
    ) -> list[str]:
        """Lease up to ``limit`` runs of ``workflows`` with unprocessed events (see the protocol)."""
        if not workflows:
            return []
        return await self._run_lease_only(
            self._claim_workflow_tasks, owner, list(workflows), limit, lease, suspects, fingerprint
        )

    def _claim_workflow_tasks(
        self, conn: Connection, owner: str, workflows: list[str], limit: int, lease: float,
        suspects: int | None = None, fingerprint: str | None = None,
    ) -> list[str]:
        now, lease_now = self._now(conn), self._lease_now(conn)
        wt = t.workflow_tasks
        rows = conn.execute(self._q.claim_workflows, {
            "b_names": workflows, "b_now": now, "b_lease_now": lease_now, "b_limit": limit,
            # NOT LIKE '%' matches nothing: without a fingerprint, blocked tasks wait for their time.
            "b_fp": "%" if fingerprint is None else f"% {fingerprint} %",
        }).all()
        ids: list[str] = []
        dead: list[str] = []
        for run_id, previous_owner in rows:
            if previous_owner is not None and previous_owner != owner:
                # Its lease ran out: that worker died (or stalled). (Our own
                # lapsed lease is no death: we are here, claiming.)
                if suspects is not None and len(dead) >= suspects:
                    continue  # left for a later claim (locked until this one ends, on PostgreSQL)
                dead.append(run_id)
            ids.append(run_id)
        if ids:
            conn.execute(wt.update().where(wt.c.run_id.in_(ids)).values(
                lease_owner=owner, lease_expires=lease_now + lease))
        if dead:
            # Attempts are counted at claim time: one that killed its worker counts too.
            conn.execute(wt.update().where(wt.c.run_id.in_(dead)).values(attempts=wt.c.attempts + 1))
        return ids

    async def load(self, run_id: str, after_seq: int) -> tuple[RunRecord, list[ev.Event]]:
        """A run and its events after ``after_seq``."""
        return await self._read(self._load, run_id, after_seq)

    def _load(self, conn: Connection, run_id: str, after_seq: int) -> tuple[RunRecord, list[ev.Event]]:
        row = self._q.run_by_id(conn, {"b_run_id": run_id}).first()
        if row is None:
            raise RunNotFoundError(run_id)
        rows = self._q.events_after(conn, {"b_run_id": run_id, "b_after": after_seq}).all()
        task = self._q.wft_attempts(conn, {"b_run_id": run_id}).first()
        record = row_to_run(row)
        if task is not None:
            record = replace(record, task_attempts=task.attempts or 0, task_failure=_failure(record, task.failure))
        return record, [ev.decode_event(*r) for r in rows]

    async def claim_activity_tasks(
        self, owner: str, queue: str, activities: Sequence[str], limit: int, lease: float,
        running: Collection[int] = (),
    ) -> list[ActivityTask]:
        """Lease ready tasks of the activities this worker hosts.

        Tasks found past their schedule-to-close deadline time out instead.
        ``running``: ids of tasks this owner is still running; never claimed
        again by it, even if their leases lapsed.
        """
        if not activities:
            return []
        return await self._run_lease_only(
            self._claim_activities, owner, queue, list(activities), limit, lease, running)

    def _claim_activities(
        self, conn: Connection, owner: str, queue: str, activities: list[str], limit: int, lease: float,
        running: Collection[int],
    ) -> list[ActivityTask]:
        now, lease_now = self._now(conn), self._lease_now(conn)
        at = t.activity_tasks
        rows = conn.execute(self._q.claim_activities, {
            "b_queue": queue, "b_names": activities, "b_now": now, "b_lease_now": lease_now,
            # Read now, not when the call was made: the caller's set may have grown since.
            "b_owner": owner, "b_running": list(running), "b_limit": limit,
        }).all()
        claimed: list[ActivityTask] = []
        for row in rows:
            attempt = row.attempt
            if row.lease_owner is not None:
                # The previous owner's lease ran out mid-attempt (it died or
                # stalled): that attempt counts, and this is the next one.
                attempt += 1
                conn.execute(at.update().where(at.c.id == row.id).values(attempt=attempt))
            claimed.append(ActivityTask(
                id=row.id, run_id=row.run_id, workflow_id=row.workflow_id, seq=row.seq,
                activity=row.activity, queue=row.queue, input=row.input,
                options=orjson.loads(row.options), attempt=attempt,
                scheduled_at=row.scheduled_at,
            ))
        if claimed:
            conn.execute(at.update().where(at.c.id.in_([c.id for c in claimed])).values(
                lease_owner=owner, lease_expires=lease_now + lease))
        return claimed

    async def renew_leases(self, owner: str, task_ids: list[int], lease: float) -> set[int]:
        """Extend this owner's activity leases; return ids it no longer holds."""
        if not task_ids:
            return set()
        return await self._run_lease_only(self._renew, owner, task_ids, lease)

    def _renew(self, conn: Connection, owner: str, task_ids: list[int], lease: float) -> set[int]:
        held = set(conn.execute(self._q.renew_activities, {
            "b_ids": task_ids, "b_owner": owner, "b_expires": self._lease_now(conn) + lease,
        }).scalars())
        return set(task_ids) - held

    async def renew_workflow_leases(self, owner: str, run_ids: list[str], lease: float) -> None:
        """Extend this owner's leases on workflow tasks still being processed."""
        if not run_ids:
            return

        def renew(conn: Connection) -> None:
            wt = t.workflow_tasks
            conn.execute(wt.update().where(wt.c.run_id.in_(run_ids), wt.c.lease_owner == owner)
                         .values(lease_expires=self._lease_now(conn) + lease))

        await self._run_lease_only(renew)

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str
    ) -> list[tuple[str, int, str]]:
        """Record this engine; return the other engines on ``host``."""

        def register(conn: Connection) -> list[tuple[str, int, str]]:
            w = t.workers
            conn.execute(w.delete().where(w.c.worker_id == worker_id))
            conn.execute(w.insert().values(worker_id=worker_id, host=host, pid=pid,
                                           process_start=process_start, started_at=self._now(conn)))
            rows = conn.execute(sa.select(w.c.worker_id, w.c.pid, w.c.process_start)
                                .where(w.c.host == host, w.c.worker_id != worker_id)).all()
            return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

        return await self._run_lease_only(register)

    async def reap_worker(self, worker_id: str) -> int:
        """Forget a dead engine and end its leases now, as if they had run out."""

        def reap(conn: Connection) -> int:
            lease_now = self._lease_now(conn)
            conn.execute(t.workers.delete().where(t.workers.c.worker_id == worker_id))
            freed = 0
            for table, kind in ((t.workflow_tasks, WORKFLOW), (t.activity_tasks, ACTIVITY)):
                # Expired, not released: the next claim counts the dead attempt.
                count = conn.execute(table.update().where(table.c.lease_owner == worker_id)
                                     .values(lease_expires=lease_now - 1.0)).rowcount
                if count:
                    self._d.notify(conn, kind)
                freed += count
            return freed

        return await self._run_lease_only(reap)

    async def unregister_worker(self, worker_id: str) -> None:
        """Forget this engine."""

        def unregister(conn: Connection) -> None:
            conn.execute(t.workers.delete().where(t.workers.c.worker_id == worker_id))

        await self._run_lease_only(unregister)

    async def release_leases(self, owner: str) -> None:
        """Hand back every task this owner holds, so others need not wait for expiry."""

        def release(conn: Connection) -> None:
            for table, kind in ((t.workflow_tasks, WORKFLOW), (t.activity_tasks, ACTIVITY)):
                released = conn.execute(table.update().where(table.c.lease_owner == owner)
                                        .values(lease_owner=None, lease_expires=None)).rowcount
                if released:
                    self._d.notify(conn, kind)

        await self._run(release)

    async def next_wakeup(self) -> float | None:
        """The earliest time a timer, a task or a retry is due."""
        return await self._read(self._next_wakeup)

    def _next_wakeup(self, conn: Connection) -> float | None:
        # Lease ends are on the lease clock: move them onto the store's clock.
        shift = self._now(conn) - self._lease_now(conn)
        leases = [
            conn.execute(sa.select(sa.func.min(t.activity_tasks.c.lease_expires))).scalar(),
            conn.execute(sa.select(sa.func.min(t.workflow_tasks.c.lease_expires))).scalar(),
        ]
        times = [*(x + shift for x in leases if x is not None),
            conn.execute(sa.select(sa.func.min(t.timers.c.fire_at))).scalar(),
            conn.execute(sa.select(sa.func.min(t.activity_tasks.c.deadline)).where(
                t.activity_tasks.c.lease_owner.is_(None))).scalar(),
            conn.execute(sa.select(sa.func.min(t.activity_tasks.c.visible_at)).where(
                t.activity_tasks.c.lease_owner.is_(None))).scalar(),
            conn.execute(sa.select(sa.func.min(t.workflow_tasks.c.visible_at)).where(
                t.workflow_tasks.c.lease_owner.is_(None))).scalar(),
        ]
        real = [x for x in times if x is not None]
        return min(real) if real else None

    async def quiescence(self) -> tuple[bool, float | None]:
        """(busy, next_due): see :meth:`Store.quiescence`."""
        return await self._read(self._quiescence)

    def _quiescence(self, conn: Connection) -> tuple[bool, float | None]:
        now = self._now(conn)
        wt, at, tm = t.workflow_tasks, t.activity_tasks, t.timers
        busy = conn.execute(sa.select(sa.or_(
            sa.exists().where(wt.c.lease_owner.is_not(None)),
            sa.exists().where(wt.c.visible_at <= now),
            sa.exists().where(at.c.lease_owner.is_not(None)),
            sa.exists().where(at.c.visible_at <= now),
            sa.exists().where(tm.c.fire_at <= now),
        ))).scalar()
        if busy:
            return True, None
        times = [
            conn.execute(sa.select(sa.func.min(tm.c.fire_at))).scalar(),
            conn.execute(sa.select(sa.func.min(wt.c.visible_at))).scalar(),
            conn.execute(sa.select(sa.func.min(at.c.visible_at))).scalar(),
            conn.execute(sa.select(sa.func.min(at.c.deadline))).scalar(),
        ]
        real = [x for x in times if x is not None]
        return False, (min(real) if real else None)

    async def closed_among(self, run_ids: Sequence[str]) -> set[str]:
        """The ids among ``run_ids`` whose runs are no longer running."""

        def query(conn: Connection) -> set[str]:
            closed: set[str] = set()
            ids = list(run_ids)
            for i in range(0, len(ids), 500):
                closed.update(conn.execute(
                    sa.select(t.runs.c.run_id)
                    .where(t.runs.c.run_id.in_(ids[i:i + 500]), t.runs.c.status != "running")
                ).scalars())
            return closed

        return await self._read(query)

    async def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run by run id, or the latest run of a workflow id (with ``task_failure``)."""

        def query(conn: Connection) -> RunRecord:
            record = row_to_run(self._resolve(conn, run_or_workflow_id))
            if record.status != "running":
                return record
            task = self._q.wft_attempts(conn, {"b_run_id": record.run_id}).first()
            return record if task is None else replace(record, task_failure=_failure(record, task.failure))

        return await self._read(query)

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered."""

        def query(conn: Connection) -> list[RunRecord]:
            wt = t.workflow_tasks
            stmt = (sa.select(t.runs, wt.c.failure.label("task_failure"))
                    .select_from(t.runs.outerjoin(wt, wt.c.run_id == t.runs.c.run_id))
                    .order_by(t.runs.c.created_at.desc(), t.runs.c.run_id))
            if status == "blocked":  # open, its workflow task's last attempt failed
                stmt = stmt.where(t.runs.c.status == "running", wt.c.failure.is_not(None))
            elif status == "running":
                stmt = stmt.where(t.runs.c.status == "running", wt.c.failure.is_(None))
            elif status is not None:
                stmt = stmt.where(t.runs.c.status == status)
            if workflow is not None:
                stmt = stmt.where(t.runs.c.workflow == workflow)
            records = []
            for r in conn.execute(stmt.limit(limit).offset(offset)):
                record = row_to_run(r)
                failure = _failure(record, r.task_failure)
                records.append(record if failure is None else replace(record, task_failure=failure))
            return records

        return await self._read(query)
