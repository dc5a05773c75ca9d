"""The NATS JetStream store (``nats://``): the store's state as a replicated log of operations.

Every change to the store (a transaction's plans, a claim, a lease renewal,
a release, a purge) is ONE message on a JetStream stream, published with
``Nats-Expected-Last-Sequence`` set to the last message this process has
applied: the stream accepts it only if nobody wrote in between, so the log
is a serial order of operations, each decided on the state all the earlier
ones left. Every process folds the log, in order, into an in-memory copy
of the state (the memory store's tables and rules: :class:`_View`) and runs
its transactions on that copy; a refused publish (someone else wrote first)
undoes the copy's changes, catches up, and runs the transaction again.

The log is the truth; the copies are derived and rebuilt from it on open.
See docs/nats.md for the layout, the crash analysis and durability.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Collection, Coroutine, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ...errors import ConfigurationError, StoreError
from ...history.events import Event
from .._pending import Hosting, LiveWorker, RunWork
from .._plan import Plan, RunState, TaskState, Tx, WorkflowEntry
from .._protocol import ActivityTask, RunRecord
from .._purge import PurgeReport
from ..memory import MemoryStore
from ..memory._data import Journal
from ..memory._tx import MemoryTx
from . import _codec, _snapshot
from ._loop import ClientLoop, call_soon_here

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["NatsStore", "NatsUrl", "parse_url"]

_T = TypeVar("_T")
_log = logging.getLogger("retold.stores.nats")

SNAPSHOT_EVERY = 10_000  # log messages between snapshots (the log before a snapshot is deleted)
_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed Nats-Expected-Last-Sequence
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FAILPOINT_ENV = "RETOLD_NATS_FAILPOINT"


_reached: collections.Counter[tuple[str, str]] = collections.Counter()


def _failpoint(point: str, op: str) -> None:
    """Crash tests: SIGKILL this process (no cleanup) at a named point of recording an operation.

    ``$RETOLD_NATS_FAILPOINT`` is ``POINT[:N[:OP]]``: die the ``N``-th time
    (default 1) this process reaches ``POINT`` (``before_publish``,
    ``after_publish``) while recording an operation named ``OP`` (default
    ``tx``: a transaction; or a lease operation such as ``claim_activity_tasks``).
    """
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    name, _, rest = wanted.partition(":")
    count, _, kind = rest.partition(":")
    if name != point or op != (kind or "tx"):
        return
    _reached[point, op] += 1
    if _reached[point, op] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


class NatsUrl(NamedTuple):
    """What a NATS store URL names."""

    servers: list[str]
    prefix: str
    replicas: int
    snapshot_every: int = SNAPSHOT_EVERY


def parse_url(url: str) -> NatsUrl:
    """What ``nats://host:port[,host:port...][?prefix=retold&replicas=1&snapshot_every=10000]`` names."""
    base, _, query = url.partition("?")
    scheme, sep, hosts = base.partition("://")
    if not sep or scheme not in ("nats", "tls") or not hosts.strip("/"):
        raise ConfigurationError(f"invalid NATS store URL {url!r}: write nats://host:4222 (several servers: "
                                 "nats://a:4222,b:4222; options: ?prefix=retold&replicas=3)")
    servers = [f"{scheme}://{h}" for h in hosts.strip("/").split(",")]
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        options[key] = value
    unknown = set(options) - {"prefix", "replicas", "snapshot_every"}
    if unknown:
        raise ConfigurationError(f"unknown option(s) {', '.join(sorted(unknown))} in NATS store URL {url!r}: "
                                 "the options are prefix, replicas and snapshot_every")
    prefix = options.get("prefix", "retold")
    if not _PREFIX.match(prefix):
        raise ConfigurationError(f"invalid prefix {prefix!r} in NATS store URL {url!r}: use letters, digits, "
                                 "'_' and '-' (at most 64)")
    try:
        replicas = int(options.get("replicas", "1"))
    except ValueError:
        replicas = 0
    if not 1 <= replicas <= 5:
        raise ConfigurationError(f"invalid replicas {options.get('replicas')!r} in NATS store URL {url!r}: "
                                 "1 to 5 (3 for a cluster)")
    every = options.get("snapshot_every", str(SNAPSHOT_EVERY))
    if not every.isascii() or not every.isdigit():
        raise ConfigurationError(f"invalid snapshot_every {every!r} in NATS store URL {url!r}: a number of log "
                                 "messages (0: never snapshot nor truncate the log)")
    return NatsUrl(servers, prefix, replicas, int(every))


