"""The engine's background loops: its registration (and reaping dead siblings), timers, leases, retention."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio

from . import _liveness
from ._schedules import Schedules

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["lease_loop", "register_and_reap", "retention_loop", "schedule_loop", "timer_loop"]

log = logging.getLogger("retold.engine")

_PURGE_EVERY = 600.0  # seconds (store clock) between two purges of the retention loop


async def register_and_reap(engine: Engine) -> None:
    """Record this engine; take over the work of engines on this machine whose process died."""
    pid = os.getpid()
    engine._registered = True  # unregistered on the way out, even if this call fails after its write
    others = await engine.store.register_worker(
        engine.worker_id, engine._host, pid, _liveness.process_start(pid),
        hosting=engine.hosting.hosting, ttl=3 * engine.lease,  # renewed every lease / 3
    )
    freed = 0
    for worker_id, other_pid, started in others:
        if not _liveness.is_alive(other_pid, started):
            freed += await engine.store.reap_worker(worker_id)
            log.info("engine %s (pid %d) is gone; its leases ended now", worker_id, other_pid)
    if freed:
        engine.wake_workflows.set()
        engine.wake_activities.set()


async def timer_loop(engine: Engine) -> None:
    """Fire due timers; wake the workers when a retry or a lease comes due."""
    while True:
        looked = engine.store.now()
        fired = await engine.runs.fire_timers(256)
        if fired:
            engine.wake_workflows.set()
            engine.feeds.notify(None)
            continue
        due = await engine.store.next_wakeup()
        now = engine.store.now()
        wait = engine.poll_interval
        if due is not None and looked < due <= now:
            # It came due after this pass looked for due timers (a slow pass,
            # or the clock moved): it may be a timer, so look again now rather
            # than sleep a whole poll interval with it unfired.
            continue
        if due is not None and due <= now:
            # A retry or a lease came due: let the workers look. (It stays
            # due if it is work this engine does not host, hence no spin.)
            engine.wake_activities.set()
            engine.wake_workflows.set()
        elif due is not None:
            wait = min(wait, due - now)
        await engine.wake_timers.wait(wait)


async def schedule_loop(engine: Engine) -> None:
    """Fire due schedules (each fire and the runs it starts in one store transaction).

    Each poll reads what is due; only a due schedule costs a write. A buffered
    fire is started by the close of the run it waits for, not by this loop.
    """
    schedules = Schedules(engine.store, engine.runs)
    while True:
        started, due = await schedules.fire_due(64)
        if started:
            engine.wake_workflows.set()
            engine.feeds.notify(None)
        now = engine.store.now()
        if started and due is not None and due <= now:
            continue  # more may be due than one call fires
        wait = engine.poll_interval if due is None or due <= now else min(engine.poll_interval, due - now)
        await engine.wake_schedules.wait(wait)


async def lease_loop(engine: Engine) -> None:
    """Renew this engine's registration and the leases of the work it holds; stop attempts whose lease was lost."""
    while True:
        await anyio.sleep(engine.lease / 3)
        await register_and_reap(engine)  # a sibling process that died since
        if engine.workflow_worker is not None and engine.workflow_worker.processing:
            await engine.store.renew_workflow_leases(
                engine.worker_id, list(engine.workflow_worker.processing), engine.lease
            )
        for worker in engine.activity_workers:
            ids = list(worker.running)
            lost = await engine.store.renew_leases(engine.worker_id, ids, engine.lease)
            for task_id in lost:
                if worker.stop(task_id):
                    engine.telemetry.lease_lost("activity")
            # Attempts whose run waits for them to end (cancelled elsewhere): stopped, their end recorded.
            for task_id in await engine.store.cancel_requests([i for i in ids if i not in lost]):
                worker.cancel(task_id)


async def retention_loop(engine: Engine) -> None:
    """Purge runs older than the engine's retention every ten minutes (store clock)."""
    # Due times are on the store's clock (a test's fake clock moves them);
    # the loop looks every poll interval whether one has come.
    assert engine.retention is not None
    # The next purge is due ten minutes after this one began, not after it ended: a purge
    # takes its cutoff when it begins, so runs that closed old enough while it ran (or a
    # clock that moved meanwhile) wait for the next one only as long as they should.
    due = engine.store.now()
    while True:
        began = engine.store.now()
        if began >= due:
            report = await engine.purge(engine.retention)
            if report.runs or report.kept:
                log.info("retention purged %d runs older than %s (%d events); kept %d with a run still running",
                         report.runs, timedelta(seconds=engine.retention), report.events, report.kept)
            due = began + _PURGE_EVERY
        await anyio.sleep(engine.poll_interval)
