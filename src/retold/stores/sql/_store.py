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
import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, TypeVar

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import (
    ConflictError,
    IdempotencyError,
    LeaseLostError,
    RunFinishedError,
    RunNotFoundError,
    SchemaError,
    SignalBufferFullError,
    StoreError,
)
from ...history import events as ev
from .._protocol import (
    ActivityOutcome,
    ActivityStep,
    ActivityTake,
    ActivityTask,
    RunRecord,
    StartRequest,
    StartStep,
)
from .._purge import PurgeReport
from . import _retention
from . import _schema as t
from ._dialect import Insert, dialect_for
from ._fast import Statement
from ._migrations import migrate
from ._sqlite import boot_clock

__all__ = ["SqlStore"]

_T = TypeVar("_T")

_STATUS_OF: dict[type[ev.Event], str] = {
    ev.WorkflowCompleted: "completed",
    ev.WorkflowFailed: "failed",
    ev.WorkflowCancelled: "cancelled",
    ev.WorkflowContinuedAsNew: "continued",
}

# What NOTIFY tells other engines (see Store.listen).
WORKFLOW, ACTIVITY, CLOSED = "workflow", "activity", "closed"

_B = sa.bindparam

# A lease that ends further than this in the future was taken on another
# boot of the machine (SQLite's lease clock counts from boot): it is over.
LEASE_HORIZON = 86_400.0


def _locked(exc: StoreError) -> bool:
    """Whether a store error is SQLite's "database is locked" (or busy)."""
    text = str(exc.__cause__ or exc).lower()
    return "database is locked" in text or "database is busy" in text


def _lease_free(table: sa.Table) -> Any:
    """The task's lease is free: nobody holds it, it ran out by the lease clock, or it is from another boot."""
    return sa.or_(
        table.c.lease_owner.is_(None),
        table.c.lease_expires < _B("b_lease_now"),
        table.c.lease_expires > _B("b_lease_now") + LEASE_HORIZON,
    )

# What _commit returns when it recorded the run's inbox instead of a closing step.
_STEP_REFUSED = -1


