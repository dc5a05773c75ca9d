"""The SQL statements of the hot paths, built once per store: SQLAlchemy then only binds values."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import _schema as t
from ._dialect import Insert
from ._fast import Statement

__all__ = [
    "ASSUME_ACTIVITY_SQL", "ASSUME_RUN_OWN_CLOCK_SQL", "ASSUME_RUN_SQL", "DELETE_ASSUMED_ACTIVITY_SQL", "FENCE_SQL",
    "LEASE_HORIZON", "RESERVE_IDS_SQL", "Statements", "lease_free",
]

_B = sa.bindparam

# A lease that ends further than this in the future was taken on another
# boot of the machine (SQLite's lease clock counts from boot): it is over.
LEASE_HORIZON = 86_400.0


# PostgreSQL: the ``last_seq`` fence of an append as a statement that fails
# when it does not hold (the run moved, or closed), so that it can be sent
# with the events it guards without waiting for its answer: the failure
# aborts the rest of the pipeline and the transaction (see _pipeline). The
# conditional UPDATE locks the run's row, and under READ COMMITTED
# re-checks its condition on the row's newest version after waiting for a
# concurrent writer, as before. The error is a failed cast of a text that
# depends on the row count, so the planner cannot fold it into a constant.
FENCE_SQL = (
    f"WITH moved AS (UPDATE {t.runs.name} SET last_seq = %(b_last)s"  # noqa: S608 - values are bound
    " WHERE run_id = %(b_run_id)s AND last_seq = %(b_expected)s AND status = 'running' RETURNING 1)"
    " SELECT CASE WHEN count(*) = 1 THEN 0"
    " ELSE CAST(%(b_key)s::text || count(*)::text AS integer) END FROM moved"
)

# PostgreSQL: the checks of a transaction decided on what the store remembers
# (see _memory, SqlTx), each failing the transaction (as FENCE_SQL does) when
# what it checks is not so.
#
# The run, sent first: open, at the remembered last event number, its row
# locked (the lock every transaction that changes the run takes first; under
# READ COMMITTED a locked row's condition is checked again on its newest
# version once the lock is granted), and no workflow task. A workflow task
# is only ever created for an existing run by a transaction that appends to
# it (``TaskChange("wake")`` comes with events), so holding the run's lock
# and moving its ``last_seq``: one committed before this statement's
# snapshot is seen; one committed since moved ``last_seq``, and the run's
# row fails its check again. Then, the lock held, the server's clock is read
# and kept for the rest of the transaction as its difference from the
# estimate the step was decided with (%(b_est)s): the transaction's times
# are written moved by it (``_pipeline.shifted``), so on the server's clock.
_ASSUME_RUN = (
    "SELECT CASE WHEN count(*) = 1 THEN set_config('retold.shift', {shift}, true)"
    " ELSE CAST(%(b_key)s::text || count(*)::text AS integer)::text END"
    " FROM (SELECT 1 FROM {runs} r WHERE run_id = %(b_run_id)s AND last_seq = %(b_expected)s"
    " AND status = 'running' AND NOT EXISTS (SELECT 1 FROM {tasks} w WHERE w.run_id = r.run_id)"
    " FOR UPDATE OF r) c"
)
ASSUME_RUN_SQL = _ASSUME_RUN.format(
    runs=t.runs.name, tasks=t.workflow_tasks.name,
    shift="(extract(epoch FROM clock_timestamp())::float8 - %(b_est)s::float8)::text")
# The same with a clock of the store's own (tests): the times stay as decided.
ASSUME_RUN_OWN_CLOCK_SQL = _ASSUME_RUN.format(runs=t.runs.name, tasks=t.workflow_tasks.name, shift="'0'")
# The activity task: the same attempt of the same activity, held by the same
# owner (as ``Tx.task`` reports it: its lease's end is not judged), no
# cancellation waited for and no deadline (see SqlTx._assume), its row
# locked after the run's, as every transaction locks them. As a delete (a
# step that records the attempt's final outcome), or alone.
_TASK_IS = (
    "id = %(b_id)s AND run_id = %(b_run_id)s AND seq = %(b_seq)s AND lease_owner = %(b_owner)s"
    " AND attempt = %(b_attempt)s AND cancel_requested = 0 AND deadline IS NULL"
)
ASSUME_ACTIVITY_SQL = (
    "SELECT CASE WHEN count(*) = 1 THEN 0 ELSE CAST(%(b_key)s::text || count(*)::text AS integer) END"  # noqa: S608
    f" FROM (SELECT 1 FROM {t.activity_tasks.name} WHERE {_TASK_IS} FOR UPDATE) a"
)
DELETE_ASSUMED_ACTIVITY_SQL = (
    f"WITH d AS (DELETE FROM {t.activity_tasks.name} WHERE {_TASK_IS} RETURNING 1)"  # noqa: S608
    " SELECT CASE WHEN count(*) = 1 THEN 0 ELSE CAST(%(b_key)s::text || count(*)::text AS integer) END FROM d"
)

# PostgreSQL: activity task ids taken from the table's sequence ahead of
# use, so that a transaction that leases the activity it inserts knows its
# id without waiting for the insert's answer (sequence values are never
# handed out twice, whichever transaction or process takes them).
RESERVE_IDS_SQL = (
    f"SELECT nextval(pg_get_serial_sequence('{t.activity_tasks.name}', 'id'))"  # noqa: S608 - the count is bound
    " FROM generate_series(1, %(n)s)"
)


def lease_free(table: sa.Table) -> Any:
    """The task's lease is free: nobody holds it, it ran out by the lease clock, or it is from another boot."""
    return sa.or_(
        table.c.lease_owner.is_(None),
        table.c.lease_expires < _B("b_lease_now"),
        table.c.lease_expires > _B("b_lease_now") + LEASE_HORIZON,
    )


