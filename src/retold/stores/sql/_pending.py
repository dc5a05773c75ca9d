"""The read behind ``describe()``'s pending work: a run's tasks, timers, open children and unseen signals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import RunNotFoundError
from ...history import events as ev
from ...history.failure import Failure
from .._pending import ActivityRow, ChildRow, RunWork, SignalRow, TimerRow
from . import _schema as t
from ._statements import LEASE_HORIZON

if TYPE_CHECKING:
    from ._store import SqlStore

__all__ = ["read_pending"]

_COMMANDS = [t.EVENT_CODES[cls.__name__] for cls in ev.COMMAND_TYPES]
_SIGNAL = t.EVENT_CODES[ev.SignalReceived.__name__]


def read_pending(conn: Connection, store: SqlStore, run_id: str) -> RunWork:
    """What ``run_id`` waits for, read in one (read) transaction on ``conn``."""
    rk = conn.execute(sa.select(t.runs.c.rk).where(t.runs.c.run_id == run_id)).scalar()
    if rk is None:
        raise RunNotFoundError(run_id)
    now, lease_now = store._now(conn), store._lease_now(conn)

    def live(expires: float | None) -> bool:
        return expires is not None and lease_now <= expires <= lease_now + LEASE_HORIZON

    at, tm, wt, ib, e = t.activity_tasks, t.timers, t.workflow_tasks, t.inbox, t.events
    activities = tuple(
        ActivityRow(
            seq=r.seq, activity=r.activity, queue=r.queue, attempt=r.attempt, options=orjson.loads(r.options),
            scheduled_at=r.scheduled_at, visible_at=r.visible_at,
            started_at=r.started_at if live(r.lease_expires) else None,
            owner=r.lease_owner if live(r.lease_expires) else None,
            last_failure=Failure.from_json(orjson.loads(r.last_failure)) if r.last_failure else None,
        )
        for r in conn.execute(sa.select(at).where(at.c.run_id == run_id).order_by(at.c.seq))
    )
    timers = tuple(TimerRow(r.seq, r.fire_at) for r in conn.execute(
        sa.select(tm.c.seq, tm.c.fire_at).where(tm.c.run_id == run_id).order_by(tm.c.fire_at, tm.c.seq)))
    children = tuple(ChildRow(r.parent_seq, r.run_id, r.workflow_id, r.workflow) for r in conn.execute(
        sa.select(t.runs.c.parent_seq, t.runs.c.run_id, t.runs.c.workflow_id, t.runs.c.workflow)
        .where(t.runs.c.parent_run_id == run_id, t.runs.c.status == "running")
        .order_by(t.runs.c.parent_seq, t.runs.c.run_id)))
    # Signals in the history after the last command were recorded since the run's last step.
    last_command = conn.execute(sa.select(sa.func.max(e.c.seq)).where(
        e.c.rk == rk, e.c.type.in_(_COMMANDS))).scalar() or 0
    signals = [
        SignalRow(str(orjson.loads(r.meta).get("name", "")), r.seq, r.at) for r in conn.execute(
            sa.select(e.c.seq, e.c.at, e.c.meta).where(
                e.c.rk == rk, e.c.seq > last_command, e.c.type == _SIGNAL,
            ).order_by(e.c.seq))
    ]
    signals += [
        SignalRow(str(orjson.loads(r.meta).get("name", "")), None, None) for r in conn.execute(
            sa.select(ib.c.meta).where(ib.c.run_id == run_id, ib.c.type == ev.SignalReceived.__name__)
            .order_by(ib.c.id))
    ]
    task = conn.execute(sa.select(wt.c.visible_at, wt.c.lease_owner, wt.c.lease_expires, wt.c.attempts)
                        .where(wt.c.run_id == run_id)).first()
    workflow_task = None if task is None else (
        task.visible_at, task.lease_owner if live(task.lease_expires) else None, task.attempts)
    return RunWork(run_id, activities, timers, children, tuple(signals), workflow_task, now)