class _Q:
    """Statements of the hot paths, built once per store: SQLAlchemy then only binds values."""

    def __init__(self, insert: Insert, direct: sa.Dialect | None) -> None:
        """``direct``: the dialect to compile for and run on the driver (SQLite), else None."""
        wt, at = t.workflow_tasks, t.activity_tasks

        def fast(stmt: Any) -> Statement:
            return Statement(stmt, direct)

        self.wft_attempts = fast(sa.select(wt.c.attempts).where(wt.c.run_id == _B("b_run_id")))
        self.run_by_id = fast(sa.select(t.runs).where(t.runs.c.run_id == _B("b_run_id")))
        self.current_run = fast(sa.select(t.workflows.c.current_run_id).where(t.workflows.c.workflow_id == _B("b_id")))
        self.insert_events = fast(t.events.insert())
        self.insert_run = fast(t.runs.insert())
        self.wake = fast(insert(wt).on_conflict_do_nothing(index_elements=["run_id"]))
        self.bump_seq = fast(
            t.runs.update()
            .where(t.runs.c.run_id == _B("b_run_id"), t.runs.c.status == "running")
            .values(last_seq=t.runs.c.last_seq + 1)
            .returning(t.runs.c.last_seq)
        )
        self.move_seq = fast(
            t.runs.update()
            .where(t.runs.c.run_id == _B("b_run_id"), t.runs.c.last_seq == _B("b_expected"),
                   t.runs.c.status == "running")
            .values(last_seq=_B("b_last"))
            .returning(t.runs.c.workflow_id)
        )
        self.wft_owner = fast(sa.select(wt.c.lease_owner).where(wt.c.run_id == _B("b_run_id")).with_for_update())
        # Where an input goes: straight into the history, or (the run's
        # workflow task being processed) into the inbox.
        self.run_state = fast(
            sa.select(t.runs.c.status, wt.c.lease_owner, wt.c.lease_expires)
            .select_from(t.runs.outerjoin(wt, wt.c.run_id == t.runs.c.run_id))
            .where(t.runs.c.run_id == _B("b_run_id"))
        )
        ib = t.inbox
        self.insert_inbox = fast(ib.insert())
        self.inbox_of = fast(
            sa.select(ib.c.id, ib.c.type, ib.c.meta, ib.c.payload)
            .where(ib.c.run_id == _B("b_run_id")).order_by(ib.c.id)
        )
        self.inbox_any = fast(sa.select(ib.c.id).where(ib.c.run_id == _B("b_run_id")).limit(1))
        self.delete_inbox = fast(ib.delete().where(ib.c.run_id == _B("b_run_id"), ib.c.id <= _B("b_max")))
        self.set_seq = fast(t.runs.update().where(t.runs.c.run_id == _B("b_run_id")).values(last_seq=_B("b_last")))
        self.count_signal = fast(
            wt.update().where(wt.c.run_id == _B("b_run_id")).values(signals=wt.c.signals + 1)
            .returning(wt.c.signals)
        )
        # A step committed and the task stays ours (its inbox followed): its
        # earlier attempts were not fatal, so they no longer count.
        self.set_signals = fast(wt.update().where(wt.c.run_id == _B("b_run_id")).values(
            signals=_B("b_signals"), attempts=0))
        self.events_after = fast(
            sa.select(t.events.c.seq, t.events.c.at, t.events.c.type, t.events.c.meta, t.events.c.payload)
            .where(t.events.c.run_id == _B("b_run_id"), t.events.c.seq > _B("b_after"))
            .order_by(t.events.c.seq)
        )
        self.insert_activity = fast(at.insert())
        self.insert_timer = fast(t.timers.insert())
        self.delete_timer = fast(t.timers.delete().where(
            t.timers.c.run_id == _B("b_run_id"), t.timers.c.seq == _B("b_seq")))
        self.delete_wft = fast(wt.delete().where(wt.c.run_id == _B("b_run_id")))
        self.task_by_id = fast(sa.select(at).where(at.c.id == _B("b_id")).with_for_update())
        self.delete_task = fast(at.delete().where(at.c.id == _B("b_id")))
        self.delete_overdue = fast(at.delete().where(
            at.c.id == _B("b_id"), at.c.deadline <= _B("b_now"), _lease_free(at)))
        self.workflow_by_id = fast(sa.select(t.workflows).where(t.workflows.c.workflow_id == _B("b_id")))
        self.workflow_by_key = fast(sa.select(t.workflows).where(t.workflows.c.idempotency_key == _B("b_key")))
        self.last_seq = fast(sa.select(t.runs.c.last_seq).where(t.runs.c.run_id == _B("b_run_id")))
        self.close_run = fast(t.runs.update().where(t.runs.c.run_id == _B("b_run_id")).values(
            status=_B("b_status"), closed_at=_B("b_closed_at"), result=_B("b_result"),
            failure=_B("b_failure"), next_run_id=_B("b_next_run_id")))
        self.delete_run_tasks = fast(at.delete().where(at.c.run_id == _B("b_run_id")))
        self.delete_run_timers = fast(t.timers.delete().where(t.timers.c.run_id == _B("b_run_id")))
        self.open_children = fast(sa.select(t.runs.c.run_id).where(
            t.runs.c.parent_run_id == _B("b_run_id"), t.runs.c.status == "running"))
        self.retry_task = fast(at.update().where(at.c.id == _B("b_id")).values(
            attempt=_B("b_attempt"), visible_at=_B("b_visible_at"), lease_owner=None, lease_expires=None,
            last_failure=_B("b_failure")))
        # RETURNING says whether the row went in (psycopg reports no rowcount for it).
        self.insert_workflow = fast(insert(t.workflows).on_conflict_do_nothing().returning(t.workflows.c.workflow_id))
        self.claim_workflows = (
            sa.select(wt.c.run_id, wt.c.lease_owner)
            .join(t.runs, t.runs.c.run_id == wt.c.run_id)
            .where(t.runs.c.workflow.in_(_B("b_names", expanding=True)))
            .where(wt.c.visible_at <= _B("b_now"))
            .where(_lease_free(wt))
            .order_by(wt.c.visible_at)
            .limit(_B("b_limit"))
            .with_for_update(skip_locked=True, of=wt)  # only the task rows, never the runs
        )
        self.claim_activities = (
            sa.select(at)
            .where(at.c.queue == _B("b_queue"), at.c.activity.in_(_B("b_names", expanding=True)),
                   at.c.visible_at <= _B("b_now"))
            .where(_lease_free(at))
            # Never a second attempt of a task the claimer is still running
            # (its lease lapsed while its event loop stalled, say).
            .where(sa.or_(at.c.lease_owner.is_(None), at.c.lease_owner != _B("b_owner"),
                          at.c.id.not_in(_B("b_running", expanding=True))))
            # Past its schedule-to-close deadline: the timer loop times it out.
            .where(sa.or_(at.c.deadline.is_(None), at.c.deadline > _B("b_now")))
            .order_by(at.c.visible_at, at.c.id)
            .limit(_B("b_limit"))
            .with_for_update(skip_locked=True)
        )
        self.renew_activities = (
            at.update()
            .where(at.c.id.in_(_B("b_ids", expanding=True)), at.c.lease_owner == _B("b_owner"))
            .values(lease_expires=_B("b_expires"))
            .returning(at.c.id)
        )


