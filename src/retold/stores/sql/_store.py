"""The SQL store: SQLite (the default) or PostgreSQL, through SQLAlchemy Core.

Each public method is one transaction run in a worker thread (see
``_writer.py``); claims and leases are in ``_leases.py``, the statements in
``_statements.py``, the reads and writes of a transaction in ``_tx.py``. The SQL is
written once; what differs between databases (connecting, beginning a
transaction, the clock, row locks, notifications) is a small
:class:`~._dialect.Dialect`: see ``_sqlite.py`` and ``_postgres.py``.

Statements that would race between processes on PostgreSQL under READ
COMMITTED are written so they cannot: claims take rows ``FOR UPDATE SKIP
LOCKED`` (SQLite ignores the clause: its writers are serialised), an append
locks the run's row first (a conditional ``UPDATE`` of ``last_seq``, on
PostgreSQL in a statement that fails the transaction when it matches no
row, or ``lock_run``), deletes that decide who acts check their row count, and
inserts that may collide use ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import RunNotFoundError, SchemaError, StoreError
from ...history import events as ev
from ...history.failure import BlockedTask
from .._pending import RunWork
from .._plan import ScheduleRow, Tx
from .._protocol import RunRecord
from .._purge import PurgeReport
from . import _retention
from . import _schema as t
from ._dialect import dialect_for
from ._leases import Leases
from ._memory import Memory
from ._migrations import migrate
from ._pending import read_pending
from ._pipeline import AssumptionFailed
from ._records import row_to_run
from ._sqlite import boot_clock
from ._statements import LEASE_HORIZON, Statements
from ._tx import SqlTx

__all__ = ["SqlStore"]

_T = TypeVar("_T")

def _failure(record: RunRecord, data: bytes | None) -> BlockedTask | None:
    """A workflow task's stored failure, for an open run."""
    return BlockedTask.from_json(orjson.loads(data)) if data and record.status == "running" else None


