"""The NATS store's log: recording operations on it, fenced, and folding it into this process's copy.

The layout (one fenced stream of operations, folded by every process into
a copy of the memory store's tables) is described in ``_store.py`` and
docs/nats.md; this module is the client loop's side of it: following the
log, recording batches of operations, and snapshots.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from ...errors import StoreError
from ..memory._data import Journal
from . import _codec, _snapshot
from ._failpoint import failpoint as _failpoint
from ._loop import ClientLoop
from ._url import parse_url
from ._view import View, replay_calls

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["Log"]

_log = logging.getLogger("retold.stores.nats")

_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed Nats-Expected-Last-Sequence


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


class Log:
    """The log's side of a NATS store: its state, and the coroutines that run on the client's loop."""

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
        self._view = View(self._clock, self._lease_clock)
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
        self._snapshots: _snapshot.Buckets | None = None

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
        self._snapshots = _snapshot.Buckets(self._js, self.snapshots, self.pointer, self.replicas)
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

    async def _c_load_snapshot(self, at_least: int) -> None:
        """Replace the view with the newest snapshot (under the lock): it must reach log message ``at_least``."""
        assert self._snapshots is not None
        data = await self._snapshots.fetch(at_least)
        self._c_undo()
        loaded, recent = _snapshot.load(self._view, data)
        self._seq = self.snapshot_seq = loaded
        for op_id, op_seq in recent.items():
            self._note_recent(op_id, op_seq)
        self._c_committed(loaded, {"workflow", "activity", "closed"})  # anything may have changed

    def _c_snapshot_due(self, before: int, after: int) -> None:
        """After this process wrote log messages ``before + 1`` to ``after``: snapshot if one crossed the mark."""
        every = self.snapshot_every
        if every and after // every > before // every and (self._snapshotter is None or self._snapshotter.done()):
            self._snapshotter = asyncio.create_task(self._c_snapshot())

    async def _c_snapshot(self) -> None:
        """Save the view as a snapshot, point at it, and delete the log before it."""
        assert self._lock is not None
        assert self._js is not None
        assert self._snapshots is not None
        try:
            async with self._lock:
                seq = self._seq
                data = _snapshot.dump(self._view, seq, dict(self._recent))
            if await self._snapshots.save(seq, data):
                self.snapshot_seq = max(self.snapshot_seq, seq)
                await self._js.purge_stream(self.stream, seq=seq + 1)  # every message before seq + 1
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
                    view._write(partial(replay_calls, calls=args))
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
