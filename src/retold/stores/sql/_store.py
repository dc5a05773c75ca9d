"""The SQL store: SQLite (default) through SQLAlchemy Core.

Each public method is one transaction run in a worker thread. On SQLite the
database is in WAL mode with ``synchronous=FULL`` (a committed event survives
power loss) and every transaction starts with ``BEGIN IMMEDIATE``, so writers
queue for the lock instead of failing half-way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

from ...errors import (
    ConflictError,
    IdempotencyError,
    RunFinishedError,
    RunNotFoundError,
    SchemaError,
    StoreError,
)
from ...history import events as ev
from .._protocol import ActivityOutcome, ActivityTask, RunRecord, StartRequest
from . import _schema as t

__all__ = ["SqlStore"]

_T = TypeVar("_T")

_STATUS_OF: dict[type[ev.Event], str] = {
    ev.WorkflowCompleted: "completed",
    ev.WorkflowFailed: "failed",
    ev.WorkflowCancelled: "cancelled",
    ev.WorkflowContinuedAsNew: "continued",
}


_B = sa.bindparam


class _Q:
    """Statements of the hot paths, built once: SQLAlchemy then only binds values."""

    run_by_id = sa.select(t.runs).where(t.runs.c.run_id == _B("b_run_id"))
    current_run = sa.select(t.workflows.c.current_run_id).where(t.workflows.c.workflow_id == _B("b_id"))
    insert_events = t.events.insert()
    insert_run = t.runs.insert()
    wake = sqlite_insert(t.workflow_tasks).on_conflict_do_nothing(index_elements=["run_id"])
    bump_seq = (
        t.runs.update()
        .where(t.runs.c.run_id == _B("b_run_id"), t.runs.c.status == "running")
        .values(last_seq=t.runs.c.last_seq + 1)
        .returning(t.runs.c.last_seq)
    )
    move_seq = (
        t.runs.update()
        .where(t.runs.c.run_id == _B("b_run_id"), t.runs.c.last_seq == _B("b_expected"),
               t.runs.c.status == "running")
        .values(last_seq=_B("b_last"))
        .returning(t.runs.c.workflow_id)
    )
    events_after = (
        sa.select(t.events.c.seq, t.events.c.at, t.events.c.type, t.events.c.meta, t.events.c.payload)
        .where(t.events.c.run_id == _B("b_run_id"), t.events.c.seq > _B("b_after"))
        .order_by(t.events.c.seq)
    )
    insert_activity = t.activity_tasks.insert()
    insert_timer = t.timers.insert()
    delete_timer = t.timers.delete().where(t.timers.c.run_id == _B("b_run_id"), t.timers.c.seq == _B("b_seq"))
    delete_wft = t.workflow_tasks.delete().where(t.workflow_tasks.c.run_id == _B("b_run_id"))
    task_by_id = sa.select(t.activity_tasks).where(t.activity_tasks.c.id == _B("b_id"))
    delete_task = t.activity_tasks.delete().where(t.activity_tasks.c.id == _B("b_id"))
    workflow_by_id = sa.select(t.workflows).where(t.workflows.c.workflow_id == _B("b_id"))
    workflow_by_key = sa.select(t.workflows).where(t.workflows.c.idempotency_key == _B("b_key"))
    insert_workflow = t.workflows.insert()


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


class SqlStore:
    """A :class:`~retold.stores.Store` on SQLite, through SQLAlchemy Core.

    Args:
        url: ``sqlite:///path.db`` (a file, created if missing) or
            ``memory://`` (a private in-memory SQLite database).
        clock: the store's clock; leases, timers and event times use it.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._clock = clock
        if url in ("memory://", "memory:", "sqlite://", "sqlite:///:memory:"):
            self._engine = sa.create_engine(
                "sqlite://", poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
        elif url.startswith("sqlite"):
            self._engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        else:
            raise StoreError(
                f"unsupported store URL {url!r}: use sqlite:///path.db or memory://"
            )
        self._install_sqlite_pragmas(self._engine)
        # SQLite has one writer at a time: queue our transactions in-process.
        self._limiter = anyio.CapacityLimiter(1)

    @staticmethod
    def _install_sqlite_pragmas(engine: sa.Engine) -> None:
        @sa_event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.execute("PRAGMA foreign_keys=ON")
            finally:
                cursor.close()

        @sa_event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    # -- plumbing --------------------------------------------------------------

    def now(self) -> float:
        """The store's clock."""
        return self._clock()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(self._tx, fn, *args, limiter=self._limiter)

    async def _run_lease_only(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a transaction that only moves leases, without waiting for the disk.

        Losing such a transaction to a power cut only hands a task back to the
        queue, so it commits with ``synchronous=NORMAL``; the next durable
        commit writes it to disk anyway. It must never append an event.
        """
        return await anyio.to_thread.run_sync(self._tx_lease_only, fn, *args, limiter=self._limiter)

    def _tx(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            with self._engine.begin() as conn:
                return fn(conn, *args)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"database error on {self.url}: {exc.orig}") from exc

    def _tx_lease_only(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            with self._engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute("PRAGMA synchronous=NORMAL")  # outside any transaction, as SQLite requires
                try:
                    with conn.begin():
                        return fn(conn, *args)
                finally:
                    raw.execute("PRAGMA synchronous=FULL")
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"database error on {self.url}: {exc.orig}") from exc

    async def open(self) -> None:
        """Create the tables, or check that existing ones are ours and not newer."""
        try:
            await self._run(self._open)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sa.exc.DatabaseError) and not isinstance(cause, sa.exc.OperationalError):
                raise SchemaError(f"{self.url} is not a SQLite database: {cause.orig}") from exc
            raise
        await anyio.to_thread.run_sync(self._enable_wal, limiter=self._limiter)

    def _enable_wal(self) -> None:
        # Only once the file is known to be ours: WAL mode is written into the
        # file header, and a database we refuse must stay byte-for-byte intact.
        # journal_mode cannot change inside a transaction, hence the raw connection.
        raw = self._engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
        finally:
            raw.close()

    def _open(self, conn: Connection) -> None:
        try:
            names = set(sa.inspect(conn).get_table_names())
        except sa.exc.DatabaseError as exc:
            raise SchemaError(f"{self.url} is not a SQLite database: {exc.orig}") from exc
        if names and t.meta.name not in names:
            raise SchemaError(
                f"{self.url} is not a retold database (it has tables "
                f"{', '.join(sorted(names)[:5])}); point retold at a new file"
            )
        if t.meta.name in names:
            row = conn.execute(
                sa.select(t.meta.c.value).where(t.meta.c.key == "schema_version")
            ).first()
            version = int(row.value) if row else 0
            if version > t.SCHEMA_VERSION:
                raise SchemaError(
                    f"{self.url} has schema version {version}, newer than this retold "
                    f"supports ({t.SCHEMA_VERSION}): upgrade retold"
                )
            if version == t.SCHEMA_VERSION:
                return
        t.metadata.create_all(conn)
        conn.execute(
            t.meta.insert().values(key="schema_version", value=str(t.SCHEMA_VERSION))
        )

    async def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()

    # -- helpers used inside transactions -----------------------------------------

    def _resolve(self, conn: Connection, run_or_workflow_id: str) -> Any:
        row = conn.execute(_Q.run_by_id, {"b_run_id": run_or_workflow_id}).first()
        if row is None:
            current = conn.execute(_Q.current_run, {"b_id": run_or_workflow_id}).scalar()
            if current is not None:
                row = conn.execute(_Q.run_by_id, {"b_run_id": current}).first()
        if row is None:
            raise RunNotFoundError(run_or_workflow_id)
        return row

    def _append(self, conn: Connection, run_id: str, first_seq: int, items: Sequence[ev.Event], now: float) -> None:
        rows = []
        for i, event in enumerate(items):
            type_name, meta, payload = ev.encode_event(event)
            rows.append({
                "run_id": run_id, "seq": first_seq + i, "type": type_name,
                "at": now, "meta": meta, "payload": payload,
            })
        if rows:
            conn.execute(_Q.insert_events, rows)

    def _wake(self, conn: Connection, run_id: str, now: float) -> None:
        # One pending workflow task per run: an existing one (leased or not)
        # will see the new events, or fail its commit on the moved last_seq.
        conn.execute(_Q.wake, {
            "run_id": run_id, "visible_at": now, "lease_owner": None, "lease_expires": None, "attempts": 0,
        })

    def _append_input(self, conn: Connection, run_id: str, event: ev.Event, now: float) -> bool:
        """Append one input event to an open run and wake it; False if closed."""
        seq = conn.execute(_Q.bump_seq, {"b_run_id": run_id}).scalar()
        if seq is None:
            return False
        self._append(conn, run_id, seq, [event], now)
        self._wake(conn, run_id, now)
        return True

    def _create_run(
        self, conn: Connection, *, run_id: str, workflow: str, workflow_id: str, payload: bytes,
        now: float, parent_run_id: str | None = None, parent_seq: int | None = None,
        continued_from: str | None = None,
    ) -> None:
        conn.execute(_Q.insert_run, {
            "run_id": run_id, "workflow_id": workflow_id, "workflow": workflow, "status": "running",
            "created_at": now, "closed_at": None, "last_seq": 1, "result": None, "failure": None,
            "parent_run_id": parent_run_id, "parent_seq": parent_seq, "next_run_id": None,
        })
        started = ev.WorkflowStarted(
            seq=1, at=now, workflow=workflow, workflow_id=workflow_id, input=payload,
            parent_run_id=parent_run_id, parent_seq=parent_seq, continued_from=continued_from,
        )
        self._append(conn, run_id, 1, [started], now)
        self._wake(conn, run_id, now)

    # -- starting ------------------------------------------------------------------

    async def start(self, request: StartRequest) -> tuple[RunRecord, bool]:
        """Create a run, or return the run already started with this id or key."""
        return await self._run(self._start, request)

    def _start(self, conn: Connection, req: StartRequest) -> tuple[RunRecord, bool]:
        existing = None
        if req.idempotency_key is not None:
            existing = conn.execute(_Q.workflow_by_key, {"b_key": req.idempotency_key}).first()
        if existing is None:
            existing = conn.execute(_Q.workflow_by_id, {"b_id": req.workflow_id}).first()
        if existing is not None:
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
            row = conn.execute(_Q.run_by_id, {"b_run_id": existing.first_run_id}).first()
            return _row_to_run(row), False
        now = self._clock()
        run_id = str(uuid.uuid4())
        conn.execute(_Q.insert_workflow, {
            "workflow_id": req.workflow_id, "workflow": req.workflow, "input_hash": req.input_hash,
            "idempotency_key": req.idempotency_key, "first_run_id": run_id, "current_run_id": run_id,
            "created_at": now,
        })
        self._create_run(conn, run_id=run_id, workflow=req.workflow,
                         workflow_id=req.workflow_id, payload=req.input, now=now)
        record = RunRecord(
            run_id=run_id, workflow_id=req.workflow_id, workflow=req.workflow, status="running",
            created_at=now, closed_at=None, last_seq=1, result=None, failure=None,
            parent_run_id=None, next_run_id=None,
        )
        return record, True

    # -- workflow tasks --------------------------------------------------------------

    async def claim_workflow_tasks(
        self, owner: str, workflows: Sequence[str], limit: int, lease: float
    ) -> list[str]:
        """Lease up to ``limit`` runs of ``workflows`` with unprocessed events."""
        if not workflows:
            return []
        return await self._run_lease_only(self._claim_workflow_tasks, owner, list(workflows), limit, lease)

    def _claim_workflow_tasks(
        self, conn: Connection, owner: str, workflows: list[str], limit: int, lease: float
    ) -> list[str]:
        now = self._clock()
        wt = t.workflow_tasks
        ids = list(conn.execute(
            sa.select(wt.c.run_id)
            .join(t.runs, t.runs.c.run_id == wt.c.run_id)
            .where(t.runs.c.workflow.in_(workflows))
            .where(wt.c.visible_at <= now)
            .where(sa.or_(wt.c.lease_owner.is_(None), wt.c.lease_expires < now))
            .order_by(wt.c.visible_at)
            .limit(limit)
        ).scalars())
        if ids:
            conn.execute(wt.update().where(wt.c.run_id.in_(ids)).values(
                lease_owner=owner, lease_expires=now + lease))
        return ids

    async def load(self, run_id: str, after_seq: int) -> tuple[RunRecord, list[ev.Event]]:
        """A run and its events after ``after_seq``."""
        return await self._run(self._load, run_id, after_seq)

    def _load(self, conn: Connection, run_id: str, after_seq: int) -> tuple[RunRecord, list[ev.Event]]:
        row = conn.execute(_Q.run_by_id, {"b_run_id": run_id}).first()
        if row is None:
            raise RunNotFoundError(run_id)
        rows = conn.execute(_Q.events_after, {"b_run_id": run_id, "b_after": after_seq}).all()
        return _row_to_run(row), [ev.decode_event(*r) for r in rows]

    async def commit_workflow_task(
        self, run_id: str, owner: str, expected_seq: int, commands: Sequence[ev.Event]
    ) -> int:
        """Append commands and their effects in one transaction."""
        return await self._run(self._commit, run_id, owner, expected_seq, commands)

    def _commit(
        self, conn: Connection, run_id: str, owner: str, expected: int, commands: Sequence[ev.Event]
    ) -> int:
        now = self._clock()
        last = expected + len(commands)
        workflow_id = conn.execute(
            _Q.move_seq, {"b_run_id": run_id, "b_expected": expected, "b_last": last}
        ).scalar()
        if workflow_id is None:
            raise ConflictError(run_id, expected)
        for i, cmd in enumerate(commands):
            if cmd.seq != expected + 1 + i:
                raise StoreError(f"command {cmd.type} numbered {cmd.seq}, expected {expected + 1 + i}")
        self._append(conn, run_id, expected + 1, commands, now)
        appended_inputs = False
        for cmd in commands:
            match cmd:
                case ev.ActivityScheduled():
                    stc = cmd.options.get("schedule_to_close")
                    conn.execute(_Q.insert_activity, {
                        "run_id": run_id, "workflow_id": workflow_id, "seq": cmd.seq,
                        "activity": cmd.activity, "queue": cmd.options.get("task_queue", "default"),
                        "input": cmd.input, "options": orjson.dumps(cmd.options), "attempt": 1,
                        "scheduled_at": now, "deadline": None if stc is None else now + stc,
                        "visible_at": now, "lease_owner": None, "lease_expires": None, "last_failure": None,
                    })
                case ev.TimerStarted():
                    conn.execute(_Q.insert_timer, {"run_id": run_id, "seq": cmd.seq, "fire_at": now + cmd.duration})
                case ev.TimerCancelled():
                    conn.execute(_Q.delete_timer, {"b_run_id": run_id, "b_seq": cmd.started})
                case ev.ChildWorkflowStarted():
                    appended_inputs |= self._start_child(conn, run_id, cmd, now)
                case _ if isinstance(cmd, ev.TERMINAL_TYPES):
                    self._close(conn, run_id, cmd, now)
        wt = t.workflow_tasks
        if appended_inputs:
            # This commit also gave the run an input (a child refused at once):
            # hand its workflow task back so the run sees it.
            conn.execute(wt.update().where(wt.c.run_id == run_id).values(
                visible_at=now, lease_owner=None, lease_expires=None))
            return int(conn.execute(
                sa.select(t.runs.c.last_seq).where(t.runs.c.run_id == run_id)
            ).scalar_one())
        conn.execute(_Q.delete_wft, {"b_run_id": run_id})
        return last

    def _start_child(self, conn: Connection, run_id: str, cmd: ev.ChildWorkflowStarted, now: float) -> bool:
        """Create the child run; True if the parent got an outcome event instead."""
        taken = conn.execute(sa.select(t.workflows.c.workflow_id).where(
            t.workflows.c.workflow_id == cmd.workflow_id)).first()
        if taken is not None:
            failure = {"type": "retold.IdempotencyError", "non_retryable": True, "details": "",
                       "message": f"workflow id {cmd.workflow_id!r} is already in use"}
            self._append_input(conn, run_id, ev.ChildWorkflowFailed(
                seq=0, at=now, started=cmd.seq, failure=failure), now)
            return True
        conn.execute(t.workflows.insert().values(
            workflow_id=cmd.workflow_id, workflow=cmd.workflow, input_hash="",
            idempotency_key=None, first_run_id=cmd.run_id, current_run_id=cmd.run_id,
            created_at=now,
        ))
        self._create_run(conn, run_id=cmd.run_id, workflow=cmd.workflow,
                         workflow_id=cmd.workflow_id, payload=cmd.input, now=now,
                         parent_run_id=run_id, parent_seq=cmd.seq)
        return False

    def _close(self, conn: Connection, run_id: str, cmd: ev.Event, now: float) -> None:
        status = _STATUS_OF[type(cmd)]
        values: dict[str, Any] = {"status": status, "closed_at": now}
        if isinstance(cmd, ev.WorkflowCompleted):
            values["result"] = cmd.result
        elif isinstance(cmd, ev.WorkflowFailed):
            values["failure"] = orjson.dumps(cmd.failure)
        elif isinstance(cmd, ev.WorkflowCancelled):
            values["failure"] = orjson.dumps(
                {"type": "CancelledError", "message": "the run was cancelled",
                 "details": "", "non_retryable": True})
        run = self._resolve(conn, run_id)
        if isinstance(cmd, ev.WorkflowContinuedAsNew):
            values["next_run_id"] = cmd.new_run_id
            self._create_run(conn, run_id=cmd.new_run_id, workflow=run.workflow,
                             workflow_id=run.workflow_id, payload=cmd.input, now=now,
                             parent_run_id=run.parent_run_id, parent_seq=run.parent_seq,
                             continued_from=run_id)
            conn.execute(t.workflows.update().where(
                t.workflows.c.workflow_id == run.workflow_id).values(current_run_id=cmd.new_run_id))
        conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))
        conn.execute(t.activity_tasks.delete().where(t.activity_tasks.c.run_id == run_id))
        conn.execute(t.timers.delete().where(t.timers.c.run_id == run_id))
        if status != "continued":
            # Children do not outlive their parent: ask the running ones to cancel.
            children = conn.execute(sa.select(t.runs.c.run_id).where(
                t.runs.c.parent_run_id == run_id, t.runs.c.status == "running")).scalars().all()
            for child in children:
                self._append_input(conn, child, ev.CancelRequested(
                    seq=0, at=now, reason=f"parent run {run_id} {status}"), now)
        if run.parent_run_id is not None and status != "continued":
            outcome: ev.Event
            if isinstance(cmd, ev.WorkflowCompleted):
                outcome = ev.ChildWorkflowCompleted(
                    seq=0, at=now, started=run.parent_seq, result=cmd.result)
            else:
                failure = orjson.loads(values["failure"])
                outcome = ev.ChildWorkflowFailed(
                    seq=0, at=now, started=run.parent_seq, failure=failure,
                    cancelled=status == "cancelled")
            self._append_input(conn, run.parent_run_id, outcome, now)

    async def fail_workflow_task(
        self, run_id: str, owner: str, failure: dict[str, Any], delay: float, max_attempts: int
    ) -> bool:
        """Back off a failed workflow task; True if the run was failed for good."""
        return await self._run(self._fail_wft, run_id, owner, failure, delay, max_attempts)

    def _fail_wft(
        self, conn: Connection, run_id: str, owner: str, failure: dict[str, Any],
        delay: float, max_attempts: int,
    ) -> bool:
        now = self._clock()
        wt = t.workflow_tasks
        row = conn.execute(sa.select(wt).where(wt.c.run_id == run_id)).first()
        if row is None or row.lease_owner != owner:
            return False
        attempts = row.attempts + 1
        if attempts < max_attempts:
            backoff = min(delay * 2 ** (attempts - 1), 60.0)
            conn.execute(wt.update().where(wt.c.run_id == run_id).values(
                attempts=attempts, visible_at=now + backoff, lease_owner=None, lease_expires=None))
            return False
        run = conn.execute(sa.select(t.runs.c.last_seq, t.runs.c.status).where(
            t.runs.c.run_id == run_id)).first()
        if run is None or run.status != "running":
            return False
        failure = {**failure, "workflow_task": True,
                   "message": f"workflow task failed {attempts} times: {failure['message']}"}
        seq = run.last_seq + 1
        conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(last_seq=seq))
        cmd = ev.WorkflowFailed(seq=seq, at=now, failure=failure)
        self._append(conn, run_id, seq, [cmd], now)
        self._close(conn, run_id, cmd, now)
        conn.execute(wt.delete().where(wt.c.run_id == run_id))
        return True

    # -- activity tasks ----------------------------------------------------------------

    async def claim_activity_tasks(
        self, owner: str, queue: str, activities: Sequence[str], limit: int, lease: float
    ) -> list[ActivityTask]:
        """Lease ready tasks of the activities this worker hosts.

        Tasks found past their schedule-to-close deadline time out instead.
        """
        if not activities:
            return []
        return await self._run_lease_only(self._claim_activities, owner, queue, list(activities), limit, lease)

    def _claim_activities(
        self, conn: Connection, owner: str, queue: str, activities: list[str], limit: int, lease: float
    ) -> list[ActivityTask]:
        now = self._clock()
        at = t.activity_tasks
        rows = conn.execute(
            sa.select(at)
            .where(at.c.queue == queue, at.c.activity.in_(activities), at.c.visible_at <= now)
            .where(sa.or_(at.c.lease_owner.is_(None), at.c.lease_expires < now))
            # Past its schedule-to-close deadline: the timer loop times it out.
            .where(sa.or_(at.c.deadline.is_(None), at.c.deadline > now))
            .order_by(at.c.visible_at, at.c.id)
            .limit(limit)
        ).all()
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
                lease_owner=owner, lease_expires=now + lease))
        return claimed

    async def finish_activity(self, task_id: int, owner: str, outcome: ActivityOutcome) -> bool:
        """Record an attempt's outcome; False if this owner lost the task."""
        return await self._run(self._finish_activity, task_id, owner, outcome)

    def _finish_activity(self, conn: Connection, task_id: int, owner: str, out: ActivityOutcome) -> bool:
        now = self._clock()
        at = t.activity_tasks
        row = conn.execute(_Q.task_by_id, {"b_id": task_id}).first()
        if row is None or row.lease_owner != owner:
            return False
        if out.kind == "failed" and out.retry_delay is not None:
            if row.deadline is None or now + out.retry_delay < row.deadline:
                conn.execute(at.update().where(at.c.id == task_id).values(
                    attempt=row.attempt + 1, visible_at=now + out.retry_delay,
                    lease_owner=None, lease_expires=None,
                    last_failure=orjson.dumps(out.failure)))
                return True
            out = ActivityOutcome("timed_out", timeout_kind="schedule_to_close")
        conn.execute(_Q.delete_task, {"b_id": task_id})
        event: ev.Event
        if out.kind == "completed":
            event = ev.ActivityCompleted(seq=0, at=now, scheduled=row.seq,
                                         attempt=row.attempt, result=out.result)
        elif out.kind == "failed":
            event = ev.ActivityFailed(seq=0, at=now, scheduled=row.seq, attempt=row.attempt,
                                      failure=out.failure or {})
        else:
            event = ev.ActivityTimedOut(seq=0, at=now, scheduled=row.seq, attempt=row.attempt,
                                        kind=out.timeout_kind)
        self._append_input(conn, row.run_id, event, now)
        return True

    async def renew_leases(self, owner: str, task_ids: list[int], lease: float) -> set[int]:
        """Extend this owner's activity leases; return ids it no longer holds."""
        if not task_ids:
            return set()
        return await self._run_lease_only(self._renew, owner, task_ids, lease)

    def _renew(self, conn: Connection, owner: str, task_ids: list[int], lease: float) -> set[int]:
        at = t.activity_tasks
        cond = (at.c.id.in_(task_ids), at.c.lease_owner == owner)
        held = set(conn.execute(sa.select(at.c.id).where(*cond)).scalars())
        conn.execute(at.update().where(*cond).values(lease_expires=self._clock() + lease))
        return set(task_ids) - held

    async def renew_workflow_leases(self, owner: str, run_ids: list[str], lease: float) -> None:
        """Extend this owner's leases on workflow tasks still being processed."""
        if not run_ids:
            return

        def renew(conn: Connection) -> None:
            wt = t.workflow_tasks
            conn.execute(wt.update().where(wt.c.run_id.in_(run_ids), wt.c.lease_owner == owner)
                         .values(lease_expires=self._clock() + lease))

        await self._run_lease_only(renew)

    async def release_leases(self, owner: str) -> None:
        """Hand back every task this owner holds, so others need not wait for expiry."""

        def release(conn: Connection) -> None:
            for table in (t.workflow_tasks, t.activity_tasks):
                conn.execute(table.update().where(table.c.lease_owner == owner)
                             .values(lease_owner=None, lease_expires=None))

        await self._run(release)

    # -- timers and wake-ups ---------------------------------------------------------------

    async def fire_timers(self, limit: int) -> int:
        """Fire up to ``limit`` due timers and time out overdue activity tasks."""
        return await self._run(self._fire_timers, limit)

    def _fire_timers(self, conn: Connection, limit: int) -> int:
        now = self._clock()
        due = conn.execute(
            sa.select(t.timers.c.run_id, t.timers.c.seq)
            .where(t.timers.c.fire_at <= now).order_by(t.timers.c.fire_at).limit(limit)
        ).all()
        for run_id, seq in due:
            conn.execute(t.timers.delete().where(t.timers.c.run_id == run_id, t.timers.c.seq == seq))
            self._append_input(conn, run_id, ev.TimerFired(seq=0, at=now, started=seq), now)
        # Activity tasks past their schedule-to-close deadline that nobody is
        # running (a running attempt is cut off by its worker).
        at = t.activity_tasks
        expired = conn.execute(
            sa.select(at.c.id, at.c.run_id, at.c.seq, at.c.attempt)
            .where(at.c.deadline <= now)
            .where(sa.or_(at.c.lease_owner.is_(None), at.c.lease_expires < now))
            .limit(limit)
        ).all()
        for task_id, run_id, seq, attempt in expired:
            conn.execute(_Q.delete_task, {"b_id": task_id})
            self._append_input(conn, run_id, ev.ActivityTimedOut(
                seq=0, at=now, scheduled=seq, attempt=attempt, kind="schedule_to_close"), now)
        return len(due) + len(expired)

    async def next_wakeup(self) -> float | None:
        """The earliest time a timer, a task or a retry is due."""
        return await self._run(self._next_wakeup)

    def _next_wakeup(self, conn: Connection) -> float | None:
        times = [
            conn.execute(sa.select(sa.func.min(t.timers.c.fire_at))).scalar(),
            conn.execute(sa.select(sa.func.min(t.activity_tasks.c.deadline)).where(
                t.activity_tasks.c.lease_owner.is_(None))).scalar(),
            conn.execute(sa.select(sa.func.min(t.activity_tasks.c.visible_at)).where(
                t.activity_tasks.c.lease_owner.is_(None))).scalar(),
            conn.execute(sa.select(sa.func.min(t.activity_tasks.c.lease_expires))).scalar(),
            conn.execute(sa.select(sa.func.min(t.workflow_tasks.c.visible_at)).where(
                t.workflow_tasks.c.lease_owner.is_(None))).scalar(),
            conn.execute(sa.select(sa.func.min(t.workflow_tasks.c.lease_expires))).scalar(),
        ]
        real = [x for x in times if x is not None]
        return min(real) if real else None

    # -- signals, cancel, reads ---------------------------------------------------------------

    async def signal(self, run_or_workflow_id: str, name: str, payload: bytes) -> str:
        """Append ``SignalReceived`` to the run."""
        return await self._run(self._signal, run_or_workflow_id, name, payload)

    def _signal(self, conn: Connection, ident: str, name: str, payload: bytes) -> str:
        row = self._resolve(conn, ident)
        now = self._clock()
        if not self._append_input(conn, row.run_id, ev.SignalReceived(
                seq=0, at=now, name=name, input=payload), now):
            raise RunFinishedError(row.run_id, row.status)
        return str(row.run_id)

    async def request_cancel(self, run_or_workflow_id: str, reason: str) -> str:
        """Append ``CancelRequested`` to the run."""
        return await self._run(self._cancel, run_or_workflow_id, reason)

    def _cancel(self, conn: Connection, ident: str, reason: str) -> str:
        row = self._resolve(conn, ident)
        now = self._clock()
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

        return await self._run(query)

    async def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run by run id, or the latest run of a workflow id."""
        return await self._run(lambda conn: _row_to_run(self._resolve(conn, run_or_workflow_id)))

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

        return await self._run(query)