class SqlStore(Leases):
    """A :class:`~retold.stores.Store` on SQLite or PostgreSQL, through SQLAlchemy Core.

    Args:
        url: ``sqlite:///path.db`` (a file, created if missing),
            ``sqlite://`` (a private in-memory SQLite database; so is
            ``memory://`` here, though an Engine gives ``memory://`` to the
            pure :class:`~retold.stores.memory.MemoryStore`) or
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
            another process's write lock before failing with a StoreError
            that says so (nothing written). Default 10, or the URL's
            ``?busy_timeout=SECONDS`` (``sqlite:///app.db?busy_timeout=30``,
            which also reaches ``retold worker --url``).
        group_commit: run the durable transactions queued meanwhile as one,
            each in a savepoint, one COMMIT for all (the default on SQLite;
            off on PostgreSQL, where it did not pay: see docs/performance.md).

    Raises:
        StoreError: the URL is not supported, or its driver is missing.
    """

    def __init__(
        self, url: str, *, clock: Callable[[], float] | None = None, pool_size: int = 4,
        max_pending_signals: int = 10_000, busy_timeout: float | None = None,
        lease_clock: Callable[[], float] | None = None, group_commit: bool | None = None,
    ) -> None:
        if pool_size < 1:
            raise StoreError(f"SqlStore pool_size must be at least 1, got {pool_size}")
        if max_pending_signals < 1:
            raise StoreError(f"SqlStore max_pending_signals must be at least 1, got {max_pending_signals}")
        if busy_timeout is not None and not 0 <= busy_timeout < float("inf"):
            raise StoreError(f"SqlStore busy_timeout must be seconds, a number at least 0, got {busy_timeout}")
        self.max_pending_signals = max_pending_signals  # read by the engine, which enforces it
        self._d = dialect_for(url, pool_size=pool_size, busy_timeout=busy_timeout)
        self.url = self._d.url
        self._init_writer(pool_size, group_commit)
        # PostgreSQL: activity task ids reserved from the table's sequence (see _tx, RESERVE_IDS_SQL).
        self._activity_ids: deque[int] = deque()
        # PostgreSQL: runs and tasks as this store's commits left them, for steps in one round trip
        # (see _memory); not when one of the two clocks is the server's and the other is not.
        self._memory: Memory | None = None
        self._engine = self._d.engine
        self._q = Statements(self._d.insert, self._engine.dialect if self._d.name == "sqlite" else None)
        self._clock = clock
        if clock is not None or not self._d.server_clock:
            fixed = clock or self._d.wall
            self._now: Callable[[Connection], float] = lambda _conn: fixed()
        else:
            self._now = self._d.now
        # Leases: on one machine (SQLite) a clock that counts from boot, so
        # that steps of the wall clock do not end or stretch them; with
        # PostgreSQL, the server's clock, shared by every machine.
        lease_source = lease_clock or clock
        # Whether the clocks are the server's, read in the transaction (a
        # read that brings the clock back along spares a round trip).
        self._server_clock = clock is None and self._d.server_clock
        self._server_lease_clock = self._server_clock and lease_source is None
        if lease_source is not None:
            self._lease_now: Callable[[Connection], float] = lambda _conn: lease_source()
        elif self._d.server_clock:
            self._lease_now = self._d.now
        else:
            self._lease_now = lambda _conn: boot_clock()
        if self._d.name == "postgresql" and self._server_clock == self._server_lease_clock:
            self._memory = Memory()

    # -- plumbing --------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """The database: ``sqlite`` or ``postgresql``."""
        return self._d.name

    def now(self) -> float:
        """The store's clock (on PostgreSQL, the server's as last measured)."""
        return self._clock() if self._clock is not None else self._d.wall()

    async def open(self) -> None:
        """Create the tables or upgrade them; refuse a database that is not ours or is newer."""
        try:
            await self._run(self._open, inline=False)  # an upgrade may take a while
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sa.exc.DatabaseError) and not isinstance(cause, sa.exc.OperationalError):
                raise SchemaError(f"{self.url} is not a {self._d.title} database: {cause.orig}") from exc
            raise
        try:
            await anyio.to_thread.run_sync(self._on_writer_connection, self._d.after_open, limiter=self._d.limiter)
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
                if self._writer is not None:  # runs what is queued, then ends
                    await anyio.to_thread.run_sync(self._writer.stop)
            finally:
                for limiter, token in held:
                    limiter.release_on_behalf_of(token)
        self._d.dispose()

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work(kind)`` when any process creates work, until cancelled.

        ``kind`` is ``"workflow"``, ``"activity"`` or ``"closed"`` (on
        PostgreSQL followed by the ids of the runs closed). On PostgreSQL
        this listens on a connection of its own; on SQLite it returns at
        once (engines poll).
        """
        await self._d.listen(on_work)

    async def transact(self, fn: Callable[[Tx], _T], *, outside: bool = False) -> _T:
        """Run ``fn`` in one durable transaction (see :meth:`Store.transact`).

        On SQLite it joins a group commit; ``outside`` (a start, a signal, a
        cancel) takes at most all but one of PostgreSQL's connections.
        """
        def body(conn: Connection, assume: bool = True) -> _T:
            # PostgreSQL: the writes still queued go with COMMIT (the dialect's before_commit).
            tx = SqlTx(self, conn, assume=assume)
            try:
                try:
                    result = fn(tx)
                except Exception:
                    if not tx.assuming:
                        raise
                    # Decided on remembered state, not yet checked (a Rerun, or an error that state
                    # led to): nothing was sent; decide again on reads.
                    tx.undo()
                    tx = SqlTx(self, conn)
                    result = fn(tx)
                tx.done()
            except BaseException:
                # A transaction that failed tells nobody anything (its notifications are kept
                # on the connection, which outlives it, until the body is done).
                self._d.pending_notifications(conn)
                raise
            return result

        run = self._run_outside if outside else self._run
        try:
            return await run(body)
        except AssumptionFailed as failed:
            # What the transaction assumed from memory was not so: nothing was written. Again, on reads.
            if self._memory is not None:
                self._memory.forget(failed.run_id, failed.task_id)
            return await run(body, False)

    def _resolve(self, conn: Connection, run_or_workflow_id: str) -> Any:
        row = self._q.run_by_id(conn, {"b_run_id": run_or_workflow_id}).first()
        if row is None:
            current = self._q.current_run(conn, {"b_id": run_or_workflow_id}).scalar()
            if current is not None:
                row = self._q.run_by_id(conn, {"b_run_id": current}).first()
        if row is None:
            raise RunNotFoundError(run_or_workflow_id)
        return row

    async def load(self, run_id: str, after_seq: int, limit: int | None = None) -> tuple[RunRecord, list[ev.Event]]:
        """A run and its events after ``after_seq`` (the first ``limit`` of them, if given)."""
        return await self._read(self._load, run_id, after_seq, limit)

    def _load(
        self, conn: Connection, run_id: str, after_seq: int, limit: int | None = None,
    ) -> tuple[RunRecord, list[ev.Event]]:
        row = self._q.run_by_id(conn, {"b_run_id": run_id}).first()
        if row is None:
            raise RunNotFoundError(run_id)
        if limit is None:
            rows = self._q.events_after(conn, {"b_rk": row.rk, "b_after": after_seq}).all()
        else:
            rows = self._q.events_page(conn, {"b_rk": row.rk, "b_after": after_seq,
                                              "b_limit": max(limit, 0)}).all()
        task = self._q.wft_attempts(conn, {"b_run_id": run_id}).first()
        record = row_to_run(row)
        if task is not None:
            record = replace(record, task_attempts=task.attempts or 0, task_lapses=task.lapses or 0,
                             task_failure=_failure(record, task.failure))
        names = t.EVENT_NAMES
        return record, [ev.decode_event(seq, at, names[code], meta, payload) for seq, at, code, meta, payload in rows]

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
        wt, at, tm, st = t.workflow_tasks, t.activity_tasks, t.timers, t.schedules
        busy = conn.execute(sa.select(sa.or_(
            sa.exists().where(wt.c.lease_owner.is_not(None)),
            sa.exists().where(wt.c.visible_at <= now),
            sa.exists().where(at.c.lease_owner.is_not(None)),
            sa.exists().where(at.c.visible_at <= now),
            sa.exists().where(tm.c.fire_at <= now),
            sa.exists().where(st.c.due_at <= now),
        ))).scalar()
        if busy:
            return True, None
        times = [
            conn.execute(sa.select(sa.func.min(tm.c.fire_at))).scalar(),
            conn.execute(sa.select(sa.func.min(wt.c.visible_at))).scalar(),
            conn.execute(sa.select(sa.func.min(at.c.visible_at))).scalar(),
            conn.execute(sa.select(sa.func.min(at.c.deadline))).scalar(),
            conn.execute(sa.select(sa.func.min(st.c.due_at))).scalar(),
        ]
        real = [x for x in times if x is not None]
        return False, (min(real) if real else None)

    async def schedules_due(self, limit: int) -> tuple[list[str], float | None]:
        """(ids, next_due): see :meth:`Store.schedules_due` (a read transaction: no write lock)."""
        return await self._read(self._schedules_due, limit)

    def _schedules_due(self, conn: Connection, limit: int) -> tuple[list[str], float | None]:
        st = t.schedules
        ids: list[str] = []
        if limit > 0:
            ids = list(conn.execute(
                sa.select(st.c.schedule_id).where(st.c.due_at <= self._now(conn))
                .order_by(st.c.due_at, st.c.schedule_id).limit(limit)
            ).scalars())
        due: float | None = conn.execute(sa.select(sa.func.min(st.c.due_at))).scalar()
        return ids, due

    async def timers_due(self, limit: int) -> tuple[list[tuple[str, int]], list[int]]:
        """(timers, tasks): see :meth:`Store.timers_due` (a read transaction: no write lock)."""
        return await self._read(self._timers_due, limit)

    def _timers_due(self, conn: Connection, limit: int) -> tuple[list[tuple[str, int]], list[int]]:
        if limit <= 0:
            return [], []
        tm, at = t.timers, t.activity_tasks
        now, lease_now = self._now(conn), self._lease_now(conn)
        timers = [(run_id, seq) for run_id, seq in conn.execute(
            sa.select(tm.c.run_id, tm.c.seq).where(tm.c.fire_at <= now)
            .order_by(tm.c.fire_at, tm.c.run_id, tm.c.seq).limit(limit))]
        # As Tx.take_overdue_tasks picks them: past the deadline, and no live lease.
        tasks = list(conn.execute(
            sa.select(at.c.id).where(at.c.deadline <= now)
            .where(sa.or_(at.c.lease_owner.is_(None), at.c.lease_expires < lease_now,
                          at.c.lease_expires > lease_now + LEASE_HORIZON))
            .order_by(at.c.id).limit(limit)).scalars())
        return timers, tasks

    async def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        """A schedule's row, if it exists (a read transaction: it locks nothing)."""
        return await self._read(self._get_schedule, schedule_id)

    def _get_schedule(self, conn: Connection, schedule_id: str) -> ScheduleRow | None:
        st = t.schedules
        row = conn.execute(sa.select(st.c.schedule_id, st.c.due_at, st.c.body)
                           .where(st.c.schedule_id == schedule_id)).first()
        return None if row is None else ScheduleRow(row.schedule_id, row.due_at, bytes(row.body))

    async def list_schedules(self) -> list[ScheduleRow]:
        """Every schedule's row, by id (a read transaction: it locks nothing)."""
        return await self._read(self._list_schedules)

    def _list_schedules(self, conn: Connection) -> list[ScheduleRow]:
        st = t.schedules
        return [ScheduleRow(row.schedule_id, row.due_at, bytes(row.body)) for row in conn.execute(
            sa.select(st.c.schedule_id, st.c.due_at, st.c.body).order_by(st.c.schedule_id))]

    async def closed_among(self, run_ids: Sequence[str]) -> dict[str, RunRecord | None]:
        """Of the runs ``run_ids`` names, those no longer running (with their records) and those unknown (None).

        A few ids (the runs a client was told closed): one query for their
        rows. Many (every run it waits for): per 500, one for their statuses
        and one for the rows of those closed, if any.
        """

        def query(conn: Connection) -> dict[str, RunRecord | None]:
            found: dict[str, RunRecord | None] = {}
            ids = list(run_ids)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                if len(chunk) <= 32:
                    status = {}
                    for row in conn.execute(sa.select(t.runs).where(t.runs.c.run_id.in_(chunk))):
                        status[row.run_id] = row.status
                        if row.status != "running":
                            found[row.run_id] = row_to_run(row)
                else:
                    status = {row.run_id: row.status for row in conn.execute(
                        sa.select(t.runs.c.run_id, t.runs.c.status).where(t.runs.c.run_id.in_(chunk)))}
                    closed = [run_id for run_id, state in status.items() if state != "running"]
                    if closed:
                        for row in conn.execute(sa.select(t.runs).where(t.runs.c.run_id.in_(closed))):
                            found[row.run_id] = row_to_run(row)
                found.update((run_id, None) for run_id in chunk if run_id not in status)
            return found

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

    async def pending_work(self, run_id: str) -> RunWork:
        """What the run ``run_id`` waits for: its tasks, timers, open children and unseen signals."""
        return await self._read(read_pending, self, run_id)

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None,
        limit: int = 100, offset: int = 0,
        id_prefix: str | None = None, started_after: float | None = None, started_before: float | None = None,
        closed_after: float | None = None, closed_before: float | None = None,
        attributes: Mapping[str, str] | None = None, after: tuple[float, str] | None = None,
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
            if id_prefix:
                # substr, not LIKE: SQLite's LIKE ignores case, and "%" or "_" in ids would need escaping.
                n = len(id_prefix)
                stmt = stmt.where(sa.or_(sa.func.substr(t.runs.c.workflow_id, 1, n) == id_prefix,
                                         sa.func.substr(t.runs.c.run_id, 1, n) == id_prefix))
            if started_after is not None:
                stmt = stmt.where(t.runs.c.created_at >= started_after)
            if started_before is not None:
                stmt = stmt.where(t.runs.c.created_at < started_before)
            if closed_after is not None:
                stmt = stmt.where(t.runs.c.closed_at >= closed_after)
            if closed_before is not None:
                stmt = stmt.where(t.runs.c.closed_at < closed_before)
            sat = t.search_attributes
            for name, value in sorted((attributes or {}).items()):
                # IN, not a correlated EXISTS: the planner then reads the runs from
                # the (name, value) index instead of testing every run.
                stmt = stmt.where(t.runs.c.run_id.in_(
                    sa.select(sat.c.run_id).where(sat.c.name == name, sat.c.value == value)))
            if after is not None:  # the runs after this one, in the list's order
                stmt = stmt.where(sa.or_(t.runs.c.created_at < after[0], sa.and_(
                    t.runs.c.created_at == after[0], t.runs.c.run_id > after[1])))
            records = []
            for r in conn.execute(stmt.limit(limit).offset(offset)):
                record = row_to_run(r)
                failure = _failure(record, r.task_failure)
                records.append(record if failure is None else replace(record, task_failure=failure))
            return records

        return await self._read(query)

    async def purge(
        self, before: float, *, statuses: Sequence[str] | None = None, workflow: str | None = None,
        batch_size: int = 200, dry_run: bool = False,
    ) -> PurgeReport:
        """Delete runs closed before ``before``, with what goes with them, at most ``batch_size`` runs per transaction.

        See ``_retention.py`` for what goes together; ``dry_run`` only counts.
        """
        return await _retention.purge(self, _retention.Pass(before, statuses, workflow, batch_size, dry_run))
