"""The memory store: every run, task and timer in plain Python data structures, in this process."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import orjson

from ...errors import RunNotFoundError, StoreError
from ...history import events as ev
from .._pending import Hosting, LiveWorker, RunWork
from .._plan import ScheduleRow, Tx, WorkflowEntry
from .._protocol import SUSPECT_LAPSES, ActivityTask, RunRecord
from .._purge import PurgeReport
from . import _pending, _purge
from ._data import ActTask, Journal, Run, WfTask
from ._tx import ACTIVITY, LEASE_HORIZON, WORKFLOW, MemoryTx

__all__ = ["MemoryStore"]

_T = TypeVar("_T")


class MemoryStore:
    """A :class:`~retold.stores.Store` in this process's memory (``memory://``): for tests and simulations.

    Nothing survives the process, and only engines given this very object
    (``Engine(store=...)``) share it. Transactions run one at a time, inline
    (nothing in them waits): a body that raises leaves the store as it was.

    Args:
        clock: the store's clock (event times, timers, retries), default ``time.time``.
        lease_clock: the clock leases are judged by (default: ``clock``).
        max_pending_signals: how many signals a run may have that it has
            not processed yet; past it, ``signal()`` raises
            :class:`~retold.SignalBufferFullError` and writes nothing.
    """

    url = "memory://"

    def __init__(
        self, *, clock: Callable[[], float] | None = None, lease_clock: Callable[[], float] | None = None,
        max_pending_signals: int = 10_000,
    ) -> None:
        if max_pending_signals < 1:
            raise StoreError(f"MemoryStore max_pending_signals must be at least 1, got {max_pending_signals}")
        self.max_pending_signals = max_pending_signals  # read by the engine, which enforces it
        self._clock: Callable[[], float] = clock or time.time
        self._lease_clock: Callable[[], float] = lease_clock or self._clock
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._listeners: list[Callable[[str], None]] = []
        # The tables.
        self.workflows: dict[str, WorkflowEntry] = {}
        self.keys: dict[str, str] = {}  # idempotency key -> workflow id
        self.runs: dict[str, Run] = {}
        self.events: dict[str, list[ev.Event]] = {}
        self.children: dict[str, list[str]] = {}  # parent run id -> child run ids
        self.wfts: dict[str, WfTask] = {}
        self.tasks: dict[int, ActTask] = {}
        self.queues: dict[str, dict[int, ActTask]] = {}  # queue -> its tasks, by id
        self.run_tasks: dict[str, dict[int, int]] = {}  # run id -> {seq: task id}
        self.timers: dict[str, dict[int, float]] = {}  # run id -> {seq: fire_at}
        self.inbox: dict[str, list[tuple[int, ev.Event]]] = {}
        self.workers: dict[str, tuple[str, int, str]] = {}  # worker id -> (host, pid, process_start)
        self.hosting: dict[str, tuple[Hosting, float]] = {}  # worker id -> (what it hosts, alive until)
        self.schedules: dict[str, ScheduleRow] = {}
        self.next_task_id = 1
        self.next_inbox_id = 1

    def now(self) -> float:
        """The store's clock, in seconds since the epoch."""
        return self._clock()

    def lease_now(self) -> float:
        """The clock leases are judged by."""
        return self._lease_clock()

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._holder == me:
            raise StoreError("a MemoryStore transaction was started inside another one")
        with self._lock:
            self._holder = me
            try:
                yield
            finally:
                self._holder = None

    def _write(self, fn: Callable[[MemoryTx], _T]) -> _T:
        me = threading.get_ident()
        if self._holder == me:
            raise StoreError("a MemoryStore transaction was started inside another one")
        journal = Journal()
        with self._lock:  # (inlined _locked: this is the hot path of simulations)
            self._holder = me
            try:
                result = fn(MemoryTx(self, journal))
            except BaseException:
                journal.rollback()
                raise
            finally:
                self._holder = None
        if journal.kinds and self._listeners:
            for kind in sorted(journal.kinds):
                for listener in list(self._listeners):
                    listener(kind)
        return result

    def transact_sync(self, fn: Callable[[Tx], _T]) -> _T:
        """:meth:`transact`, callable without an event loop."""
        return self._write(fn)

    async def transact(self, fn: Callable[[Tx], _T], *, outside: bool = False) -> _T:
        """Run ``fn`` on one transaction: all of its plans are applied, or (if it raises) none is."""
        # A cancellation point and a turn for other tasks, before the commit: never after it.
        await anyio.lowlevel.checkpoint()
        return self._write(fn)

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release: the data stays for as long as this object lives."""

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work(kind)`` after each transaction that creates work, until cancelled."""
        self._listeners.append(on_work)
        try:
            await anyio.sleep_forever()
        finally:
            self._listeners.remove(on_work)

    # -- claims and leases ---------------------------------------------------------------

    async def claim_workflow_tasks(
        self, owner: str, workflows: Sequence[str], limit: int, lease: float, *, suspects: int | None = None,
        fingerprint: str | None = None,
    ) -> list[str]:
        """Lease up to ``limit`` runs of ``workflows`` with unprocessed events (see the protocol)."""
        if not workflows:
            return []
        names = set(workflows)

        def due(w: WfTask, now: float) -> bool:
            # Due, or blocked under code other than the claimer's: other code may not fail.
            return w.visible_at <= now or (
                fingerprint is not None and bool(w.failed_by) and fingerprint not in w.failed_by)

        def claim(tx: MemoryTx) -> list[str]:
            now, expires = tx.now(), tx.lease_now() + lease
            ready = heapq.nsmallest(limit, (w for w in self.wfts.values() if w.workflow in names
                                            and due(w, now) and tx.free(w.owner, w.expires)),
                                    key=lambda w: (w.visible_at, w.run_id))
            ids: list[str] = []
            dead = 0
            for wft in ready:
                lapse = wft.owner is not None and wft.owner != owner
                if wft.lapses + lapse >= SUSPECT_LAPSES:
                    if suspects is not None and dead >= suspects:
                        continue
                    dead += 1
                if lapse:
                    # Its lease ran out: that worker died (or stalled). Counted
                    # until a step commits; a death only if its marked step ran.
                    tx.j.set(wft, "lapses", wft.lapses + 1)
                    if wft.stepping:
                        tx.j.set(wft, "attempts", wft.attempts + 1)
                        tx.j.set(wft, "stepping", False)
                tx.j.set(wft, "owner", owner)
                tx.j.set(wft, "expires", expires)
                ids.append(wft.run_id)
            return ids

        return await self._act(claim)

    async def claim_activity_tasks(
        self, owner: str, queue: str, activities: Sequence[str], limit: int, lease: float,
        running: Collection[int] = (),
    ) -> list[ActivityTask]:
        """Lease ready tasks of ``activities`` from ``queue``, never one in ``running`` held by ``owner``."""
        if not activities:
            return []
        names = set(activities)

        def claim(tx: MemoryTx) -> list[ActivityTask]:
            now, expires = tx.now(), tx.lease_now() + lease
            ready = heapq.nsmallest(limit, (
                t for t in self.queues.get(queue, {}).values()
                if t.activity in names and t.visible_at <= now and tx.free(t.owner, t.expires)
                and not (t.owner == owner and t.id in running)
                and (t.deadline is None or t.deadline > now)
            ), key=lambda t: (t.visible_at, t.id))
            claimed: list[ActivityTask] = []
            for task in ready:
                if task.owner is not None:
                    # The previous owner's lease ran out mid-attempt: that attempt
                    # counts, and a death if it ran under the stepping mark.
                    tx.j.set(task, "attempt", task.attempt + 1)
                    tx.j.set(task, "lapses", task.lapses + 1)
                    if task.stepping:
                        tx.j.set(task, "deaths", task.deaths + 1)
                        tx.j.set(task, "stepping", False)
                tx.j.set(task, "owner", owner)
                tx.j.set(task, "expires", expires)
                tx.j.set(task, "started_at", now)
                claimed.append(ActivityTask(
                    id=task.id, run_id=task.run_id, workflow_id=task.workflow_id, seq=task.seq,
                    activity=task.activity, queue=task.queue, input=task.input,
                    options=_loads(task.options), attempt=task.attempt, scheduled_at=task.scheduled_at,
                    suspect=task.lapses >= SUSPECT_LAPSES, deaths=task.deaths,
                    cancel_requested=task.cancel_requested))
            return claimed

        return await self._act(claim)

    async def cancel_requests(self, task_ids: list[int]) -> set[int]:
        """Of these activity tasks, the ids whose run waits for their attempt to end."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            return {task_id for task_id in task_ids
                    if (task := self.tasks.get(task_id)) is not None and task.cancel_requested}

    async def renew_leases(self, owner: str, task_ids: list[int], lease: float) -> set[int]:
        """Extend this owner's activity leases; return the ids it no longer holds."""

        def renew(tx: MemoryTx) -> set[int]:
            expires = tx.lease_now() + lease
            lost = set(task_ids)
            for task_id in task_ids:
                task = self.tasks.get(task_id)
                if task is not None and task.owner == owner:
                    tx.j.set(task, "expires", expires)
                    lost.discard(task_id)
            return lost

        return await self._act(renew) if task_ids else set()

    async def renew_workflow_leases(self, owner: str, run_ids: list[str], lease: float) -> None:
        """Extend this owner's leases on workflow tasks still being processed."""

        def renew(tx: MemoryTx) -> None:
            expires = tx.lease_now() + lease
            for run_id in run_ids:
                wft = self.wfts.get(run_id)
                if wft is not None and wft.owner == owner:
                    tx.j.set(wft, "expires", expires)

        if run_ids:
            await self._act(renew)

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str, *,
        hosting: Hosting | None = None, ttl: float = 15.0,
    ) -> list[tuple[str, int, str]]:
        """Record this engine and what it hosts; return the other engines on ``host``."""

        def register(tx: MemoryTx) -> list[tuple[str, int, str]]:
            tx.j.pop(self.workers, worker_id)
            tx.j.put(self.workers, worker_id, (host, pid, process_start))
            tx.j.put(self.hosting, worker_id, (hosting or Hosting(), tx.lease_now() + ttl))
            return [(w, p, s) for w, (h, p, s) in self.workers.items() if h == host and w != worker_id]

        return await self._act(register)

    async def live_workers(self) -> list[LiveWorker]:
        """The engines whose registration has not run out (by the lease clock), with what they host."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            lease_now = self.lease_now()
            return [LiveWorker(w, hosting) for w, (hosting, until) in sorted(self.hosting.items())
                    if lease_now <= until <= lease_now + LEASE_HORIZON]

    async def reap_worker(self, worker_id: str) -> int:
        """Forget a dead engine and end its leases now, as if they had run out (its attempts count)."""

        def reap(tx: MemoryTx) -> int:
            tx.j.pop(self.workers, worker_id)
            tx.j.pop(self.hosting, worker_id)
            ended = tx.lease_now() - 1.0
            freed = 0
            for rows, kind in ((self.wfts.values(), WORKFLOW), (self.tasks.values(), ACTIVITY)):
                count = 0
                for row in rows:
                    if row.owner == worker_id:
                        tx.j.set(row, "expires", ended)
                        count += 1
                if count:
                    tx.j.kinds.add(kind)
                freed += count
            return freed

        return await self._act(reap)

    async def unregister_worker(self, worker_id: str) -> None:
        """Forget this engine."""

        def unregister(tx: MemoryTx) -> None:
            tx.j.pop(self.workers, worker_id)
            tx.j.pop(self.hosting, worker_id)

        await self._act(unregister)

    async def release_leases(self, owner: str) -> None:
        """Hand back every task this owner holds."""

        def release(tx: MemoryTx) -> None:
            for rows, kind in ((self.wfts.values(), WORKFLOW), (self.tasks.values(), ACTIVITY)):
                for row in rows:
                    if row.owner == owner:
                        tx.j.set(row, "owner", None)
                        tx.j.set(row, "expires", None)
                        tx.j.kinds.add(kind)

        await self._act(release)

    async def _act(self, fn: Callable[[MemoryTx], _T]) -> _T:
        await anyio.lowlevel.checkpoint()
        return self._write(fn)

    # -- reads -------------------------------------------------------------------------

    async def load(self, run_id: str, after_seq: int, limit: int | None = None) -> tuple[RunRecord, list[ev.Event]]:
        """A run and its events after ``after_seq`` (the first ``limit`` of them, if given)."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            run = self.runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            start = max(after_seq, 0)
            end = None if limit is None else start + max(limit, 0)
            return run.record(self.wfts.get(run_id)), self.events[run_id][start:end]

    def _find(self, run_or_workflow_id: str) -> Run:
        run = self.runs.get(run_or_workflow_id)
        if run is None:
            entry = self.workflows.get(run_or_workflow_id)
            if entry is not None:
                run = self.runs.get(entry.current_run_id)
        if run is None:
            raise RunNotFoundError(run_or_workflow_id)
        return run

    async def next_wakeup(self) -> float | None:
        """The earliest time a timer, a task or a retry is due."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            shift = self.now() - self.lease_now()  # lease ends, moved onto the store's clock
            times: list[float] = []
            for rows in (self.tasks.values(), self.wfts.values()):
                ends = [r.expires for r in rows if r.expires is not None]
                if ends:
                    times.append(min(ends) + shift)
                free = [r.visible_at for r in rows if r.owner is None]
                if free:
                    times.append(min(free))
            deadlines = [t.deadline for t in self.tasks.values() if t.owner is None and t.deadline is not None]
            if deadlines:
                times.append(min(deadlines))
            fires = [at for timers in self.timers.values() for at in timers.values()]
            if fires:
                times.append(min(fires))
            return min(times) if times else None

    async def quiescence(self) -> tuple[bool, float | None]:
        """(busy, next_due): see :meth:`~retold.stores.Store.quiescence`."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            now = self.now()
            times: list[float] = []
            for rows in (self.wfts.values(), self.tasks.values()):
                for row in rows:
                    if row.owner is not None or row.visible_at <= now:
                        return True, None
                    times.append(row.visible_at)
            for timers in self.timers.values():
                for at in timers.values():
                    if at <= now:
                        return True, None
                    times.append(at)
            for schedule in self.schedules.values():
                if schedule.due_at is not None:
                    if schedule.due_at <= now:
                        return True, None
                    times.append(schedule.due_at)
            times.extend(t.deadline for t in self.tasks.values() if t.deadline is not None)
            return False, (min(times) if times else None)

    async def schedules_due(self, limit: int) -> tuple[list[str], float | None]:
        """(ids, next_due): see :meth:`~retold.stores.Store.schedules_due`."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            now = self.now()
            times = [(row.due_at, row.schedule_id) for row in self.schedules.values() if row.due_at is not None]
            due = sorted(t for t in times if t[0] <= now)[:max(limit, 0)]
            return [schedule_id for _, schedule_id in due], min((t[0] for t in times), default=None)

    async def timers_due(self, limit: int) -> tuple[list[tuple[str, int]], list[int]]:
        """(timers, tasks): see :meth:`~retold.stores.Store.timers_due`."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            now, lease_now, limit = self.now(), self.lease_now(), max(limit, 0)
            timers = heapq.nsmallest(limit, ((at, run_id, seq) for run_id, rows in self.timers.items()
                                             for seq, at in rows.items() if at <= now))
            tasks = heapq.nsmallest(limit, (
                t.id for t in self.tasks.values() if t.deadline is not None and t.deadline <= now
                and (t.owner is None or t.expires is None or t.expires < lease_now
                     or t.expires > lease_now + LEASE_HORIZON)))
            return [(run_id, seq) for _, run_id, seq in timers], tasks

    async def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        """A schedule's row, if it exists."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            return self.schedules.get(schedule_id)

    async def list_schedules(self) -> list[ScheduleRow]:
        """Every schedule's row, by id."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            return [self.schedules[k] for k in sorted(self.schedules)]

    async def closed_among(self, run_ids: Sequence[str]) -> dict[str, RunRecord | None]:
        """Of the runs ``run_ids`` names, those no longer running (with their records) and those unknown (None)."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            runs = self.runs
            found: dict[str, RunRecord | None] = {}
            for run_id in run_ids:
                run = runs.get(run_id)
                if run is None:
                    found[run_id] = None
                elif run.status != "running":
                    found[run_id] = run.record(None)
            return found

    async def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run by run id, or the latest run of a workflow id."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            run = self._find(run_or_workflow_id)
            return run.record(self.wfts.get(run.run_id))

    async def pending_work(self, run_id: str) -> RunWork:
        """What the run ``run_id`` waits for: its tasks, timers, open children and unseen signals."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            return _pending.read(self, run_id)

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100, offset: int = 0,
        id_prefix: str | None = None, started_after: float | None = None, started_before: float | None = None,
        closed_after: float | None = None, closed_before: float | None = None,
        attributes: Mapping[str, str] | None = None, after: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered (``id_prefix``: of the workflow id or the run id)."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            wfts = self.wfts

            def blocked(r: Run) -> bool:
                task = wfts.get(r.run_id)
                return task is not None and task.failure is not None

            def has(r: Run) -> bool:  # "blocked" and "running" split the open runs
                if status is None:
                    return True
                if status in ("running", "blocked"):
                    return r.status == "running" and blocked(r) == (status == "blocked")
                return r.status == status

            found = [
                r for r in self.runs.values()
                if has(r) and (workflow is None or r.workflow == workflow)
                and (not id_prefix or r.workflow_id.startswith(id_prefix) or r.run_id.startswith(id_prefix))
                and (started_after is None or r.created_at >= started_after)
                and (started_before is None or r.created_at < started_before)
                and (closed_after is None or (r.closed_at is not None and r.closed_at >= closed_after))
                and (closed_before is None or (r.closed_at is not None and r.closed_at < closed_before))
                and all((r.attributes or {}).get(name) == value for name, value in (attributes or {}).items())
                and (after is None or r.created_at < after[0] or (r.created_at == after[0] and r.run_id > after[1]))
            ]
            found.sort(key=lambda r: r.run_id)
            found.sort(key=lambda r: r.created_at, reverse=True)
            return [r.record(wfts.get(r.run_id)) for r in found[offset:offset + limit]]

    async def purge(
        self, before: float, *, statuses: Sequence[str] | None = None, workflow: str | None = None,
        batch_size: int = 200, dry_run: bool = False,
    ) -> PurgeReport:
        """Delete runs closed before ``before``, with what goes with them (one transaction: memory is fast)."""
        await anyio.lowlevel.checkpoint()
        with self._locked():
            return _purge.purge(self, before, statuses, workflow, dry_run)


def _loads(options: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(options)
    return loaded
