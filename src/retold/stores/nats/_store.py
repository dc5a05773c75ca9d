"""The NATS JetStream store (``nats://``): the store's state as a replicated log of operations.

Every change to the store (a transaction's plans, a claim, a lease renewal,
a release, a purge) is ONE message on a JetStream stream, published with
``Nats-Expected-Last-Sequence`` set to the last message this process has
applied: the stream accepts it only if nobody wrote in between, so the log
is a serial order of operations, each decided on the state all the earlier
ones left. Every process folds the log, in order, into an in-memory copy
of the state (the memory store's tables and rules: :class:`~._view.View`) and runs
its transactions on that copy; a refused publish (someone else wrote first)
undoes the copy's changes, catches up, and runs the transaction again.

The log is the truth; the copies are derived and rebuilt from it on open.
See docs/nats.md for the layout, the crash analysis and durability.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from ...errors import ConfigurationError, StoreError
from ...history.events import Event
from .._pending import Hosting, LiveWorker, RunWork
from .._plan import ScheduleRow, Tx
from .._protocol import ActivityTask, RunRecord
from .._purge import PurgeReport
from ..memory._tx import MemoryTx
from . import _codec
from ._log import Log
from ._loop import ClientLoop, call_soon_here
from ._url import NatsUrl, parse_url
from ._view import Recorder

__all__ = ["NatsStore", "NatsUrl", "delete_store", "parse_url"]

_T = TypeVar("_T")


class NatsStore(Log):
    """A :class:`~retold.stores.Store` on NATS JetStream (``nats://host:4222``): needs ``retold[nats]``.

    Every process that opens the same URL (same servers and ``prefix``)
    shares the runs. Each keeps a copy of the state in memory, rebuilt from
    the stream on open; see docs/nats.md.

    Args:
        url: ``nats://host:4222`` (several servers: ``nats://a:4222,b:4222``),
            with ``?prefix=NAME`` (the stream ``NAME_log``, default ``retold``),
            ``?replicas=3`` (the stream's replicas when it is created) and
            ``?snapshot_every=N`` (see ``snapshot_every``).
        clock: the store's clock (event times, timers, retries), default ``time.time``.
        lease_clock: the clock leases are judged by (default: ``clock``).
        max_pending_signals: unseen signals a run may hold before ``signal()`` is refused.
        timeout: how long one request to the server may take, in seconds.
        snapshot_every: every this many log messages, the process that wrote
            the last one saves the state in the bucket ``NAME_snapshots`` and
            deletes the log before it, so the log stays short and a process
            opens from the snapshot; 0 keeps the whole log. Default: the URL's
            ``snapshot_every``, else 10,000.
    """

    def now(self) -> float:
        """The store's clock, in seconds since the epoch."""
        return self._clock()

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the stream if it is missing, and fold the log into this process's copy."""
        if self._client is not None:
            return
        try:
            import nats  # noqa: F401 - checked here, for a clear error
        except ImportError as exc:
            raise ConfigurationError("nats:// stores need the NATS client: pip install 'retold[nats]'") from exc
        self._client = ClientLoop(f"retold-nats-{self.prefix}")
        try:
            await self._client.call(self._c_open)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Disconnect and stop the client's thread."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.call(self._c_close)
        finally:
            client.stop()

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work(kind)`` after each operation that creates work (this process's or another's)."""
        import anyio

        entry = (on_work, call_soon_here())
        self._listeners = (*self._listeners, entry)
        try:
            await anyio.sleep_forever()
        finally:
            self._listeners = tuple(e for e in self._listeners if e is not entry)

    # -- calls from the engine's loop ---------------------------------------------------

    async def _call(self, factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        client = self._client
        if client is None:
            raise StoreError(f"the NATS store {self.url} is not open")
        return await client.call(factory)

    async def _store_op(self, name: str, *positional: Any, **named: Any) -> Any:
        method = getattr(self._view, name)
        return await self._call(lambda: self._c_submit(
            name, lambda: method(*positional, **named), lambda: _codec.encode([list(positional), named])))

    async def _read(self, name: str, *positional: Any, **named: Any) -> Any:
        method = getattr(self._view, name)
        return await self._call(lambda: self._c_submit(name, lambda: method(*positional, **named), None))

    async def transact(self, fn: Callable[[Tx], _T], *, outside: bool = False) -> _T:
        """Run ``fn`` on the state and record its writes as one log message (run again if the log moved)."""
        recorder: list[Recorder] = []

        async def local() -> _T:
            def body(tx: MemoryTx) -> _T:
                recorder[:] = [Recorder(tx)]
                return fn(recorder[0])

            return self._view._write(body)

        result: _T = await self._call(lambda: self._c_submit("tx", local, lambda: recorder[0].calls))
        return result

    async def claim_workflow_tasks(
        self, owner: str, workflows: Sequence[str], limit: int, lease: float, *, suspects: int | None = None,
        fingerprint: str | None = None,
    ) -> list[str]:
        """Lease up to ``limit`` runs of ``workflows`` with unprocessed events (see the protocol)."""
        if not workflows:
            return []
        claimed: list[str] = await self._store_op("claim_workflow_tasks", owner, list(workflows), limit, lease,
                                                  suspects=suspects, fingerprint=fingerprint)
        return claimed

    async def claim_activity_tasks(
        self, owner: str, queue: str, activities: Sequence[str], limit: int, lease: float,
        running: Collection[int] = (),
    ) -> list[ActivityTask]:
        """Lease ready tasks of ``activities`` from ``queue``, never one in ``running`` held by ``owner``."""
        if not activities:
            return []
        claimed: list[ActivityTask] = await self._store_op(
            "claim_activity_tasks", owner, queue, list(activities), limit, lease, sorted(running))
        return claimed

    async def cancel_requests(self, task_ids: list[int]) -> set[int]:
        """Of these activity tasks, the ids whose run waits for their attempt to end."""
        if not task_ids:
            return set()
        asked: set[int] = await self._read("cancel_requests", list(task_ids))
        return asked

    async def renew_leases(self, owner: str, task_ids: list[int], lease: float) -> set[int]:
        """Extend this owner's activity leases; return the ids it no longer holds."""
        if not task_ids:
            return set()
        lost: set[int] = await self._store_op("renew_leases", owner, list(task_ids), lease)
        return lost

    async def renew_workflow_leases(self, owner: str, run_ids: list[str], lease: float) -> None:
        """Extend this owner's leases on workflow tasks still being processed."""
        if run_ids:
            await self._store_op("renew_workflow_leases", owner, list(run_ids), lease)

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str, *,
        hosting: Hosting | None = None, ttl: float = 15.0,
    ) -> list[tuple[str, int, str]]:
        """Record this engine and what it hosts; return the other engines on ``host``."""
        others: list[tuple[str, int, str]] = await self._store_op(
            "register_worker", worker_id, host, pid, process_start,
            None if hosting is None else hosting.to_json(), ttl)
        return others

    async def live_workers(self) -> list[LiveWorker]:
        """The engines whose registration has not run out, with what they host."""
        workers: list[LiveWorker] = await self._read("live_workers")
        return workers

    async def pending_work(self, run_id: str) -> RunWork:
        """What the run waits for, as the store has it (see :meth:`Store.pending_work`)."""
        work: RunWork = await self._read("pending_work", run_id)
        return work

    async def reap_worker(self, worker_id: str) -> int:
        """Forget a dead engine and end its leases now (its attempts count)."""
        freed: int = await self._store_op("reap_worker", worker_id)
        return freed

    async def unregister_worker(self, worker_id: str) -> None:
        """Forget this engine."""
        await self._store_op("unregister_worker", worker_id)

    async def release_leases(self, owner: str) -> None:
        """Hand back every task this owner holds."""
        await self._store_op("release_leases", owner)

    async def purge(
        self, before: float, *, statuses: Sequence[str] | None = None, workflow: str | None = None,
        batch_size: int = 200, dry_run: bool = False,
    ) -> PurgeReport:
        """Delete runs closed before ``before``, with what goes with them (one log message)."""
        report: PurgeReport = await self._store_op(
            "purge", before, statuses=None if statuses is None else list(statuses), workflow=workflow,
            batch_size=batch_size, dry_run=dry_run)
        return report

    # -- reads ------------------------------------------------------------------------

    async def load(self, run_id: str, after_seq: int, limit: int | None = None) -> tuple[RunRecord, list[Event]]:
        """A run and its events after ``after_seq`` (the first ``limit`` of them, if given)."""
        loaded: tuple[RunRecord, list[Event]] = await self._read("load", run_id, after_seq, limit)
        return loaded

    async def next_wakeup(self) -> float | None:
        """The earliest time a timer, a task or a retry is due."""
        due: float | None = await self._read("next_wakeup")
        return due

    async def quiescence(self) -> tuple[bool, float | None]:
        """(busy, next_due): see :meth:`~retold.stores.Store.quiescence`."""
        found: tuple[bool, float | None] = await self._read("quiescence")
        return found

    async def schedules_due(self, limit: int) -> tuple[list[str], float | None]:
        """(ids, next_due): see :meth:`~retold.stores.Store.schedules_due` (a read: no log message)."""
        found: tuple[list[str], float | None] = await self._read("schedules_due", limit)
        return found

    async def timers_due(self, limit: int) -> tuple[list[tuple[str, int]], list[int]]:
        """(timers, tasks): see :meth:`~retold.stores.Store.timers_due` (a read: no log message)."""
        found: tuple[list[tuple[str, int]], list[int]] = await self._read("timers_due", limit)
        return found

    async def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        """A schedule's row, if it exists (a read: no log message)."""
        row: ScheduleRow | None = await self._read("get_schedule", schedule_id)
        return row

    async def list_schedules(self) -> list[ScheduleRow]:
        """Every schedule's row, by id (a read: no log message)."""
        rows: list[ScheduleRow] = await self._read("list_schedules")
        return rows

    async def closed_among(self, run_ids: Sequence[str]) -> dict[str, RunRecord | None]:
        """Of the runs ``run_ids`` names, those no longer running (with their records) and those unknown (None)."""
        found: dict[str, RunRecord | None] = await self._read("closed_among", list(run_ids))
        return found

    async def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run by run id, or the latest run of a workflow id."""
        record: RunRecord = await self._read("get_run", run_or_workflow_id)
        return record

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100, offset: int = 0,
        id_prefix: str | None = None, started_after: float | None = None, started_before: float | None = None,
        closed_after: float | None = None, closed_before: float | None = None,
        attributes: Mapping[str, str] | None = None, after: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered (``id_prefix``: of the workflow id or the run id)."""
        runs: list[RunRecord] = await self._read(
            "list_runs", status=status, workflow=workflow, limit=limit, offset=offset, id_prefix=id_prefix,
            started_after=started_after, started_before=started_before, closed_after=closed_after,
            closed_before=closed_before, attributes=attributes, after=after)
        return runs


async def delete_store(url: str) -> None:
    """Delete everything a NATS store URL names: its log stream and its snapshot buckets (those that exist).

    Every run of that store is gone; engines using it must be closed first.
    """
    import nats
    from nats.js.errors import NotFoundError

    servers, prefix, *_ = parse_url(url)
    nc = await nats.connect(servers=servers)
    try:
        js = nc.jetstream()
        for delete, name in ((js.delete_stream, f"{prefix}_log"), (js.delete_object_store, f"{prefix}_snapshots"),
                             (js.delete_key_value, f"{prefix}_meta")):
            with contextlib.suppress(NotFoundError):
                await delete(name)
    finally:
        await nc.close()
