"""Claims and leases of workflow and activity tasks, and the registry of engines."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._pending import Hosting, LiveWorker
from .._protocol import SUSPECT_LAPSES, ActivityTask
from . import _schema as t
from ._statements import LEASE_HORIZON, Statements
from ._tx import ACTIVITY, WORKFLOW
from ._writer import Writer

__all__ = ["Leases"]

_T = TypeVar("_T")


class Leases(Writer):
    """Task claims, lease renewals and hand-backs, and the worker registry (lease-only transactions)."""

    _q: Statements
    _now: Callable[[Connection], float]
    _lease_now: Callable[[Connection], float]

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
        lapsed: list[str] = []
        died: list[str] = []
        taken = 0  # suspects taken
        for run_id, previous_owner, stepping, lapses in rows:
            # Its lease ran out: that worker died (or stalled). (Our own lapsed
            # lease is no death: we are here, claiming.)
            lapse = previous_owner is not None and previous_owner != owner
            if lapses + lapse >= SUSPECT_LAPSES:
                if suspects is not None and taken >= suspects:
                    continue  # left for a later claim (locked until this one ends, on PostgreSQL)
                taken += 1
            if lapse:
                lapsed.append(run_id)
                if stepping:
                    died.append(run_id)
            ids.append(run_id)
        if ids:
            conn.execute(wt.update().where(wt.c.run_id.in_(ids)).values(
                lease_owner=owner, lease_expires=lease_now + lease))
        if lapsed:
            # Counted until a step of it commits; a death counts only against
            # the task whose marked step was running.
            conn.execute(wt.update().where(wt.c.run_id.in_(lapsed)).values(lapses=wt.c.lapses + 1, stepping=0))
        if died:
            conn.execute(wt.update().where(wt.c.run_id.in_(died)).values(attempts=wt.c.attempts + 1))
        return ids

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
            attempt, deaths, lapses = row.attempt, row.deaths, row.lapses
            if row.lease_owner is not None:
                # The previous owner's lease ran out mid-attempt (it died or
                # stalled): that attempt counts, and this is the next one; a
                # death too if the attempt ran under the stepping mark.
                attempt, lapses = attempt + 1, lapses + 1
                deaths += 1 if row.stepping else 0
                conn.execute(at.update().where(at.c.id == row.id).values(
                    attempt=attempt, lapses=lapses, deaths=deaths, stepping=0))
            claimed.append(ActivityTask(
                id=row.id, run_id=row.run_id, workflow_id=row.workflow_id, seq=row.seq,
                activity=row.activity, queue=row.queue, input=row.input,
                options=orjson.loads(row.options), attempt=attempt,
                scheduled_at=row.scheduled_at, suspect=lapses >= SUSPECT_LAPSES, deaths=deaths,
                cancel_requested=bool(row.cancel_requested),
            ))
        if claimed:
            conn.execute(at.update().where(at.c.id.in_([c.id for c in claimed])).values(
                lease_owner=owner, lease_expires=lease_now + lease, started_at=now))
        return claimed

    async def cancel_requests(self, task_ids: list[int]) -> set[int]:
        """Of these activity tasks, those whose run waits for their attempt to end (see the protocol)."""
        if not task_ids:
            return set()

        def read(conn: Connection) -> set[int]:
            at = t.activity_tasks
            return set(conn.execute(sa.select(at.c.id).where(at.c.id.in_(task_ids), at.c.cancel_requested == 1))
                       .scalars())

        return await self._read(read)

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
            # A task row another transaction holds (a step of its run being committed) is
            # skipped, renewed next time: waiting for it, a renewal of many rows, taken in
            # index order, could deadlock with steps that lock them in another (PostgreSQL).
            free = (sa.select(wt.c.run_id).where(wt.c.run_id.in_(run_ids), wt.c.lease_owner == owner)
                    .with_for_update(skip_locked=True))
            conn.execute(wt.update().where(wt.c.run_id.in_(free.scalar_subquery()))
                         .values(lease_expires=self._lease_now(conn) + lease))

        await self._run_lease_only(renew)

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str, *,
        hosting: Hosting | None = None, ttl: float = 15.0,
    ) -> list[tuple[str, int, str]]:
        """Record this engine, what it hosts and until when it counts as running; return the others on ``host``."""

        def register(conn: Connection) -> list[tuple[str, int, str]]:
            w = t.workers
            conn.execute(w.delete().where(w.c.worker_id == worker_id))
            conn.execute(w.insert().values(
                worker_id=worker_id, host=host, pid=pid, process_start=process_start, started_at=self._now(conn),
                hosting=(hosting or Hosting()).to_json(), alive_until=self._lease_now(conn) + ttl))
            rows = conn.execute(sa.select(w.c.worker_id, w.c.pid, w.c.process_start)
                                .where(w.c.host == host, w.c.worker_id != worker_id)).all()
            return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

        return await self._run_lease_only(register)

    async def live_workers(self) -> list[LiveWorker]:
        """The engines whose registration has not run out (by the lease clock), with what they host."""

        def query(conn: Connection) -> list[LiveWorker]:
            w, lease_now = t.workers, self._lease_now(conn)
            rows = conn.execute(sa.select(w.c.worker_id, w.c.hosting).where(
                w.c.alive_until >= lease_now, w.c.alive_until <= lease_now + LEASE_HORIZON,
            ).order_by(w.c.worker_id)).all()
            return [LiveWorker(str(r[0]), Hosting.from_json(r[1])) for r in rows]

        return await self._read(query)

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
