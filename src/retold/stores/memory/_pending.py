"""The memory store's read of a run's pending work (see ``Store.pending_work``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ...errors import RunNotFoundError
from ...history import events as ev
from ...history.failure import Failure
from .._pending import ActivityRow, ChildRow, RunWork, SignalRow, TimerRow
from ._tx import LEASE_HORIZON

if TYPE_CHECKING:
    from ._store import MemoryStore

__all__ = ["read"]


def read(s: MemoryStore, run_id: str) -> RunWork:
    """What ``run_id`` waits for; the caller holds the store's lock."""
    run = s.runs.get(run_id)
    if run is None:
        raise RunNotFoundError(run_id)
    now, lease_now = s.now(), s.lease_now()

    def live(expires: float | None) -> bool:
        return expires is not None and lease_now <= expires <= lease_now + LEASE_HORIZON

    tasks = sorted((s.tasks[i] for i in s.run_tasks.get(run_id, {}).values()), key=lambda task: task.seq)
    activities = tuple(
        ActivityRow(
            seq=task.seq, activity=task.activity, queue=task.queue, attempt=task.attempt,
            options=orjson.loads(task.options), scheduled_at=task.scheduled_at, visible_at=task.visible_at,
            started_at=task.started_at if live(task.expires) else None,
            owner=task.owner if live(task.expires) else None,
            last_failure=Failure.from_json(orjson.loads(task.last_failure)) if task.last_failure is not None else None,
        )
        for task in tasks
    )
    timers = tuple(TimerRow(seq, at) for seq, at in sorted(s.timers.get(run_id, {}).items(),
                                                            key=lambda item: (item[1], item[0])))
    kids = [s.runs[c] for c in s.children.get(run_id, ()) if s.runs[c].status == "running"]
    kids.sort(key=lambda kid: (kid.parent_seq or 0, kid.run_id))
    children = tuple(ChildRow(kid.parent_seq, kid.run_id, kid.workflow_id, kid.workflow) for kid in kids)
    events = s.events.get(run_id, [])
    last_command = max((e.seq for e in events if isinstance(e, ev.COMMAND_TYPES)), default=0)
    signals = [SignalRow(e.name, e.seq, e.at) for e in events[last_command:] if isinstance(e, ev.SignalReceived)]
    signals += [SignalRow(e.name, None, None) for _, e in s.inbox.get(run_id, ()) if isinstance(e, ev.SignalReceived)]
    wft = s.wfts.get(run_id)
    workflow_task = None if wft is None else (wft.visible_at, wft.owner if live(wft.expires) else None, wft.attempts)
    return RunWork(run_id, activities, timers, children, tuple(signals), workflow_task, now)