class _View(MemoryStore):
    """The state folded from the log: the memory store's tables and rules, run under the operation's clocks.

    Its transactions do not notify anyone and keep their journals (in
    :attr:`journals`) until the operation is published or undone. The memory
    store's choices among equals never depend on its dicts' order (undoing a
    refused operation puts a removed key back at the end of its dict), so
    replaying an operation decides alike in every process.
    """

    def __init__(self, clock: Callable[[], float], lease_clock: Callable[[], float]) -> None:
        self.pinned: tuple[float, float] | None = None
        super().__init__(clock=lambda: clock() if self.pinned is None else self.pinned[0],
                         lease_clock=lambda: lease_clock() if self.pinned is None else self.pinned[1])
        self.journals: list[Journal] = []

    def _write(self, fn: Callable[[MemoryTx], _T]) -> _T:
        journal = Journal()
        with self._locked():
            try:
                result = fn(MemoryTx(self, journal))
            except BaseException:
                journal.rollback()
                raise
        self.journals.append(journal)  # kept until the operation is published (or undone)
        return result

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str,
        hosting: Hosting | bytes | None = None, ttl: float = 15.0,
    ) -> list[tuple[str, int, str]]:
        """As the memory store's; ``hosting`` comes through the log as its JSON.

        Every registration is recorded (a log message): it renews the
        engine's liveness deadline, which the engines count it running by.
        """
        if isinstance(hosting, bytes):
            hosting = Hosting.from_json(hosting)
        return await super().register_worker(worker_id, host, pid, process_start, hosting=hosting, ttl=ttl)

    def take_journals(self) -> list[Journal]:
        journals, self.journals = self.journals, []
        return journals


class _Recorder:
    """A :class:`~retold.stores.Tx` over the view's transaction that notes every write, for the log."""

    __slots__ = ("_tx", "calls")

    def __init__(self, tx: MemoryTx) -> None:
        self._tx = tx
        self.calls: list[list[Any]] = []  # [name, encoded argument, raised]

    def now(self) -> float:
        return self._tx.now()

    def run(self, run_or_workflow_id: str, *, inbox: bool = False) -> RunState | None:
        return self._tx.run(run_or_workflow_id, inbox=inbox)

    def entry(self, workflow_id: str, idempotency_key: str | None = None) -> WorkflowEntry | None:
        return self._tx.entry(workflow_id, idempotency_key)

    def task(self, task_id: int) -> TaskState | None:
        return self._tx.task(task_id)

    def open_children(self, run_id: str) -> list[str]:
        return self._tx.open_children(run_id)

    def leased_runs(self, owner: str) -> list[str]:
        return self._tx.leased_runs(owner)

    def _note(self, name: str, arg: Any, call: Callable[[], _T]) -> _T:
        note = [name, _codec.encode(arg), False]
        self.calls.append(note)
        try:
            return call()
        except Exception:
            note[2] = True
            raise

    def take_due_timers(self, limit: int) -> list[tuple[str, int]]:
        return self._note("take_due_timers", limit, lambda: self._tx.take_due_timers(limit))

    def take_overdue_tasks(self, limit: int) -> list[TaskState]:
        return self._note("take_overdue_tasks", limit, lambda: self._tx.take_overdue_tasks(limit))

    def apply(self, plan: Plan) -> list[tuple[str, int, int]]:
        return self._note("apply", plan, lambda: self._tx.apply(plan))


def _replay_calls(tx: MemoryTx, *, calls: list[list[Any]]) -> None:
    for name, arg, raised in calls:
        method = getattr(tx, name)
        if raised:
            # It raised when it was decided too: the same partial writes, the same error.
            with contextlib.suppress(Exception):
                method(_codec.decode(arg))
        else:
            method(_codec.decode(arg))


_BATCH = 256  # operations in one log message at most


class _Pending:
    """An operation waiting for the committer, and how its last run on the copy went."""

    __slots__ = ("args", "future", "journals", "lease_now", "local", "name", "now", "outcome")

    def __init__(self, name: str, local: Callable[[], Coroutine[Any, Any, Any]], args: Callable[[], Any] | None,
                 future: asyncio.Future[Any]) -> None:
        self.name, self.local, self.args, self.future = name, local, args, future
        self.now = self.lease_now = 0.0
        self.outcome: tuple[bool, Any] = (False, None)
        self.journals: list[Journal] = []

    @property
    def writes(self) -> bool:
        return self.outcome[0] and self.args is not None and any(j.undo for j in self.journals)


