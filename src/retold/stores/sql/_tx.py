"""One SQL transaction as a :class:`~retold.stores._plan.Tx`: reads, then plans applied.

Nothing here decides what happens to a run: the state machine does, from
what :meth:`SqlTx.run` reads, and this module writes its plans. Reading a run
locks its row (PostgreSQL; SQLite has one writer), and its workflow task's
row, so what was read still holds when the plan is applied.

PostgreSQL, one round trip: a transaction that asks for a run after
:meth:`SqlTx.prefetch_task` (the completion of an activity) may get the
run and the activity task from the store's memory of its own last commit
(``_memory``) instead of reading them: they are *assumed*. Checks that
every part of them a decision can depend on is still so go first in the
transaction's one pipeline (``ASSUME_*_SQL``), the writes and ``COMMIT``
after them; a check that fails fails the transaction with nothing written
(:class:`~._pipeline.AssumptionFailed`), and the store runs it again on
reads. The clock is not read before deciding: the decision takes an
estimate of the server's clock, and every time it writes is moved by the
difference between that estimate and the server's clock as read inside the
transaction (``_pipeline.shifted``), so what is stored is on the server's
clock as before. Anything that needs an answer before ``COMMIT`` (a read
of anything else, a plan that creates or closes runs) raises
:class:`~._pipeline.Rerun` before anything is sent, and the store runs the
transaction again on reads. See docs/performance.md for why this is sound.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import ConflictError, LeaseLostError, StoreError
from ...history import events as ev
from ...history.attributes import merge
from ...history.failure import BlockedTask, Failure
from .._plan import InboxItem, NewRun, Plan, RunState, ScheduleRow, TaskState, WorkflowEntry, WorkflowTaskState
from . import _schema as t
from ._fast import Statement
from ._memory import Memory
from ._pipeline import AFTER_COMMIT_KEY, PIPELINE_KEY, AssumptionFailed, Pipeline, Rerun
from ._records import row_to_run
from ._statements import (
    ASSUME_ACTIVITY_SQL,
    ASSUME_RUN_OWN_CLOCK_SQL,
    ASSUME_RUN_SQL,
    DELETE_ASSUMED_ACTIVITY_SQL,
    FENCE_SQL,
    LEASE_HORIZON,
    RESERVE_IDS_SQL,
)

if TYPE_CHECKING:
    from ._store import SqlStore

__all__ = ["SqlTx"]

# What NOTIFY tells other engines (see Store.listen).
WORKFLOW, ACTIVITY, CLOSED = "workflow", "activity", "closed"

# An activity task's times (on the store's clock, and its lease's end on the lease clock).
_ACTIVITY_TIMES = ("scheduled_at", "deadline", "visible_at", "lease_expires", "started_at")


class SqlTx:
    """The reads and writes of one transaction on ``conn``."""

    __slots__ = ("_assumable", "_assumed", "_d", "_gone", "_known", "_lease", "_mark", "_memory", "_new_tasks",
                 "_now", "_owners", "_pipe", "_popped", "_q", "_raw", "_reserve", "_rks", "_shift", "_states", "_store",
                 "_task_check", "_tasks", "_want_task", "_workflow_ids")

    def __init__(self, store: SqlStore, conn: Connection, *, assume: bool = False) -> None:
        """``assume``: the run and activity task of a :meth:`prefetch_task` may come from the store's memory."""
        self._store, self._raw = store, conn
        self._q, self._d = store._q, store._d
        self._now: float | None = None
        self._lease: float | None = None
        self._owners: dict[str, str | None] = {}  # task holders read (and locked) in this transaction
        self._states: dict[str, RunState] = {}  # runs read in this transaction and not changed since
        self._workflow_ids: dict[str, str] = {}  # run id -> workflow id, of runs read (it never changes)
        self._rks: dict[str, int] = {}  # run id -> the run's integer key, of runs read or created (never changes)
        self._want_task: int | None = None  # an activity task to read with the next run (prefetch_task)
        self._tasks: dict[int, Any] = {}  # activity task id -> its row, read ahead with a run
        # PostgreSQL: writes queued, sent together (see _pipeline) before
        # the next read, answer needed or COMMIT; None on SQLite.
        # A group commit's pieces share the batch's pipeline (see Writer._drain_pipelined).
        self._pipe: Pipeline | None = None
        if self._q.run_task_clock is not None:
            self._pipe = conn.info.get(PIPELINE_KEY) or Pipeline(conn)
        # PostgreSQL: what this transaction leaves for the store to remember (see _memory).
        self._memory: Memory | None = store._memory
        self._known: dict[str, RunState | None] = {}  # runs' states as of now in the transaction (None: not known)
        self._new_tasks: list[TaskState] = []  # activity tasks inserted leased, to remember
        self._gone: set[int] = set()  # activity tasks changed or deleted
        self._assumable = assume and self._memory is not None and self._pipe is not None
        self._assumed: tuple[str, TaskState] | None = None  # the run and task taken from memory
        self._mark = 0  # where the pipeline's queue ended before the assumption's checks
        self._shift: list[Any] = []  # the cursor of the run's check, which answers the clock's shift
        self._reserve: list[Any] | None = None  # the cursor of activity task ids reserved with the checks
        self._popped: list[int] = []  # reserved activity task ids taken (given back if the transaction is undone)
        self._task_check: dict[str, Any] | None = None  # the assumed activity task's check, until it is queued

    @property
    def _conn(self) -> Connection:
        """The connection, with the queued writes sent first: whatever runs on it sees them."""
        if self._pipe is not None:
            if self._pipe.held:
                raise Rerun
            self._pipe.flush()
        return self._raw

    def send(self) -> None:
        """Send the queued writes (PostgreSQL sends them with COMMIT: see ``before_commit``)."""
        if self._pipe is not None:
            self._pipe.flush()

    def prefetch_task(self, task_id: int) -> None:
        """The activity task ``task_id`` will be read after the next run: read it with that run.

        PostgreSQL: in the same pipeline, after the run's row (the order locks are taken in).
        """
        if self._pipe is not None:
            self._want_task = task_id

    def _one(self, stmt: Statement, params: dict[str, Any]) -> Any:
        """The first row of a read (on PostgreSQL sent with the queued writes)."""
        if self._pipe is None:
            return stmt(self._raw, params).first()
        return self._pipe_read(stmt, params).fetchone()

    def _all(self, stmt: Statement, params: dict[str, Any]) -> list[Any]:
        if self._pipe is None:
            return list(stmt(self._raw, params).all())
        return list(self._pipe_read(stmt, params).fetchall())

    def _pipe_read(self, stmt: Statement, params: dict[str, Any]) -> Any:
        """A read through the pipeline; the transaction's first brings the server's clock along."""
        assert self._pipe is not None
        clock: list[Any] = []
        if self._now is None and self._store._server_clock and self._q.clock is not None:
            self._pipe.add(self._q.clock, {}, clock)
        reserved = self._reserve_ids()
        cursor = self._pipe.read(stmt, params)
        self._reserved(reserved)
        if clock:
            self._seen_clock(clock[0].fetchone()[0])
        return cursor

    def _reserve_ids(self) -> list[Any] | None:
        """PostgreSQL: queue a reservation of activity task ids if the store runs low (see RESERVE_IDS_SQL)."""
        ids = self._store._activity_ids
        if self._pipe is None or len(ids) >= 16:
            return None
        answer: list[Any] = []
        self._pipe.add_sql(RESERVE_IDS_SQL, {"n": 64}, answer)
        return answer

    def _reserved(self, answer: list[Any] | None) -> None:
        if answer:
            self._store._activity_ids.extend(row[0] for row in answer[0].fetchall() if row[0] is not None)

    def _reserved_id(self) -> int | None:
        try:
            task_id = int(self._store._activity_ids.popleft())
        except IndexError:  # none left (another thread may have taken the last one)
            return None
        self._popped.append(task_id)
        return task_id

    def now(self) -> float:
        if self._now is None:
            if self._store._server_clock and self._pipe is not None and self._q.clock is not None:
                self._seen_clock(self._pipe.read(self._q.clock, {}).fetchone()[0])
            elif self._store._server_clock:  # one reading serves both clocks
                self._seen_clock(self._store._now(self._conn))
            else:
                self._now = self._store._now(self._conn)
        assert self._now is not None
        return self._now

    def lease_now(self) -> float:
        """The lease clock (see SqlStore's ``lease_clock``)."""
        if self._lease is None:
            if self._store._server_lease_clock and self._now is None:
                self.now()
            if self._lease is None:
                self._lease = self._store._lease_now(self._conn)
        return self._lease

    def live(self, expires: float | None) -> bool:
        """Whether a lease ending at ``expires`` is still running."""
        lease_now = self.lease_now()
        return expires is not None and lease_now <= expires <= lease_now + LEASE_HORIZON

    # -- reads ---------------------------------------------------------------------

    def run(self, run_or_workflow_id: str, *, inbox: bool = False) -> RunState | None:
        cached = self._states.get(run_or_workflow_id)
        if cached is not None and (cached.inbox is not None or not inbox):
            return cached
        if self._assumable and self._want_task is not None and not inbox and not self._states:
            self._assumable = False
            assumed = self._assume(run_or_workflow_id, self._want_task)
            if assumed is not None:
                return assumed
        q = self._q
        inbox_rows: list[Any] = []
        row = self._run_row(run_or_workflow_id, inbox_rows if inbox else None)
        if row is None:
            current = self._one(q.current_run, {"b_id": run_or_workflow_id})
            if current is None:
                return None
            inbox_rows = []
            row = self._run_row(current[0], inbox_rows if inbox else None)
            if row is None:
                return None
        run_id = row.run_id
        self._workflow_ids[run_id] = row.workflow_id
        self._rks[run_id] = row.rk
        task = None
        if row.attempts is not None:  # a workflow task exists (its attempts are never NULL)
            task = WorkflowTaskState(
                row.lease_owner, self.live(row.lease_expires), row.attempts, row.signals,
                BlockedTask.from_json(orjson.loads(row.task_failure)) if row.task_failure else None,
                tuple((row.failed_by or "").split()), row.lapses)
        self._owners[run_id] = None if task is None else task.owner
        items: tuple[InboxItem, ...] | None = None
        if inbox:
            # Inputs wait in an inbox only while a worker holds the task: without one it is empty.
            items = () if task is None or task.owner is None else tuple(
                InboxItem(r.id, ev.decode_event(0, 0.0, r.type, bytes(r.meta),
                                                None if r.payload is None else bytes(r.payload)))
                for r in (inbox_rows[0].fetchall() if inbox_rows
                          else q.inbox_of(self._conn, {"b_run_id": run_id}).all())
            )
        state = RunState(row_to_run(row), row.parent_seq, task, items)
        self._states[run_id] = state
        if self._memory is not None:
            self._known[run_id] = state
        return state

    def _assume(self, run_id: str, task_id: int) -> RunState | None:
        """The run and its activity task as remembered, checked first in the pipeline; None if not remembered.

        Lock order as on reads: the run's row, then the task's. The run's
        check reads the server's clock once its lock is granted.
        """
        assert self._memory is not None
        assert self._pipe is not None
        known, task = self._memory.run(run_id), self._memory.task(task_id)
        if known is None or task is None or task.run_id != run_id or task.owner is None:
            return None
        state, rk = known
        store, pipe = self._store, self._pipe
        self._want_task = None
        self._mark = pipe.mark()
        server = store._server_clock
        # The clocks the step is decided with (see the module's docstring).
        self._now = store._d.wall() if server else store._now(self._raw)
        self._lease = self._now if server else store._lease_now(self._raw)
        pipe.add_check(ASSUME_RUN_SQL if server else ASSUME_RUN_OWN_CLOCK_SQL,
                       {"b_run_id": run_id, "b_expected": state.last_seq, "b_est": self._now},
                       AssumptionFailed(run_id, task_id), self._shift)
        # The task's check goes with the plan's delete of it, or alone before COMMIT (see _check_task).
        self._task_check = {"b_id": task.id, "b_run_id": run_id, "b_seq": task.seq, "b_owner": task.owner,
                            "b_attempt": task.attempt}
        self._reserve = self._reserve_ids()  # answered at COMMIT, for the transactions after this one
        pipe.held = True
        self._assumed = (run_id, task)
        self._states[run_id] = self._known[run_id] = state
        self._workflow_ids[run_id] = state.record.workflow_id
        self._rks[run_id] = rk
        self._owners[run_id] = None
        self._tasks[task_id] = task
        return state

    @property
    def assuming(self) -> bool:
        """Whether this transaction was decided on state taken from the store's memory (not yet checked)."""
        return self._assumed is not None

    def undo(self) -> None:
        """Forget what this transaction queued since its assumption (nothing of it was sent)."""
        if self._pipe is not None and self._assumed is not None:
            self._pipe.truncate(self._mark)
        self._d.pending_notifications(self._raw)  # (taken: decided again, they are again)
        self._store._activity_ids.extendleft(reversed(self._popped))
        self._popped.clear()

    def _check_task(self, sql: str = ASSUME_ACTIVITY_SQL) -> None:
        """Queue the assumed activity task's check (once): alone, or as the plan's delete of the task.

        After the run's check, as every transaction locks the run before its tasks.
        """
        assert self._pipe is not None
        assert self._assumed is not None
        params, self._task_check = self._task_check, None
        if params is not None:
            run_id, task = self._assumed
            self._pipe.add_check(sql, params, AssumptionFailed(run_id, task.id))

    def done(self) -> None:
        """The transaction's body ended: its queue may be sent; what it leaves is remembered once committed."""
        if self._task_check is not None:
            self._check_task()
        if self._pipe is not None:
            # The notifications of every plan applied (a later plan may have
            # hidden a task an earlier one created: see _task), queued in the
            # transaction (or, in a group commit, in its piece's savepoint).
            for kind in self._d.pending_notifications(self._raw):  # PostgreSQL delivers them at COMMIT
                self._pipe.add_sql("SELECT pg_notify(%(channel)s, %(kind)s)",
                                   {"channel": self._d.channel, "kind": kind})  # type: ignore[attr-defined]
            self._pipe.held = False
        memory = self._memory
        if memory is None:
            return
        runs: dict[str, tuple[RunState, int] | None] = {}
        for run_id, state in self._known.items():
            rk = self._rks.get(run_id)
            runs[run_id] = None if state is None or not state.open or state.task is not None or rk is None \
                else (state if state.inbox is None else replace(state, inbox=None), rk)
        tasks, gone, shift, reserve, est = self._new_tasks, self._gone, self._shift, self._reserve, self._now
        store = self._store

        def after_commit() -> None:
            moved = 0.0
            if shift:  # the transaction's times were moved onto the server's clock by this much
                moved = float(shift[0].fetchone()[0])
                if store._server_clock and est is not None:
                    store._d.saw_clock(est + moved)
            self._reserved(reserve)
            memory.update(runs, [replace(x, scheduled_at=x.scheduled_at + moved) for x in tasks] if moved else tasks,
                          gone)

        self._raw.info.setdefault(AFTER_COMMIT_KEY, []).append(after_commit)

    def _run_row(self, run_id: str, inbox: list[Any] | None = None) -> Any:
        """The run's row with its workflow task's columns (None where it has none), both locked.

        PostgreSQL: in one pipeline with the writes queued before it, then
        (``inbox``: a list to receive its cursor) the run's inbox, the
        activity task asked for by :meth:`prefetch_task` (locked after the
        run, as every transaction locks them) and, when the store runs
        low, activity task ids.
        """
        q = self._q
        if q.run_with_task is not None:  # SQLite: one statement (one writer: nothing to lock)
            return q.run_with_task(self._raw, {"b_run_id": run_id}).first()
        assert q.run_task_clock is not None
        assert self._pipe is not None
        pipe = self._pipe
        answer: list[Any] = []
        pipe.add(q.run_task_clock, {"b_run_id": run_id}, answer)
        if inbox is not None:
            pipe.add(q.inbox_of, {"b_run_id": run_id}, inbox)
        want, self._want_task = self._want_task, None
        task: list[Any] = []
        if want is not None:
            pipe.add(q.task_by_id, {"b_id": want}, task)
        reserved = self._reserve_ids()
        pipe.flush()
        self._reserved(reserved)
        if task:
            self._tasks[want] = task[0].fetchone()  # type: ignore[index]
        row = answer[0].fetchone()
        if row is not None:
            self._seen_clock(row.clock_now)
        return row

    def _seen_clock(self, server_now: float) -> None:
        """A reading of the server's clock that came with a read: it serves as this transaction's clocks.

        Taken while the transaction runs, as a separate ``SELECT
        clock_timestamp()`` would be, one round trip fewer.
        """
        store = self._store
        if not store._server_clock:
            return
        store._d.saw_clock(server_now)
        if self._now is None:
            self._now = server_now
        if self._lease is None and store._server_lease_clock:
            self._lease = server_now

    def entry(self, workflow_id: str, idempotency_key: str | None = None) -> WorkflowEntry | None:
        row = None
        if idempotency_key is not None:
            row = self._one(self._q.workflow_by_key, {"b_key": idempotency_key})
        if row is None:
            row = self._one(self._q.workflow_by_id, {"b_id": workflow_id})
        if row is None:
            return None
        return WorkflowEntry(row.workflow_id, row.workflow, row.input_hash, row.idempotency_key,
                             row.first_run_id, row.current_run_id)

    def task(self, task_id: int) -> TaskState | None:
        # Read ahead with its run (prefetch_task), locked, or now.
        row = self._tasks.pop(task_id) if task_id in self._tasks else self._one(self._q.task_by_id, {"b_id": task_id})
        if row is None or isinstance(row, TaskState):  # (a TaskState: assumed, see _assume)
            return row
        return _task_state(row, row.lease_owner)

    def open_children(self, run_id: str) -> list[str]:
        return [r[0] for r in self._all(self._q.open_children, {"b_run_id": run_id})]

    def leased_runs(self, owner: str) -> list[str]:
        wt = t.workflow_tasks
        return list(self._conn.execute(sa.select(wt.c.run_id).where(wt.c.lease_owner == owner)).scalars())

    def take_due_timers(self, limit: int) -> list[tuple[str, int]]:
        conn = self._conn
        due = conn.execute(
            sa.select(t.timers.c.run_id, t.timers.c.seq)
            .where(t.timers.c.fire_at <= self.now()).order_by(t.timers.c.fire_at).limit(limit)
        ).all()
        taken: list[tuple[str, int]] = []
        for run_id, seq in due:
            self._d.lock_run(conn, run_id)
            # Only the transaction that deletes the timer fires it (another
            # engine may have fired it, or the run cancelled it, meanwhile).
            if self._q.delete_timer(conn, {"b_run_id": run_id, "b_seq": seq}).rowcount:
                taken.append((run_id, seq))
        return taken

    def take_overdue_tasks(self, limit: int) -> list[TaskState]:
        conn, at = self._conn, t.activity_tasks
        now, lease_now = self.now(), self.lease_now()
        rows = conn.execute(
            sa.select(at).where(at.c.deadline <= now)
            .where(sa.or_(at.c.lease_owner.is_(None), at.c.lease_expires < lease_now,
                          at.c.lease_expires > lease_now + LEASE_HORIZON))
            .limit(limit)
        ).all()
        taken: list[TaskState] = []
        for row in rows:
            self._d.lock_run(conn, row.run_id)
            if self._q.delete_overdue(conn, {"b_id": row.id, "b_now": now, "b_lease_now": lease_now}).rowcount:
                taken.append(_task_state(row, None))
        return taken

    # -- schedules -----------------------------------------------------------------

    def schedule(self, schedule_id: str, *, skip_locked: bool = False) -> ScheduleRow | None:
        st = t.schedules
        row = self._conn.execute(
            sa.select(st.c.schedule_id, st.c.due_at, st.c.body).where(st.c.schedule_id == schedule_id)
            .with_for_update(skip_locked=skip_locked)
        ).first()
        return None if row is None else ScheduleRow(row.schedule_id, row.due_at, bytes(row.body))

    def schedules(self) -> list[ScheduleRow]:
        st = t.schedules
        rows = self._conn.execute(sa.select(st.c.schedule_id, st.c.due_at, st.c.body).order_by(st.c.schedule_id))
        return [ScheduleRow(r.schedule_id, r.due_at, bytes(r.body)) for r in rows]

    def put_schedule(self, row: ScheduleRow) -> None:
        st = t.schedules
        values = {"due_at": row.due_at, "body": row.body}
        if not self._conn.execute(st.update().where(st.c.schedule_id == row.schedule_id).values(**values)).rowcount:
            self._conn.execute(st.insert().values(schedule_id=row.schedule_id, **values))

    def delete_schedule(self, schedule_id: str) -> bool:
        st = t.schedules
        return bool(self._conn.execute(st.delete().where(st.c.schedule_id == schedule_id)).rowcount)

    # -- writes --------------------------------------------------------------------

    def apply(self, plan: Plan) -> list[tuple[str, int, int]]:
        if self._assumed is not None:
            self._check_assumable(plan)
        if self._memory is not None:
            self._remember(plan)
        leased = self._apply(plan)
        pipe = self._pipe
        if pipe is None:  # SQLite: statements ran as issued
            return leased
        if any(isinstance(task_id, list) for _queue, task_id, _seq in leased):
            pipe.flush()
            leased = [(queue, int(cursor[0].fetchone()[0]) if isinstance(cursor, list) else cursor, seq)
                      for queue, cursor, seq in leased]
        # Otherwise the writes go with the next read, answer needed or COMMIT.
        if self._memory is not None and leased:
            by_seq = {task.seq: task for task in plan.activities}
            workflow_id = self._workflow_ids.get(plan.run_id)
            for _queue, task_id, seq in leased:
                new = by_seq[seq]
                if new.deadline is None and workflow_id is not None:  # (see _assume's check)
                    self._new_tasks.append(TaskState(
                        task_id, plan.run_id, workflow_id, seq, new.activity, new.queue, new.input, new.options, 1,
                        self.now(), None, new.owner, None))
        return leased

    def _check_assumable(self, plan: Plan) -> None:
        """A plan decided on assumed state is sent with the checks only if it needs no answer before COMMIT
        and touches nothing but the assumed run and activity task; else :class:`Rerun`."""
        assert self._assumed is not None
        run_id, task = self._assumed
        if (plan.run_id != run_id or plan.close is not None or plan.runs or plan.inbox
                or plan.inbox_taken is not None or plan.cancel_activities or plan.stepping_task is not None
                or plan.search_attributes or plan.expect_owner is not None
                or (plan.task is not None and plan.task.kind not in ("done", "wake", "none"))
                or any(task_id != task.id for task_id in plan.drop_tasks)
                or (plan.retry is not None and plan.retry.task_id != task.id)):
            raise Rerun

    def _remember(self, plan: Plan) -> None:
        """The run's state once ``plan`` is applied, if it is known (see _memory); the tasks it changes."""
        self._gone.update(plan.drop_tasks)
        if plan.retry is not None:
            self._gone.add(plan.retry.task_id)
        before = self._known.get(plan.run_id)
        after: RunState | None = None
        if (before is not None and plan.close is None and not plan.runs and not plan.search_attributes
                and (plan.task is None or plan.task.kind == "done")
                and (not plan.events or plan.expect_seq == before.last_seq)):
            after = before if not plan.events else replace(
                before, record=replace(before.record, last_seq=before.last_seq + len(plan.events)))
            if plan.task is not None and after.task is not None:
                after = replace(after, task=None)
        self._known[plan.run_id] = after

    def _write(self, stmt: Statement, params: dict[str, Any], times: tuple[str, ...] = ()) -> None:
        """Execute a write whose answer is not needed: queued on PostgreSQL.

        ``times``: the parameters that are times on the store's clocks (moved onto the server's clock
        when the transaction was decided on assumed state).
        """
        if self._pipe is None:
            stmt(self._raw, params)
        else:
            self._pipe.add(stmt, params, shift=times if self._assumed is not None else ())

    def _sent(self) -> Connection:
        """The connection, with queued writes sent first (before a read, or a statement through SQLAlchemy)."""
        return self._conn

    def _apply(self, plan: Plan) -> list[Any]:
        q = self._q
        now = self.now()
        run_id = plan.run_id
        if plan.events or plan.inbox or plan.inbox_taken is not None or plan.close or plan.task or plan.runs:
            self._states.pop(run_id, None)  # read again if asked: it changes
        if plan.expect_owner is not None:
            if run_id in self._owners:
                holder = self._owners[run_id]
            else:
                found = self._one(q.wft_owner, {"b_run_id": run_id})
                holder = None if found is None else found[0]
            if holder != plan.expect_owner:
                raise LeaseLostError(run_id, plan.expect_owner, holder)
        for new in plan.runs:
            self._create(new, now)
        workflow_id: str | None = None
        rk: int | None = None
        if plan.events:
            if plan.expect_seq is None:
                raise StoreError(f"a plan for run {run_id} appends events without an expected last event number")
            last = plan.expect_seq + len(plan.events)
            # The conditional update is the fence: the run has not moved, and is open.
            move = {"b_run_id": run_id, "b_expected": plan.expect_seq, "b_last": last}
            if self._pipe is None:
                found = q.move_seq(self._raw, move).first()
                if found is None:
                    raise ConflictError(run_id, plan.expect_seq)
                workflow_id, rk = found[0], found[1]
            else:
                # Queued with the events it guards, unanswered: if it does not
                # hold, it fails the transaction when sent (ConflictError,
                # nothing written). So the events take the run's key from the
                # run's read (or, for a run not read here, from a subquery).
                self._pipe.add_fence(FENCE_SQL, run_id, plan.expect_seq, last)
                workflow_id = self._workflow_ids.get(run_id)
                rk = self._rks.get(run_id)
            self._insert_events(run_id, rk, plan.expect_seq + 1, plan.events, now, keep_first_at=plan.keep_first_at)
        for event in plan.inbox:
            type_name, meta, payload = ev.encode_event(event)
            self._write(q.insert_inbox, {"run_id": run_id, "type": type_name, "meta": meta, "payload": payload})
        if plan.inbox_taken is not None:
            self._write(q.delete_inbox, {"b_run_id": run_id, "b_max": plan.inbox_taken})
        leased: list[Any] = []
        if plan.activities:
            if workflow_id is None:
                workflow_id = self._workflow_ids.get(run_id)
            if workflow_id is None:
                workflow_id = self._one(q.run_locked, {"b_run_id": run_id}).workflow_id
                self._workflow_ids[run_id] = workflow_id
            leased = self._insert_activities(run_id, workflow_id, plan, now)
        if plan.retry is not None:
            if self._task_check is not None:  # the assumed task (see _check_assumable)
                self._check_task()
            r = plan.retry
            self._write(q.retry_task, {"b_id": r.task_id, "b_attempt": r.attempt, "b_visible_at": r.visible_at,
                                "b_failure": None if r.failure is None else orjson.dumps(r.failure.to_json())},
                        ("b_visible_at",))
        if plan.stepping_task is not None:
            at = t.activity_tasks
            self._sent().execute(at.update().where(at.c.id == plan.stepping_task).values(stepping=1))
        for task_id in plan.drop_tasks:
            if self._task_check is not None:  # the assumed task (see _check_assumable): deleted where checked
                self._check_task(DELETE_ASSUMED_ACTIVITY_SQL)
                continue
            self._write(q.delete_task, {"b_id": task_id})
        for seq in plan.drop_activities:
            self._write(q.delete_activity, {"b_run_id": run_id, "b_seq": seq})
        if plan.cancel_activities:
            at = t.activity_tasks
            self._sent().execute(at.update().where(at.c.run_id == run_id, at.c.seq.in_(plan.cancel_activities))
                         .values(cancel_requested=1, visible_at=sa.func.min(at.c.visible_at, now)
                                 if self._raw.dialect.name == "sqlite" else sa.func.least(at.c.visible_at, now)))
        for seq, fire_at in plan.timers:
            self._write(q.insert_timer, {"run_id": run_id, "seq": seq, "fire_at": fire_at}, ("fire_at",))
        for seq in plan.drop_timers:
            self._write(q.delete_timer, {"b_run_id": run_id, "b_seq": seq})
        if plan.search_attributes:
            self._upsert_attributes(run_id, plan.search_attributes)
        if plan.close is not None:
            c = plan.close
            self._write(q.close_run, {
                "b_run_id": run_id, "b_status": c.status, "b_closed_at": now, "b_result": c.result,
                "b_failure": None if c.failure is None else orjson.dumps(c.failure.to_json()),
                "b_next_run_id": c.next_run_id,
            })
            self._d.notify(self._raw, f"{CLOSED} {run_id}")  # waiters elsewhere read this run alone
            self._write(q.delete_run_tasks, {"b_run_id": run_id})
            self._write(q.delete_run_timers, {"b_run_id": run_id})
        if plan.task is not None:
            self._task(run_id, plan.task.kind, plan.task, now)
        return leased

    def _task(self, run_id: str, kind: str, change: Any, now: float) -> None:
        q = self._q
        if kind == "wake":
            self._wake(run_id, now)
        elif kind == "done":
            if self._assumed is None:  # (assumed: checked to have none, under the run's lock)
                self._write(q.delete_wft, {"b_run_id": run_id})
            self._owners.pop(run_id, None)
        elif kind == "keep":
            self._write(q.set_signals, {"b_run_id": run_id, "b_signals": change.signals})
        elif kind == "stepping":
            wt = t.workflow_tasks
            self._sent().execute(wt.update().where(wt.c.run_id == run_id).values(stepping=1))
        elif kind == "backoff":
            values: dict[str, Any] = {
                "b_run_id": run_id, "b_visible_at": change.visible_at,
                "b_failure": None if change.failure is None else orjson.dumps(change.failure.to_json()),
                "b_failed_by": f" {' '.join(change.failed_by)} " if change.failed_by else None,
            }
            if change.visible_at > now:  # hidden (a held or delayed start): nobody is to claim it now
                self._d.withdraw(self._raw, f"{WORKFLOW} {run_id}")
            if change.attempts is None:
                self._write(q.backoff_wft, values)
            else:
                self._write(q.backoff_wft_attempts, {**values, "b_attempts": change.attempts})
            self._owners[run_id] = None
        if change.add_signals:
            self._write(q.add_signals, {"b_run_id": run_id, "b_add": change.add_signals})

    def _wake(self, run_id: str, now: float) -> None:
        # One pending workflow task per run: an existing one (leased or not)
        # will see the new events, or fail its commit on the moved last_seq.
        self._write(self._q.wake, {
            "run_id": run_id, "visible_at": now, "lease_owner": None, "lease_expires": None,
            "attempts": 0, "signals": 0, "failure": None, "failed_by": None, "lapses": 0, "stepping": 0,
        }, ("visible_at",))
        self._d.notify(self._raw, f"{WORKFLOW} {run_id}")  # (withdrawn if the task is hidden: see _task)

    def _insert_events(
        self, run_id: str, rk: int | None, first_seq: int, items: list[ev.Event], now: float, *,
        keep_first_at: bool = False,
    ) -> None:
        """Insert a run's events, keyed by its integer key ``rk``.

        ``rk`` None (PostgreSQL, a run neither read nor created in this
        transaction): the insert takes the key from the run's row itself.
        """
        rows: list[dict[str, Any]] = []
        codes = t.EVENT_CODES
        for i, event in enumerate(items):
            if event.seq != first_seq + i:
                raise StoreError(f"event {event.type} of run {run_id} numbered {event.seq}, expected {first_seq + i}")
            type_name, meta, payload = ev.encode_event(event)
            rows.append({"rk": rk, "seq": first_seq + i, "type": codes[type_name],
                         "at": event.at if keep_first_at and i == 0 else now, "meta": meta, "payload": payload})
        if not rows:
            return
        if self._pipe is None:
            self._q.insert_events.many(self._raw, rows)
            return
        times: tuple[str, ...] = ()
        moves: list[float] | None = None
        if self._assumed is not None:
            times = ("at",)
            if keep_first_at:  # its own time, not the transaction's: it stays
                moves = [0.0] + [1.0] * (len(rows) - 1)
        if rk is not None:
            self._pipe.add_many(self._q.insert_events, rows, times, moves)
        else:
            assert self._q.insert_events_of_run is not None
            for row in rows:
                del row["rk"]
                row["b_run_id"] = run_id
            self._pipe.add_many(self._q.insert_events_of_run, rows, times, moves)

    def _insert_activities(
        self, run_id: str, workflow_id: str, plan: Plan, now: float
    ) -> list[Any]:
        """Insert the plan's activity tasks; the leased ones as (queue, id, seq), the id a list
        holding its cursor when the insert is queued (PostgreSQL)."""
        leased: list[Any] = []
        notify = False
        for task in plan.activities:
            params: dict[str, Any] = {
                "run_id": run_id, "workflow_id": workflow_id, "seq": task.seq, "activity": task.activity,
                "queue": task.queue, "input": task.input, "options": orjson.dumps(task.options), "attempt": 1,
                "scheduled_at": now, "deadline": task.deadline, "visible_at": now,
                "lease_owner": task.owner,
                "lease_expires": self.lease_now() + task.lease if task.owner is not None else None,
                "last_failure": None, "started_at": now if task.owner is not None else None,
                "lapses": 0, "deaths": 0, "stepping": 0, "cancel_requested": 0,
            }
            task_id: Any
            if self._pipe is not None:
                # Leased: its id is needed before COMMIT, so it comes from the
                # reserved ones if any are left (else the insert's answer).
                task_id = self._reserved_id() if task.owner is not None else None
                times = _ACTIVITY_TIMES if self._assumed is not None else ()
                if task_id is not None:
                    params["id"] = task_id
                    self._pipe.add(self._q.insert_activity, params, shift=times)
                else:
                    task_id = [] if task.owner is not None else None
                    self._pipe.add(self._q.insert_activity, params, task_id, shift=times)
            else:
                task_id = self._q.insert_activity.insert(self._raw, params)
            if task.owner is not None:
                leased.append((task.queue, task_id, task.seq))
            else:
                notify = True
        if notify:
            self._d.notify(self._raw, ACTIVITY)
        return leased

    def _upsert_attributes(self, run_id: str, changes: dict[str, str | None]) -> None:
        """Apply changes to a run's search attributes: its column and its rows in the index table."""
        conn, sat = self._sent(), t.search_attributes
        raw = conn.execute(sa.select(t.runs.c.search_attributes).where(t.runs.c.run_id == run_id)).scalar()
        merged = merge(orjson.loads(raw) if raw else None, changes)
        conn.execute(t.runs.update().where(t.runs.c.run_id == run_id)
                     .values(search_attributes=orjson.dumps(merged) if merged else None))
        conn.execute(sat.delete().where(sat.c.run_id == run_id, sat.c.name.in_(sorted(changes))))
        added = [{"run_id": run_id, "name": n, "value": v} for n, v in sorted(changes.items()) if v is not None]
        if added:
            conn.execute(sat.insert(), added)

    def _create(self, new: NewRun, now: float) -> None:
        q = self._q
        wf = t.workflows
        # The workflow id's row first, naming the new run by the key it will
        # have: a start that finds the id taken meanwhile writes nothing.
        rk: int | None
        if new.entry == "new":
            # PostgreSQL: sent with the writes queued before it; its answer decides.
            inserted = self._one(q.insert_workflow, {
                "b_workflow_id": new.workflow_id, "b_workflow": new.workflow, "b_input_hash": new.input_hash,
                "b_idempotency_key": new.idempotency_key, "b_created_at": now,
            })
            if inserted is None:  # taken meanwhile (PostgreSQL: a concurrent start)
                raise ConflictError(new.run_id, 0)
            rk = inserted[0]
        elif new.entry == "reuse":
            conn = self._sent()
            rk = q.next_rk(conn).scalar()
            # Fenced on the current run: of two starts that follow the same closed run, one wins.
            replaces = sa.select(t.runs.c.rk).where(t.runs.c.run_id == new.replaces).scalar_subquery()
            done = conn.execute(
                wf.update().where(wf.c.workflow_id == new.workflow_id, wf.c.current_rk == replaces)
                .values(workflow=new.workflow, input_hash=new.input_hash, idempotency_key=new.idempotency_key,
                        first_rk=rk, current_rk=rk))
            if done.rowcount != 1:
                raise ConflictError(new.run_id, 0)
        else:  # "current": the run continues the id's current one (continue-as-new), it takes the next key
            rk = None
        row = {
            "rk": rk, "run_id": new.run_id, "workflow_id": new.workflow_id, "workflow": new.workflow,
            "status": "running",
            "created_at": now, "closed_at": None, "last_seq": len(new.events), "result": None, "failure": None,
            "parent_run_id": new.parent_run_id, "parent_seq": new.parent_seq, "next_run_id": None,
            "parent_close_policy": new.parent_close_policy,
            "search_attributes": orjson.dumps(new.search_attributes) if new.search_attributes else None,
            "memo": None if new.memo is None else orjson.dumps(new.memo),
        }
        if rk is not None:
            self._write(q.insert_run, row)  # PostgreSQL: queued
        else:
            del row["rk"]
            conn = self._sent()
            rk = q.insert_run.insert(conn, row)
            conn.execute(wf.update().where(wf.c.workflow_id == new.workflow_id).values(current_rk=rk))
        self._workflow_ids[new.run_id] = new.workflow_id
        self._rks[new.run_id] = rk
        if new.search_attributes:
            self._sent().execute(t.search_attributes.insert(), [
                {"run_id": new.run_id, "name": name, "value": value}
                for name, value in sorted(new.search_attributes.items())])
        self._insert_events(new.run_id, rk, 1, new.events, now, keep_first_at=True)
        if new.wake:
            self._wake(new.run_id, now)


def _task_state(row: Any, owner: str | None) -> TaskState:
    return TaskState(
        id=row.id, run_id=row.run_id, workflow_id=row.workflow_id, seq=row.seq, activity=row.activity,
        queue=row.queue, input=row.input, options=orjson.loads(row.options), attempt=row.attempt,
        scheduled_at=row.scheduled_at, deadline=row.deadline, owner=owner,
        last_failure=Failure.from_json(orjson.loads(row.last_failure)) if row.last_failure else None,
        cancel_requested=bool(row.cancel_requested),
    )