class Statements:
    """Statements of the hot paths, built once per store: SQLAlchemy then only binds values."""

    def __init__(self, insert: Insert, direct: sa.Dialect | None) -> None:
        """``direct``: the dialect to compile for and run on the driver (SQLite), else None."""
        wt, at = t.workflow_tasks, t.activity_tasks

        def fast(stmt: Any) -> Statement:
            return Statement(stmt, direct)

        self.wft_attempts = fast(
            sa.select(wt.c.attempts, wt.c.failure, wt.c.lapses).where(wt.c.run_id == _B("b_run_id")))
        self.run_by_id = fast(sa.select(t.runs).where(t.runs.c.run_id == _B("b_run_id")))
        # A run read to decide on: locked until the transaction ends (PostgreSQL).
        self.run_locked = fast(sa.select(t.runs).where(t.runs.c.run_id == _B("b_run_id")).with_for_update())
        # SQLite: the run and its task in one statement (its one writer needs no row locks).
        self.run_with_task: Statement | None = None if direct is None else fast(
            sa.select(t.runs, wt.c.lease_owner, wt.c.lease_expires, wt.c.attempts, wt.c.signals,
                      wt.c.failure.label("task_failure"), wt.c.failed_by, wt.c.lapses)
            .select_from(t.runs.outerjoin(wt, wt.c.run_id == t.runs.c.run_id))
            .where(t.runs.c.run_id == _B("b_run_id"))
        )
        # PostgreSQL: the run, its task and the server's clock in one round
        # trip. The run's row is locked first (in its own subquery), then the
        # task's, the order every other transaction takes them in.
        self.run_task_clock: Statement | None = None
        self.clock: Statement | None = None
        if direct is None:
            run = sa.select(t.runs).where(t.runs.c.run_id == _B("b_run_id")).with_for_update().subquery("r")
            task = (
                sa.select(wt.c.lease_owner, wt.c.lease_expires, wt.c.attempts, wt.c.signals,
                          wt.c.failure.label("task_failure"), wt.c.failed_by, wt.c.lapses)
                .where(wt.c.run_id == run.c.run_id).with_for_update().lateral("w")
            )
            clock = sa.func.extract("epoch", sa.func.clock_timestamp()).cast(sa.Float(53)).label("clock_now")
            self.run_task_clock = fast(
                sa.select(run, task, clock).select_from(run.outerjoin(task, sa.true())))
            self.clock = fast(sa.select(clock))
        self.wft_of = fast(
            sa.select(wt.c.lease_owner, wt.c.lease_expires, wt.c.attempts, wt.c.signals, wt.c.failure, wt.c.failed_by,
                      wt.c.lapses)
            .where(wt.c.run_id == _B("b_run_id")).with_for_update()
        )
        wf, runs = t.workflows, t.runs
        self.current_run = fast(
            sa.select(runs.c.run_id).select_from(wf.join(runs, runs.c.rk == wf.c.current_rk))
            .where(wf.c.workflow_id == _B("b_id")))
        self.insert_events = fast(t.events.insert())
        # PostgreSQL: events of a run whose key this transaction has not
        # read, queued behind the run's fence (which sends no answer back):
        # the key from the run's row, looked up by the insert itself.
        self.insert_events_of_run: Statement | None = None if direct is not None else fast(
            t.events.insert().values(
                rk=sa.select(runs.c.rk).where(runs.c.run_id == _B("b_run_id")).scalar_subquery()).inline())
        self.insert_run = fast(t.runs.insert())
        self.wake = fast(insert(wt).on_conflict_do_nothing(index_elements=["run_id"]))
        self.move_seq = fast(
            t.runs.update()
            .where(t.runs.c.run_id == _B("b_run_id"), t.runs.c.last_seq == _B("b_expected"),
                   t.runs.c.status == "running")
            .values(last_seq=_B("b_last"))
            .returning(t.runs.c.workflow_id, t.runs.c.rk)
        )
        self.wft_owner = fast(sa.select(wt.c.lease_owner).where(wt.c.run_id == _B("b_run_id")).with_for_update())
        ib = t.inbox
        self.insert_inbox = fast(ib.insert())
        self.inbox_of = fast(
            sa.select(ib.c.id, ib.c.type, ib.c.meta, ib.c.payload)
            .where(ib.c.run_id == _B("b_run_id")).order_by(ib.c.id)
        )
        self.delete_inbox = fast(ib.delete().where(ib.c.run_id == _B("b_run_id"), ib.c.id <= _B("b_max")))
        self.add_signals = fast(
            wt.update().where(wt.c.run_id == _B("b_run_id")).values(signals=wt.c.signals + _B("b_add")))
        # A step committed and the task stays ours (its inbox followed): its
        # earlier attempts were not fatal, so they no longer count, nor does
        # any suspicion, and the run is no longer blocked.
        self.set_signals = fast(wt.update().where(wt.c.run_id == _B("b_run_id")).values(
            signals=_B("b_signals"), attempts=0, failure=None, failed_by=None, lapses=0, stepping=0))
        self.events_after = fast(
            sa.select(t.events.c.seq, t.events.c.at, t.events.c.type, t.events.c.meta, t.events.c.payload)
            .where(t.events.c.rk == _B("b_rk"), t.events.c.seq > _B("b_after"))
            .order_by(t.events.c.seq)
        )
        self.events_page = fast(
            sa.select(t.events.c.seq, t.events.c.at, t.events.c.type, t.events.c.meta, t.events.c.payload)
            .where(t.events.c.rk == _B("b_rk"), t.events.c.seq > _B("b_after"))
            .order_by(t.events.c.seq).limit(_B("b_limit"))
        )
        self.insert_activity = fast(at.insert())
        self.insert_timer = fast(t.timers.insert())
        self.delete_timer = fast(t.timers.delete().where(
            t.timers.c.run_id == _B("b_run_id"), t.timers.c.seq == _B("b_seq")))
        self.delete_wft = fast(wt.delete().where(wt.c.run_id == _B("b_run_id")))
        # A workflow task handed back, visible again at b_visible_at (TaskChange "backoff"), with or
        # without a new count of deaths.
        backoff: dict[str, Any] = {
            "visible_at": _B("b_visible_at"), "lease_owner": None, "lease_expires": None, "stepping": 0,
            "failure": _B("b_failure"), "failed_by": _B("b_failed_by")}
        self.backoff_wft = fast(wt.update().where(wt.c.run_id == _B("b_run_id")).values(**backoff))
        self.backoff_wft_attempts = fast(wt.update().where(wt.c.run_id == _B("b_run_id")).values(
            **backoff, attempts=_B("b_attempts")))
        self.task_by_id = fast(sa.select(at).where(at.c.id == _B("b_id")).with_for_update())
        self.delete_task = fast(at.delete().where(at.c.id == _B("b_id")))
        self.delete_activity = fast(at.delete().where(at.c.run_id == _B("b_run_id"), at.c.seq == _B("b_seq")))
        self.delete_overdue = fast(at.delete().where(
            at.c.id == _B("b_id"), at.c.deadline <= _B("b_now"), lease_free(at)))
        # A workflow id's row with its first and current runs' ids (it holds their keys).
        first, current = runs.alias("f"), runs.alias("c")
        entry = (
            sa.select(wf.c.workflow_id, wf.c.workflow, wf.c.input_hash, wf.c.idempotency_key,
                      sa.func.coalesce(first.c.run_id, current.c.run_id).label("first_run_id"),
                      current.c.run_id.label("current_run_id"))
            .select_from(wf.join(current, current.c.rk == wf.c.current_rk)
                         .outerjoin(first, first.c.rk == wf.c.first_rk))
        )
        self.workflow_by_id = fast(entry.where(wf.c.workflow_id == _B("b_id")))
        self.workflow_by_key = fast(entry.where(wf.c.idempotency_key == _B("b_key")))
        self.close_run = fast(t.runs.update().where(t.runs.c.run_id == _B("b_run_id")).values(
            status=_B("b_status"), closed_at=_B("b_closed_at"), result=_B("b_result"),
            failure=_B("b_failure"), next_run_id=_B("b_next_run_id")))
        self.delete_run_tasks = fast(at.delete().where(at.c.run_id == _B("b_run_id")))
        self.delete_run_timers = fast(t.timers.delete().where(t.timers.c.run_id == _B("b_run_id")))
        self.open_children = fast(sa.select(t.runs.c.run_id).where(
            t.runs.c.parent_run_id == _B("b_run_id"), t.runs.c.status == "running"))
        self.retry_task = fast(at.update().where(at.c.id == _B("b_id")).values(
            attempt=_B("b_attempt"), visible_at=_B("b_visible_at"), lease_owner=None, lease_expires=None,
            last_failure=_B("b_failure"), started_at=None, stepping=0, lapses=0))
        # The key the next run takes. SQLite hands out max + 1 as the rowid
        # would (its writers are serialised); PostgreSQL takes it from the
        # key's sequence before the run is inserted.
        next_key: Any = (
            sa.select(sa.func.coalesce(sa.func.max(runs.c.rk), 0) + 1).scalar_subquery() if direct is not None
            else sa.func.nextval(sa.func.pg_get_serial_sequence("retold_runs", "rk")))
        self.next_rk = fast(sa.select(next_key))
        # A new workflow id's row, naming the run about to be inserted by its
        # key (taken here, once), before anything else is written: if the id
        # is taken meanwhile (PostgreSQL: a concurrent start), nothing is.
        # RETURNING says whether the row went in (psycopg reports no rowcount
        # for it) and gives the key.
        key = sa.select(next_key.label("rk")).subquery("k")
        self.insert_workflow = fast(
            insert(wf).from_select(
                ["workflow_id", "workflow", "input_hash", "idempotency_key", "first_rk", "current_rk", "created_at"],
                sa.select(_B("b_workflow_id", type_=sa.String), _B("b_workflow", type_=sa.String),
                          _B("b_input_hash", type_=sa.String), _B("b_idempotency_key", type_=sa.String),
                          key.c.rk, key.c.rk, _B("b_created_at", type_=sa.Float))
                .select_from(key).where(sa.true()))  # SQLite: an upsert's SELECT needs a WHERE
            .on_conflict_do_nothing().returning(wf.c.current_rk))
        self.claim_workflows = (
            sa.select(wt.c.run_id, wt.c.lease_owner, wt.c.stepping, wt.c.lapses)
            .join(t.runs, t.runs.c.run_id == wt.c.run_id)
            .where(t.runs.c.workflow.in_(_B("b_names", expanding=True)))
            # Due, or blocked under code other than the claimer's: other code may not fail.
            .where(sa.or_(wt.c.visible_at <= _B("b_now"),
                          sa.and_(wt.c.failed_by.is_not(None), sa.not_(wt.c.failed_by.like(_B("b_fp"))))))
            .where(lease_free(wt))
            .order_by(wt.c.visible_at)
            .limit(_B("b_limit"))
            .with_for_update(skip_locked=True, of=wt)  # only the task rows, never the runs
        )
        self.claim_activities = (
            sa.select(at)
            .where(at.c.queue == _B("b_queue"), at.c.activity.in_(_B("b_names", expanding=True)),
                   at.c.visible_at <= _B("b_now"))
            .where(lease_free(at))
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