def _row_to_run(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        workflow_id=row.workflow_id,
        workflow=row.workflow,
        status=row.status,
        created_at=row.created_at,
        closed_at=row.closed_at,
        last_seq=row.last_seq,
        result=row.result,
        failure=orjson.loads(row.failure) if row.failure else None,
        parent_run_id=row.parent_run_id,
        next_run_id=row.next_run_id,
    )


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
        self._max_pending_signals = max_pending_signals
        self._d = dialect_for(url, pool_size=pool_size, busy_timeout=busy_timeout)
        dbapi = self._d.engine.dialect.dbapi
        self._driver_errors: tuple[type[Exception], ...] = (dbapi.Error,) if dbapi is not None else ()
        self.url = self._d.url
        self._engine = self._d.engine
        self._q = _Q(self._d.insert, self._engine.dialect if self._d.name == "sqlite" else None)
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

    # -- helpers used inside transactions -----------------------------------------

    def _resolve(self, conn: Connection, run_or_workflow_id: str) -> Any:
        row = self._q.run_by_id(conn, {"b_run_id": run_or_workflow_id}).first()
        if row is None:
            current = self._q.current_run(conn, {"b_id": run_or_workflow_id}).scalar()
            if current is not None:
                row = self._q.run_by_id(conn, {"b_run_id": current}).first()
        if row is None:
            raise RunNotFoundError(run_or_workflow_id)
        return row

    def _append(
        self, conn: Connection, run_id: str, first_seq: int, items: Sequence[ev.Event], now: float,
        *, keep_first_at: bool = False,
    ) -> None:
        """Insert events numbered from ``first_seq``, at ``now`` (the first at its own
        time with ``keep_first_at``: an input the run has already seen)."""
        rows = []
        for i, event in enumerate(items):
            type_name, meta, payload = ev.encode_event(event)
            rows.append({
                "run_id": run_id, "seq": first_seq + i, "type": type_name,
                "at": event.at if keep_first_at and i == 0 else now, "meta": meta, "payload": payload,
            })
        if rows:
            self._q.insert_events.many(conn, rows)

    def _wake(self, conn: Connection, run_id: str, now: float) -> None:
        # One pending workflow task per run: an existing one (leased or not)
        # will see the new events, or fail its commit on the moved last_seq.
        self._q.wake(conn, {
            "run_id": run_id, "visible_at": now, "lease_owner": None, "lease_expires": None,
            "attempts": 0, "signals": 0,
        })
        self._d.notify(conn, WORKFLOW)

    def _append_input(self, conn: Connection, run_id: str, event: ev.Event, now: float) -> bool:
        """Give an open run one input event and wake it; False if the run is closed.

        While the run's workflow task is leased (a step is being computed),
        the input goes to the inbox: the step's commit appends it after the
        step's commands, so inputs arriving at any rate never invalidate the
        step in flight. Otherwise (or if that lease ran out and the inbox is
        empty) it is appended to the history at once.
        """
        self._d.lock_run(conn, run_id)  # a commit of this run decides first (PostgreSQL)
        state = self._q.run_state(conn, {"b_run_id": run_id}).first()
        if state is None or state.status != "running":
            return False
        signal = type(event) is ev.SignalReceived
        leased = state.lease_owner is not None
        if leased:
            lease_now = self._lease_now(conn)
            if not lease_now <= state.lease_expires <= lease_now + LEASE_HORIZON:
                # The holder's lease ran out (it died, or stalled): record at
                # once, unless inputs already wait in the inbox (order first).
                leased = self._q.inbox_any(conn, {"b_run_id": run_id}).first() is not None
        if leased:
            type_name, meta, payload = ev.encode_event(event)
            self._q.insert_inbox(conn, {"run_id": run_id, "type": type_name, "meta": meta, "payload": payload})
        else:
            seq = self._q.bump_seq(conn, {"b_run_id": run_id}).scalar()
            if seq is None:
                return False
            self._append(conn, run_id, seq, [event], now)
            self._wake(conn, run_id, now)
        if signal:
            unseen = self._q.count_signal(conn, {"b_run_id": run_id}).scalar()
            if unseen is not None and unseen > self._max_pending_signals:
                raise SignalBufferFullError(run_id, self._max_pending_signals)
        return True

    def _flush_inbox(self, conn: Connection, run_id: str, after_seq: int, now: float) -> tuple[int, int]:
        """Append the run's inbox to its history after ``after_seq``; (inputs, signals) moved.

        The run's row is locked (or the caller is SQLite's one writer).
        """
        rows = self._q.inbox_of(conn, {"b_run_id": run_id}).all()
        if not rows:
            return 0, 0
        self._q.insert_events.many(conn, [
            {"run_id": run_id, "seq": after_seq + 1 + i, "type": row.type, "at": now,
             "meta": row.meta, "payload": row.payload}
            for i, row in enumerate(rows)
        ])
        self._q.set_seq(conn, {"b_run_id": run_id, "b_last": after_seq + len(rows)})
        self._q.delete_inbox(conn, {"b_run_id": run_id, "b_max": rows[-1].id})
        return len(rows), sum(1 for row in rows if row.type == "SignalReceived")

    def _create_run(
        self, conn: Connection, *, run_id: str, workflow: str, workflow_id: str, payload: bytes,
        now: float, parent_run_id: str | None = None, parent_seq: int | None = None,
        continued_from: str | None = None, first_step: StartStep | None = None,
    ) -> None:
        self._q.insert_run(conn, {
            "run_id": run_id, "workflow_id": workflow_id, "workflow": workflow, "status": "running",
            "created_at": now, "closed_at": None,
            "last_seq": 1 if first_step is None else first_step.last_seq, "result": None, "failure": None,
            "parent_run_id": parent_run_id, "parent_seq": parent_seq, "next_run_id": None,
        })
        if first_step is not None:
            # The engine ran the first workflow task already: store its
            # commands and their effects, and leave no workflow task.
            self._append(conn, run_id, 1, [first_step.event, *first_step.commands], now, keep_first_at=True)
            self._effects(conn, run_id, workflow_id, first_step.commands, first_step.take, now)
            first_step.stepped = True
            return
        started = ev.WorkflowStarted(
            seq=1, at=now, workflow=workflow, workflow_id=workflow_id, input=payload,
            parent_run_id=parent_run_id, parent_seq=parent_seq, continued_from=continued_from,
        )
        self._append(conn, run_id, 1, [started], now)
        self._wake(conn, run_id, now)

    # -- starting ------------------------------------------------------------------

    async def start(self, request: StartRequest, step: StartStep | None = None) -> tuple[RunRecord, bool]:
        """Create a run, or return the run already started with this id or key.

        With ``step``, a new run gets ``step.run_id`` and its first step at
        once (see :class:`~retold.stores.StartStep`).
        """
        if step is not None:
            started = step.event
            if not (
                isinstance(started, ev.WorkflowStarted) and started.seq == 1
                and (started.workflow, started.workflow_id, started.input)
                == (request.workflow, request.workflow_id, request.input)
                and all(cmd.seq == 2 + i for i, cmd in enumerate(step.commands))
            ):
                raise StoreError(f"the first step of workflow id {request.workflow_id!r} does not fit its start")
        return await self._run_outside(self._start, request, step)

    def _start(
        self, conn: Connection, req: StartRequest, step: StartStep | None = None
    ) -> tuple[RunRecord, bool]:
        # Twice at most: a concurrent start of the same id or key (possible
        # on PostgreSQL) makes the insert do nothing; then it is "existing".
        for _ in range(2):
            existing = None
            if req.idempotency_key is not None:
                existing = self._q.workflow_by_key(conn, {"b_key": req.idempotency_key}).first()
            if existing is None:
                existing = self._q.workflow_by_id(conn, {"b_id": req.workflow_id}).first()
            found = self._existing(conn, req, existing) if existing is not None else None
            if found is not None:
                return found, False
            if existing is not None:
                continue  # its runs were purged since (PostgreSQL): the id is free again
            now = self._now(conn)
            run_id = step.run_id if step is not None else str(uuid.uuid4())
            inserted = self._q.insert_workflow(conn, {
                "workflow_id": req.workflow_id, "workflow": req.workflow, "input_hash": req.input_hash,
                "idempotency_key": req.idempotency_key, "first_run_id": run_id, "current_run_id": run_id,
                "created_at": now,
            }).first()
            if inserted is None:
                continue
            self._create_run(conn, run_id=run_id, workflow=req.workflow,
                             workflow_id=req.workflow_id, payload=req.input, now=now, first_step=step)
            if step is not None and any(isinstance(cmd, ev.TERMINAL_TYPES) for cmd in step.commands):
                return _row_to_run(self._q.run_by_id(conn, {"b_run_id": run_id}).first()), True
            record = RunRecord(
                run_id=run_id, workflow_id=req.workflow_id, workflow=req.workflow, status="running",
                created_at=now, closed_at=None, last_seq=1 if step is None else step.last_seq,
                result=None, failure=None, parent_run_id=None, next_run_id=None,
            )
            return record, True
        raise StoreError(f"could not start workflow id {req.workflow_id!r}: its row keeps changing")

    def _existing(self, conn: Connection, req: StartRequest, existing: Any) -> RunRecord | None:
        what = (f"idempotency key {req.idempotency_key!r}"
                if existing.idempotency_key is not None and existing.idempotency_key == req.idempotency_key
                else f"workflow id {existing.workflow_id!r}")
        if existing.workflow != req.workflow:
            raise IdempotencyError(
                f"{what} is already used by a run of workflow {existing.workflow!r}, "
                f"not {req.workflow!r}"
            )
        if existing.input_hash != req.input_hash:
            raise IdempotencyError(f"{what} was already started with different input")
        row = self._q.run_by_id(conn, {"b_run_id": existing.first_run_id}).first()
        return None if row is None else _row_to_run(row)

    # -- workflow tasks --------------------------------------------------------------

    async def claim_workflow_tasks(
        self, owner: str, workflows: Sequence[str], limit: int, lease: float, *, suspects: int | None = None
    ) -> list[str]:
        """Lease up to ``limit`` runs of ``workflows`` with unprocessed events (see the protocol)."""
        if not workflows:
            return []
        return await self._run_lease_only(
            self._claim_workflow_tasks, owner, list(workflows), limit, lease, suspects
        )

    def _claim_workflow_tasks(
        self, conn: Connection, owner: str, workflows: list[str], limit: int, lease: float,
        suspects: int | None = None,
    ) -> list[str]:
        now, lease_now = self._now(conn), self._lease_now(conn)
        wt = t.workflow_tasks
        rows = conn.execute(self._q.claim_workflows, {
            "b_names": workflows, "b_now": now, "b_lease_now": lease_now, "b_limit": limit,
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
        attempts = self._q.wft_attempts(conn, {"b_run_id": run_id}).scalar()
        return replace(_row_to_run(row), task_attempts=attempts or 0), [ev.decode_event(*r) for r in rows]

    async def commit_workflow_task(
        self, run_id: str, owner: str, expected_seq: int, commands: Sequence[ev.Event],
        take: ActivityTake | None = None,
    ) -> int:
        """Append commands and their effects in one transaction (``take``: see ActivityTake)."""
        last = await self._run(self._commit, run_id, owner, expected_seq, commands, take)
        if last == _STEP_REFUSED:
            raise ConflictError(run_id, expected_seq)
        return last

    def _commit(
        self, conn: Connection, run_id: str, owner: str, expected: int, commands: Sequence[ev.Event],
        take: ActivityTake | None = None,
    ) -> int:
        now = self._now(conn)
        last = expected + len(commands)
        # The conditional update locks the run's row: a concurrent commit,
        # signal or activity outcome for this run waits, then finds last_seq moved.
        workflow_id = self._q.move_seq(conn, {"b_run_id": run_id, "b_expected": expected, "b_last": last}
        ).scalar()
        # The lease fence: the task row, locked, must still be this owner's
        # (a worker that stalled past its lease must not commit over the new owner).
        holder = self._q.wft_owner(conn, {"b_run_id": run_id}).scalar()
        if holder != owner:
            raise LeaseLostError(run_id, owner, holder)
        if workflow_id is None:
            raise ConflictError(run_id, expected)
        for i, cmd in enumerate(commands):
            if cmd.seq != expected + 1 + i:
                raise StoreError(f"command {cmd.type} numbered {cmd.seq}, expected {expected + 1 + i}")
        if any(isinstance(cmd, ev.TERMINAL_TYPES) for cmd in commands) and self._q.inbox_any(
            conn, {"b_run_id": run_id}
        ).first() is not None:
            # The run would close without seeing inputs that reached it during
            # this step: record them instead, and let the run decide again.
            self._flush_inbox(conn, run_id, expected, now)
            return _STEP_REFUSED
        self._append(conn, run_id, expected + 1, commands, now)
        self._effects(conn, run_id, workflow_id, commands, take, now)
        moved, signals = self._flush_inbox(conn, run_id, last, now)
        if moved:
            # Inputs arrived during the step (or the step gave the run one, a
            # child refused at once): they follow its commands, and the task
            # stays leased to this owner, who goes on with the next step.
            self._q.set_signals(conn, {"b_run_id": run_id, "b_signals": signals})
            return last + moved
        self._q.delete_wft(conn, {"b_run_id": run_id})
        return last

    def _effects(
        self, conn: Connection, run_id: str, workflow_id: str, commands: Sequence[ev.Event],
        take: ActivityTake | None, now: float,
    ) -> bool:
        """Carry out the commands' effects; True if the run was given an input."""
        appended_inputs = False
        taken: list[ActivityTask] = []
        for cmd in commands:
            match cmd:
                case ev.ActivityScheduled():
                    stc = cmd.options.get("schedule_to_close")
                    queue = cmd.options.get("task_queue", "default")
                    mine = (
                        take is not None and take.slots.get(queue, 0) > 0 and cmd.activity in take.activities
                    )
                    task_id = self._q.insert_activity.insert(conn, {
                        "run_id": run_id, "workflow_id": workflow_id, "seq": cmd.seq,
                        "activity": cmd.activity, "queue": queue,
                        "input": cmd.input, "options": orjson.dumps(cmd.options), "attempt": 1,
                        "scheduled_at": now, "deadline": None if stc is None else now + stc, "visible_at": now,
                        "lease_owner": take.owner if mine and take else None,
                        "lease_expires": self._lease_now(conn) + take.lease if mine and take else None,
                        "last_failure": None,
                    })
                    if mine and take is not None:
                        take.slots[queue] -= 1
                        taken.append(ActivityTask(
                            id=task_id, run_id=run_id, workflow_id=workflow_id,
                            seq=cmd.seq, activity=cmd.activity, queue=queue, input=cmd.input,
                            options=dict(cmd.options), attempt=1, scheduled_at=now,
                        ))
                    else:
                        self._d.notify(conn, ACTIVITY)
                case ev.TimerStarted():
                    self._q.insert_timer(conn, {"run_id": run_id, "seq": cmd.seq, "fire_at": now + cmd.duration})
                case ev.TimerCancelled():
                    self._q.delete_timer(conn, {"b_run_id": run_id, "b_seq": cmd.started})
                case ev.ChildWorkflowStarted():
                    appended_inputs |= self._start_child(conn, run_id, cmd, now)
                case ev.ActivityCancelRequested():
                    # Withdrawn: never claimed again; a running attempt's worker finds
                    # its task gone (lease renewal) and stops it, its outcome refused.
                    at = t.activity_tasks
                    conn.execute(at.delete().where(at.c.run_id == run_id).where(at.c.seq == cmd.scheduled))
                case ev.ChildWorkflowCancelRequested():
                    self._append_input(conn, cmd.run_id, ev.CancelRequested(
                        seq=0, at=now, reason=f"cancelled by its parent run {run_id}"), now)
                case _ if isinstance(cmd, ev.TERMINAL_TYPES):
                    self._close(conn, run_id, cmd, now)
        if take is not None:
            take.taken = taken  # only once the commit's statements all ran
        return appended_inputs

    def _start_child(self, conn: Connection, run_id: str, cmd: ev.ChildWorkflowStarted, now: float) -> bool:
        """Create the child run; True if the parent got an outcome event instead."""
        inserted = self._q.insert_workflow(conn, {
            "workflow_id": cmd.workflow_id, "workflow": cmd.workflow, "input_hash": "",
            "idempotency_key": None, "first_run_id": cmd.run_id, "current_run_id": cmd.run_id,
            "created_at": now,
        }).first()
        if inserted is None:
            failure = {"type": "retold.IdempotencyError", "non_retryable": True, "details": "",
                       "message": f"workflow id {cmd.workflow_id!r} is already in use"}
            self._append_input(conn, run_id, ev.ChildWorkflowFailed(
                seq=0, at=now, started=cmd.seq, failure=failure), now)
            return True
        self._create_run(conn, run_id=cmd.run_id, workflow=cmd.workflow,
                         workflow_id=cmd.workflow_id, payload=cmd.input, now=now,
                         parent_run_id=run_id, parent_seq=cmd.seq)
        return False

    def _close(self, conn: Connection, run_id: str, cmd: ev.Event, now: float) -> None:
        status = _STATUS_OF[type(cmd)]
        values: dict[str, Any] = {
            "b_run_id": run_id, "b_status": status, "b_closed_at": now,
            "b_result": None, "b_failure": None, "b_next_run_id": None,
        }
        if isinstance(cmd, ev.WorkflowCompleted):
            values["b_result"] = cmd.result
        elif isinstance(cmd, ev.WorkflowFailed):
            values["b_failure"] = orjson.dumps(cmd.failure)
        elif isinstance(cmd, ev.WorkflowCancelled):
            values["b_failure"] = orjson.dumps(
                {"type": "CancelledError", "message": "the run was cancelled",
                 "details": "", "non_retryable": True})
        run = self._resolve(conn, run_id)
        if isinstance(cmd, ev.WorkflowContinuedAsNew):
            values["b_next_run_id"] = cmd.new_run_id
            self._create_run(conn, run_id=cmd.new_run_id, workflow=run.workflow,
                             workflow_id=run.workflow_id, payload=cmd.input, now=now,
                             parent_run_id=run.parent_run_id, parent_seq=run.parent_seq,
                             continued_from=run_id)
            conn.execute(t.workflows.update().where(
                t.workflows.c.workflow_id == run.workflow_id).values(current_run_id=cmd.new_run_id))
        self._q.close_run(conn, values)
        self._d.notify(conn, CLOSED)
        self._q.delete_run_tasks(conn, {"b_run_id": run_id})
        self._q.delete_run_timers(conn, {"b_run_id": run_id})
        if status != "continued":
            # Children do not outlive their parent: ask the running ones to cancel.
            children = [row[0] for row in self._q.open_children(conn, {"b_run_id": run_id}).all()]
            for child in children:
                self._append_input(conn, child, ev.CancelRequested(
                    seq=0, at=now, reason=f"parent run {run_id} {status}"), now)
        if run.parent_run_id is not None and status != "continued":
            outcome: ev.Event
            if isinstance(cmd, ev.WorkflowCompleted):
                outcome = ev.ChildWorkflowCompleted(
                    seq=0, at=now, started=run.parent_seq, result=cmd.result)
            else:
                failure = orjson.loads(values["b_failure"])
                outcome = ev.ChildWorkflowFailed(
                    seq=0, at=now, started=run.parent_seq, failure=failure,
                    cancelled=status == "cancelled")
            self._append_input(conn, run.parent_run_id, outcome, now)

    async def fail_workflow_task(
        self, run_id: str, owner: str, failure: dict[str, Any], delay: float, max_attempts: int,
        *, final: bool = False,
    ) -> bool:
        """Back off a failed workflow task; True if the run was failed for good."""
        return await self._run(self._fail_wft, run_id, owner, failure, delay, max_attempts, final)

    def _fail_wft(
        self, conn: Connection, run_id: str, owner: str, failure: dict[str, Any],
        delay: float, max_attempts: int, final: bool = False,
    ) -> bool:
        now = self._now(conn)
        wt = t.workflow_tasks
        self._d.lock_run(conn, run_id)
        row = conn.execute(sa.select(wt).where(wt.c.run_id == run_id).with_for_update()).first()
        if row is None or row.lease_owner != owner:
            return False
        attempts = row.attempts + 1
        run = conn.execute(sa.select(t.runs.c.last_seq, t.runs.c.status).where(
            t.runs.c.run_id == run_id)).first()
        if run is None or run.status != "running":
            return False
        # No step is in flight any more: what waited in the inbox joins the history.
        moved, _ = self._flush_inbox(conn, run_id, run.last_seq, now)
        if attempts < max_attempts and not final:
            backoff = min(delay * 2 ** (attempts - 1), 60.0)
            conn.execute(wt.update().where(wt.c.run_id == run_id).values(
                attempts=attempts, visible_at=now + backoff, lease_owner=None, lease_expires=None))
            return False
        if not final:
            failure = {**failure, "message": f"workflow task failed {attempts} times: {failure['message']}"}
        failure = {**failure, "workflow_task": True}
        seq = run.last_seq + moved + 1
        conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(last_seq=seq))
        cmd = ev.WorkflowFailed(seq=seq, at=now, failure=failure)
        self._append(conn, run_id, seq, [cmd], now)
        self._close(conn, run_id, cmd, now)
        conn.execute(wt.delete().where(wt.c.run_id == run_id))
        return True

    # -- activity tasks ----------------------------------------------------------------

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

    async def finish_activity(
        self, task: ActivityTask, owner: str, outcome: ActivityOutcome, step: ActivityStep | None = None
    ) -> bool:
        """Record an attempt's outcome; False if this owner no longer holds that attempt.

        The outcome is fenced on the attempt's identity (task id, run, event
        number and attempt) as well as on the lease: an attempt whose task is
        gone, was claimed again or belongs to another run records nothing.
        With ``step``, also commit the run's next step if the run has not
        moved (see :class:`~retold.stores.ActivityStep`).
        """
        return await self._run(self._finish_activity, task, owner, outcome, step)

    def _finish_activity(
        self, conn: Connection, task: ActivityTask, owner: str, out: ActivityOutcome, step: ActivityStep | None
    ) -> bool:
        now = self._now(conn)
        task_id = task.id
        # Lock the run before the task, in the order commits take them (PostgreSQL).
        self._d.lock_run(conn, task.run_id)
        # Locked: a claim by the next owner in flight decides first.
        row = self._q.task_by_id(conn, {"b_id": task_id}).first()
        if (
            row is None or row.lease_owner != owner or row.run_id != task.run_id
            or row.seq != task.seq or row.attempt != task.attempt
        ):
            return False
        if out.kind == "failed" and out.retry_delay is not None:
            if row.deadline is None or now + out.retry_delay < row.deadline:
                self._q.retry_task(conn, {
                    "b_id": task_id, "b_attempt": row.attempt + 1, "b_visible_at": now + out.retry_delay,
                    "b_failure": orjson.dumps(out.failure)})
                return True
            # The attempt's failure is the timeout's cause.
            out = ActivityOutcome("timed_out", failure=out.failure, timeout_kind="schedule_to_close")
            step = None  # the step was computed for another outcome
        self._q.delete_task(conn, {"b_id": task_id})
        if step is not None and step.run_id == row.run_id and self._step(conn, row, step, now):
            return True
        event = out.event(seq=0, at=now, scheduled=row.seq, attempt=row.attempt)
        self._append_input(conn, row.run_id, event, now)
        return True

    def _step(self, conn: Connection, task: Any, step: ActivityStep, now: float) -> bool:
        """Append the outcome and the run's next step; False (nothing written) if the run moved."""
        expected, commands = step.expected_seq, step.commands
        event = step.event
        if event.seq != expected + 1 or getattr(event, "scheduled", None) != task.seq or any(
            cmd.seq != expected + 2 + i for i, cmd in enumerate(commands)
        ):
            raise StoreError(f"activity step for run {step.run_id} is numbered wrongly")
        if self._q.wft_owner(conn, {"b_run_id": step.run_id}).scalar() is not None:
            return False  # a worker is computing a step of this run: the outcome waits in its inbox
        workflow_id = self._q.move_seq(conn, {
            "b_run_id": step.run_id, "b_expected": expected, "b_last": expected + 1 + len(commands),
        }).scalar()
        if workflow_id is None:
            return False  # an input arrived (or the run closed): the workflow task sees the outcome
        # Every event is now seen: a pending workflow task (nobody holds it) is spent.
        self._q.delete_wft(conn, {"b_run_id": step.run_id})
        self._append(conn, step.run_id, expected + 1, [event, *commands], now, keep_first_at=True)
        # An input the effects append (a child refused at once) wakes the run itself.
        self._effects(conn, step.run_id, workflow_id, commands, step.take, now)
        step.stepped = True
        return True

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
            wt = t.workflow_tasks
            now = self._now(conn)
            for run_id in conn.execute(sa.select(wt.c.run_id).where(wt.c.lease_owner == owner)).scalars().all():
                # No step of this run is in flight any more: its inbox joins the history.
                self._d.lock_run(conn, run_id)
                run = self._q.run_by_id(conn, {"b_run_id": run_id}).first()
                if run is not None and run.status == "running":
                    self._flush_inbox(conn, run_id, int(run.last_seq), now)
            for table, kind in ((t.workflow_tasks, WORKFLOW), (t.activity_tasks, ACTIVITY)):
                released = conn.execute(table.update().where(table.c.lease_owner == owner)
                                        .values(lease_owner=None, lease_expires=None)).rowcount
                if released:
                    self._d.notify(conn, kind)

        await self._run(release)

    # -- timers and wake-ups ---------------------------------------------------------------

    async def fire_timers(self, limit: int) -> int:
        """Fire up to ``limit`` due timers and time out overdue activity tasks."""
        return await self._run(self._fire_timers, limit)

    def _fire_timers(self, conn: Connection, limit: int) -> int:
        now, lease_now = self._now(conn), self._lease_now(conn)
        due = conn.execute(
            sa.select(t.timers.c.run_id, t.timers.c.seq)
            .where(t.timers.c.fire_at <= now).order_by(t.timers.c.fire_at).limit(limit)
        ).all()
        fired = 0
        for run_id, seq in due:
            self._d.lock_run(conn, run_id)
            # Only the transaction that deletes the timer fires it (another
            # engine may have fired it, or the run cancelled it, meanwhile).
            if self._q.delete_timer(conn, {"b_run_id": run_id, "b_seq": seq}).rowcount:
                fired += self._append_input(conn, run_id, ev.TimerFired(seq=0, at=now, started=seq), now)
        # Activity tasks past their schedule-to-close deadline that nobody is
        # running (a running attempt is cut off by its worker).
        at = t.activity_tasks
        expired = conn.execute(
            sa.select(at.c.id, at.c.run_id, at.c.seq, at.c.attempt, at.c.last_failure)
            .where(at.c.deadline <= now)
            .where(_lease_free(at))
            .limit(limit), {"b_lease_now": lease_now}
        ).all()
        for task_id, run_id, seq, attempt, last_failure in expired:
            self._d.lock_run(conn, run_id)
            if not self._q.delete_overdue(conn, {"b_id": task_id, "b_now": now, "b_lease_now": lease_now}).rowcount:
                continue
            fired += self._append_input(conn, run_id, ev.ActivityTimedOut(
                seq=0, at=now, scheduled=seq, attempt=attempt, kind="schedule_to_close",
                failure=orjson.loads(last_failure) if last_failure else None), now)
        return fired

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

    # -- signals, cancel, reads ---------------------------------------------------------------

    async def signal(self, run_or_workflow_id: str, name: str, payload: bytes) -> str:
        """Append ``SignalReceived`` to the run."""
        return await self._run_outside(self._signal, run_or_workflow_id, name, payload)

    def _signal(self, conn: Connection, ident: str, name: str, payload: bytes) -> str:
        row = self._resolve(conn, ident)
        now = self._now(conn)
        if not self._append_input(conn, row.run_id, ev.SignalReceived(
                seq=0, at=now, name=name, input=payload), now):
            raise RunFinishedError(row.run_id, row.status)
        return str(row.run_id)

    async def request_cancel(self, run_or_workflow_id: str, reason: str) -> str:
        """Append ``CancelRequested`` to the run."""
        return await self._run_outside(self._cancel, run_or_workflow_id, reason)

    def _cancel(self, conn: Connection, ident: str, reason: str) -> str:
        row = self._resolve(conn, ident)
        now = self._now(conn)
        if not self._append_input(conn, row.run_id, ev.CancelRequested(
                seq=0, at=now, reason=reason), now):
            raise RunFinishedError(row.run_id, row.status)
        return str(row.run_id)

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
        """A run by run id, or the latest run of a workflow id."""
        return await self._read(lambda conn: _row_to_run(self._resolve(conn, run_or_workflow_id)))

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered."""

        def query(conn: Connection) -> list[RunRecord]:
            stmt = sa.select(t.runs).order_by(t.runs.c.created_at.desc(), t.runs.c.run_id)
            if status is not None:
                stmt = stmt.where(t.runs.c.status == status)
            if workflow is not None:
                stmt = stmt.where(t.runs.c.workflow == workflow)
            return [_row_to_run(r) for r in conn.execute(stmt.limit(limit).offset(offset))]

        return await self._read(query)

    async def purge(
        self, before: float, *, statuses: Sequence[str] | None = None, workflow: str | None = None,
        batch_size: int = 200, dry_run: bool = False,
    ) -> PurgeReport:
        """Delete runs closed before ``before``, with what goes with them, at most ``batch_size`` runs per transaction.

        See ``_retention.py`` for what goes together; ``dry_run`` only counts.
        """
        return await _retention.purge(self, _retention.Pass(before, statuses, workflow, batch_size, dry_run))