def _undo(batch: list[_Pending]) -> None:
    for p in reversed(batch):
        for journal in reversed(p.journals):
            journal.rollback()
        p.journals = []


def _resolve(batch: list[_Pending]) -> None:
    for p in batch:
        if p.future.done():
            continue
        ok, value = p.outcome
        if ok:
            p.future.set_result(value)
        else:
            p.future.set_exception(value)


class NatsStore:
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

    def __init__(
        self, url: str, *, clock: Callable[[], float] | None = None, lease_clock: Callable[[], float] | None = None,
        max_pending_signals: int = 10_000, timeout: float = 10.0, snapshot_every: int | None = None,
    ) -> None:
        self.url = url
        self._servers, self.prefix, self.replicas, every = parse_url(url)
        self.snapshot_every = every if snapshot_every is None else snapshot_every
        if self.snapshot_every < 0:
            raise StoreError(f"NatsStore snapshot_every must be 0 or more, got {self.snapshot_every}")
        self.stream = f"{self.prefix}_log"
        self.subject = f"{self.prefix}.log"
        self.snapshots = f"{self.prefix}_snapshots"  # an object store: the snapshots
        self.pointer = f"{self.prefix}_meta"  # a key-value bucket: ``snapshot`` names the newest one
        self.snapshot_seq = 0  # the log position of the newest snapshot this process wrote or read
        if max_pending_signals < 1:
            raise StoreError(f"NatsStore max_pending_signals must be at least 1, got {max_pending_signals}")
        self.max_pending_signals = max_pending_signals
        self._clock: Callable[[], float] = clock or time.time
        self._lease_clock: Callable[[], float] = lease_clock or self._clock
        self._timeout = timeout
        self._view = _View(self._clock, self._lease_clock)
        self._client: ClientLoop | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._seq = 0  # the last log message folded into the view
        self._lock: asyncio.Lock | None = None  # on the client loop: one operation on the view at a time
        self._moved: asyncio.Event | None = None
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()  # op id -> seq
        self._listeners: tuple[tuple[Callable[[str], None], Callable[[Callable[[], object]], object]], ...] = ()
        self._broken: str | None = None
        self._queue: list[_Pending] = []  # on the client loop: operations waiting for the committer
        self._committer: asyncio.Task[None] | None = None
        self._snapshotter: asyncio.Task[None] | None = None
        self._sub: Any = None  # the log's subscription

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

    # -- the client loop's side ------------------------------------------------------------

    async def _c_open(self) -> None:
        import nats
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        self._lock = asyncio.Lock()
        self._moved = asyncio.Event()
        try:
            self._nc = await nats.connect(servers=self._servers, connect_timeout=self._timeout,
                                          max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                          allow_reconnect=True, name=f"retold {self.prefix}")
        except Exception as exc:
            raise StoreError(f"cannot connect to NATS at {', '.join(self._servers)}: {exc!r}") from exc
        self._js = self._nc.jetstream(timeout=self._timeout)
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(StreamConfig(
                name=self.stream, subjects=[self.subject], storage=StorageType.FILE, num_replicas=self.replicas))
        first = await self._c_first_seq()
        if first > 1:  # the log's start was deleted: begin from the snapshot that replaced it
            async with self._lock:
                await self._c_load_snapshot(first - 1)
        await self._c_subscribe()
        await self._c_sync()

    async def _c_subscribe(self) -> None:
        """Follow the log from the message after the view's position."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        assert self._js is not None
        if self._seq == 0:
            policy, config = DeliverPolicy.ALL, None
        else:
            policy, config = DeliverPolicy.BY_START_SEQUENCE, ConsumerConfig(opt_start_seq=self._seq + 1)
        self._sub = await self._js.subscribe(self.subject, stream=self.stream, cb=self._c_on_message,
                                             ordered_consumer=True, deliver_policy=policy, config=config,
                                             idle_heartbeat=1.0)

    async def _c_first_seq(self) -> int:
        assert self._js is not None
        info = await self._js.stream_info(self.stream)
        return int(info.state.first_seq)

    # -- snapshots ---------------------------------------------------------------------------

    async def _c_buckets(self) -> tuple[Any, Any]:
        """The snapshots' object store and the key-value bucket pointing at the newest, created if missing."""
        from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
        from nats.js.errors import BucketNotFoundError, NotFoundError

        assert self._js is not None
        try:
            objects = await self._js.object_store(self.snapshots)
        except (BucketNotFoundError, NotFoundError):
            objects = await self._js.create_object_store(self.snapshots, config=ObjectStoreConfig(
                bucket=self.snapshots, storage=StorageType.FILE, replicas=self.replicas))
        try:
            pointer = await self._js.key_value(self.pointer)
        except (BucketNotFoundError, NotFoundError):
            pointer = await self._js.create_key_value(config=KeyValueConfig(
                bucket=self.pointer, history=1, storage=StorageType.FILE, replicas=self.replicas))
        return objects, pointer

    async def _c_newest_snapshot(self, pointer: Any) -> tuple[int, int | None]:
        """(log position, key revision) of the newest snapshot; (0, None) if there is none."""
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        try:
            entry = await pointer.get("snapshot")
        except (KeyNotFoundError, KeyDeletedError):
            return 0, None
        return int(entry.value or b"0"), entry.revision

    async def _c_load_snapshot(self, at_least: int) -> None:
        """Replace the view with the newest snapshot (under the lock): it must reach log message ``at_least``."""
        from nats.js.errors import ObjectNotFoundError

        objects, pointer = await self._c_buckets()
        for _ in range(5):
            seq, _ = await self._c_newest_snapshot(pointer)
            if seq < at_least:
                break
            try:
                result = await objects.get(f"state-{seq}")
            except ObjectNotFoundError:
                continue  # a newer one replaced it meanwhile: read the pointer again
            self._c_undo()
            loaded, recent = _snapshot.load(self._view, result.data or b"")
            self._seq = self.snapshot_seq = loaded
            for op_id, op_seq in recent.items():
                self._note_recent(op_id, op_seq)
            self._c_committed(loaded, {"workflow", "activity", "closed"})  # anything may have changed
            return
        raise StoreError(f"the NATS store's log was deleted up to message {at_least} and no snapshot covers it "
                         "(was the stream purged by hand?): the runs it held cannot be read")

    def _c_snapshot_due(self, before: int, after: int) -> None:
        """After this process wrote log messages ``before + 1`` to ``after``: snapshot if one crossed the mark."""
        every = self.snapshot_every
        if every and after // every > before // every and (self._snapshotter is None or self._snapshotter.done()):
            self._snapshotter = asyncio.create_task(self._c_snapshot())

    async def _c_snapshot(self) -> None:
        """Save the view as a snapshot, point at it, and delete the log before it and the older snapshot."""
        from nats.js.errors import KeyWrongLastSequenceError, ObjectNotFoundError

        try:
            objects, pointer = await self._c_buckets()
            assert self._lock is not None
            assert self._js is not None
            async with self._lock:
                seq = self._seq
                data = _snapshot.dump(self._view, seq, dict(self._recent))
            await objects.put(f"state-{seq}", data)
            while True:
                newest, revision = await self._c_newest_snapshot(pointer)
                if newest >= seq:
                    await objects.delete(f"state-{seq}")  # another process saved a newer one meanwhile
                    return
                try:
                    if revision is None:
                        await pointer.create("snapshot", str(seq).encode())
                    else:
                        await pointer.update("snapshot", str(seq).encode(), last=revision)
                except KeyWrongLastSequenceError:
                    continue
                except Exception as exc:  # create() on a key written meanwhile
                    if "wrong last sequence" in str(exc).lower():
                        continue
                    raise
                break
            self.snapshot_seq = max(self.snapshot_seq, seq)
            await self._js.purge_stream(self.stream, seq=seq + 1)  # every message before seq + 1
            if newest:
                with contextlib.suppress(ObjectNotFoundError):
                    await objects.delete(f"state-{newest}")
        except Exception as exc:  # noqa: BLE001 - a snapshot is an optimisation: the log stays whole
            _log.warning("the NATS store could not save a snapshot of its state: %r", exc)

    async def _c_close(self) -> None:
        if self._snapshotter is not None and not self._snapshotter.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._snapshotter), self._timeout)
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):  # closing: nothing left to do with an error
                await nc.close()

    async def _c_on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        assert self._lock is not None
        async with self._lock:
            if seq <= self._seq or self._broken:
                return  # this process's own operation, applied when it was published
            if seq != self._seq + 1:
                # The messages in between were deleted: a snapshot replaced them.
                try:
                    await self._c_load_snapshot(seq - 1)
                except Exception as exc:  # noqa: BLE001 - every later operation reports it
                    self._broken = (f"the NATS store's log skipped from message {self._seq} to {seq}: {exc}")
                    return
                if seq <= self._seq:
                    return
                if seq != self._seq + 1:
                    self._broken = (f"the NATS store's log skipped from message {self._seq} to {seq} "
                                    "and its snapshot does not fill the gap: reopen the store")
                    return
            try:
                kinds = await self._c_replay(msg.data)
            except Exception as exc:  # noqa: BLE001 - every later operation reports it
                self._broken = f"message {seq} of the NATS store's log could not be applied: {exc!r}"
                return
            self._c_committed(seq, kinds)

    async def _c_replay(self, data: bytes) -> set[str]:
        batch_id, ops = _codec.decode_batch(data)
        view = self._view
        kinds: set[str] = set()
        for name, now, lease_now, args in ops:
            view.pinned = (now, lease_now)
            try:
                if name == "tx":
                    view._write(partial(_replay_calls, calls=args))
                else:
                    positional, named = _codec.decode(args)
                    await getattr(view, name)(*positional, **named)
            finally:
                view.pinned = None
            kinds |= {k for j in view.take_journals() for k in j.kinds}
        self._note_recent(batch_id, self._seq + 1)
        return kinds

    def _note_recent(self, op_id: str, seq: int) -> None:
        self._recent[op_id] = seq
        while len(self._recent) > 10_000:
            self._recent.popitem(last=False)

    def _c_committed(self, seq: int, kinds: set[str]) -> None:
        self._seq = seq
        assert self._moved is not None
        self._moved.set()
        self._moved = asyncio.Event()
        for kind in sorted(kinds):
            for on_work, soon in self._listeners:
                with contextlib.suppress(RuntimeError):  # that listener's loop is gone
                    soon(partial(on_work, kind))

    async def _c_last_seq(self) -> int:
        assert self._js is not None
        info = await self._js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def _c_sync(self) -> None:
        """Wait until the view has folded every message the stream held when called.

        Gives up only when folding stalls (no message for ``max(timeout, 30)``
        seconds), not after a fixed time: opening on a long log takes as long
        as reading it.
        """
        last = await self._c_last_seq()
        patience = max(self._timeout, 30.0)
        seen, since = self._seq, time.monotonic()
        while self._seq < last:
            self._check()
            assert self._moved is not None
            if self._seq != seen:
                seen, since = self._seq, time.monotonic()
            elif time.monotonic() - since > patience:
                raise StoreError(f"the NATS store could not catch up with its log (at {self._seq} of {last})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), 1.0)

    def _check(self) -> None:
        if self._broken:
            raise StoreError(self._broken)

    def _c_undo(self) -> None:
        for journal in reversed(self._view.take_journals()):
            journal.rollback()

    async def _c_submit(self, name: str, local: Callable[[], Coroutine[Any, Any, Any]],
                        args: Callable[[], Any] | None) -> Any:
        """Queue an operation for the committer (``args`` None: a read, which never writes); wait for its end."""
        pending = _Pending(name, local, args, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._c_commit_loop())
        return await pending.future

    async def _c_commit_loop(self) -> None:
        """Record the queued operations, a batch at a time: one log message (or one freshness check) per batch."""
        while self._queue:
            batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            try:
                await self._c_batch(batch)
            except BaseException as exc:
                error = exc if isinstance(exc, Exception) else StoreError(f"the NATS store stopped: {exc!r}")
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise

    async def _c_run_batch(self, batch: list[_Pending]) -> None:
        view = self._view
        for p in batch:
            p.now, p.lease_now = self._clock(), self._lease_clock()
            view.pinned = (p.now, p.lease_now)
            try:
                p.outcome = (True, await p.local())
            except Exception as exc:  # noqa: BLE001 - an error is an answer too, if the copy was current
                self._c_undo()
                p.outcome = (False, exc)
            finally:
                view.pinned = None
            p.journals = view.take_journals()

    async def _c_batch(self, batch: list[_Pending]) -> None:
        """Run ``batch`` on the copy; publish its writes as one message fenced on the copy's position.

        A refused publish (another process wrote first) undoes the copy's
        changes, catches up and runs the batch again. A batch that wrote
        nothing is answered once the copy is known to be current.
        """
        from nats.js.errors import APIError

        assert self._lock is not None
        assert self._js is not None
        deadline = time.monotonic() + max(self._timeout * 3, 30.0)
        fresh = False
        unknown: str | None = None  # the id of a publish whose outcome is unknown
        while True:
            self._check()
            async with self._lock:
                if unknown is not None and unknown in self._recent:
                    return _resolve(batch)  # it was stored after all, decided on the state at its fence
                base = self._seq
                await self._c_run_batch(batch)
                writers = [p for p in batch if p.writes]
                if writers:
                    batch_id = uuid.uuid4().hex
                    data = _codec.encode_batch(batch_id, [(p.name, p.now, p.lease_now, p.args()) for p in writers
                                                          if p.args is not None])
                    for p in writers:
                        _failpoint("before_publish", p.name)
                    try:
                        ack = await self._js.publish(self.subject, data, stream=self.stream,
                                                     headers={"Nats-Expected-Last-Sequence": str(base)})
                    except APIError as exc:
                        _undo(batch)
                        if exc.err_code != _WRONG_LAST_SEQUENCE:
                            if exc.description and "maximum payload" in exc.description.lower():
                                raise StoreError(f"an operation of {len(data)} bytes is larger than the NATS "
                                                 f"server's max_payload: {exc.description}") from exc
                            raise StoreError(f"NATS refused an operation of the store: {exc!r}") from exc
                    except Exception as exc:
                        _undo(batch)
                        if time.monotonic() > deadline:
                            raise StoreError(f"NATS did not confirm an operation of the store: {exc!r}") from exc
                        unknown = batch_id
                    else:
                        for p in writers:
                            _failpoint("after_publish", p.name)
                        kinds = {k for p in batch for j in p.journals for k in j.kinds}
                        self._note_recent(batch_id, ack.seq)
                        self._c_committed(ack.seq, kinds)
                        self._c_snapshot_due(base, ack.seq)
                        return _resolve(batch)
                elif fresh:
                    return _resolve(batch)
            if not writers:
                try:
                    if await self._c_last_seq() == base:
                        return _resolve(batch)  # the copy was current: the answers stand
                except Exception as exc:
                    if time.monotonic() > deadline:
                        raise StoreError(f"the NATS store cannot read its log: {exc!r}") from exc
            if time.monotonic() > deadline:
                raise StoreError("the NATS store could not record an operation: its log keeps moving")
            try:
                await self._c_sync()
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise StoreError(f"the NATS store cannot read its log: {exc!r}") from exc
                await asyncio.sleep(0.2)
                continue
            fresh = True

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
        recorder: list[_Recorder] = []

        async def local() -> _T:
            def body(tx: MemoryTx) -> _T:
                recorder[:] = [_Recorder(tx)]
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

    async def load(self, run_id: str, after_seq: int) -> tuple[RunRecord, list[Event]]:
        """A run and its events after ``after_seq``."""
        loaded: tuple[RunRecord, list[Event]] = await self._read("load", run_id, after_seq)
        return loaded

    async def next_wakeup(self) -> float | None:
        """The earliest time a timer, a task or a retry is due."""
        due: float | None = await self._read("next_wakeup")
        return due

    async def quiescence(self) -> tuple[bool, float | None]:
        """(busy, next_due): see :meth:`~retold.stores.Store.quiescence`."""
        found: tuple[bool, float | None] = await self._read("quiescence")
        return found

    async def closed_among(self, run_ids: Sequence[str]) -> set[str]:
        """The ids among ``run_ids`` whose runs are no longer running."""
        closed: set[str] = await self._read("closed_among", list(run_ids))
        return closed

    async def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run by run id, or the latest run of a workflow id."""
        record: RunRecord = await self._read("get_run", run_or_workflow_id)
        return record

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100, offset: int = 0,
        id_prefix: str | None = None, started_after: float | None = None, started_before: float | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered (``id_prefix``: of the workflow id or the run id)."""
        runs: list[RunRecord] = await self._read(
            "list_runs", status=status, workflow=workflow, limit=limit, offset=offset, id_prefix=id_prefix,
            started_after=started_after, started_before=started_before)
        return runs
