"""Snapshots of the NATS store's state: the folded log at one position, so the log before it can go.

A snapshot is the memory store's tables after folding the log up to message
``seq``, with the ids of the operations recorded last (a process that lost a
publish's reply looks its id up). It is JSON (events in the log's own form,
bytes in base64), compressed; nothing in it is executable, as in the log.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import StoreError
from .._pending import Hosting
from .._plan import ScheduleRow, WorkflowEntry
from ..memory import MemoryStore
from ..memory._data import ActTask, Run, WfTask
from ._codec import decode, encode
from ._failpoint import failpoint

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["FORMAT", "Buckets", "dump", "load"]

FORMAT = 1

_ROWS: tuple[tuple[str, type[Any]], ...] = (("runs", Run), ("wfts", WfTask), ("tasks", ActTask))


def _row(obj: Any) -> dict[str, Any]:
    return {name: encode(getattr(obj, name)) for name in type(obj).__slots__}


# Fields added since the first snapshot format, and their values in an older snapshot.
_ADDED: dict[str, Any] = {"lapses": 0, "stepping": False, "deaths": 0, "parent_close_policy": None,
                          "attributes": None, "memo": None, "cancel_requested": False}


def _unrow(cls: type[Any], data: dict[str, Any]) -> Any:
    obj = object.__new__(cls)
    for name in cls.__slots__:
        value = decode(data[name]) if name in data or name not in _ADDED else _ADDED[name]
        setattr(obj, name, tuple(value) if name == "failed_by" else value)
    return obj


def dump(view: MemoryStore, seq: int, recent: dict[str, int]) -> bytes:
    """``view``'s tables as they are after log message ``seq``, and the recent operation ids."""
    state = {
        "v": FORMAT, "seq": seq, "recent": list(recent.items()),
        "workflows": [[e.workflow_id, e.workflow, e.input_hash, e.idempotency_key, e.first_run_id,
                       e.current_run_id] for e in view.workflows.values()],
        "keys": view.keys,
        "events": {run_id: encode(events) for run_id, events in view.events.items()},
        "children": view.children,
        "run_tasks": {run_id: list(tasks.items()) for run_id, tasks in view.run_tasks.items()},
        "timers": {run_id: list(timers.items()) for run_id, timers in view.timers.items()},
        "inbox": {run_id: encode(items) for run_id, items in view.inbox.items()},
        "workers": view.workers,
        "hosting": {worker: [hosting.to_json().decode(), until] for worker, (hosting, until) in view.hosting.items()},
        "next_task_id": view.next_task_id, "next_inbox_id": view.next_inbox_id,
        "schedules": [encode(row) for row in view.schedules.values()],
    }
    for table, _ in _ROWS:
        state[table] = [_row(row) for row in getattr(view, table).values()]
    return zlib.compress(orjson.dumps(state), 1)


def load(view: MemoryStore, data: bytes) -> tuple[int, dict[str, int]]:
    """Replace ``view``'s tables with a snapshot's; return its position in the log and its recent ids."""
    try:
        state = orjson.loads(zlib.decompress(data))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise StoreError(f"a snapshot of the NATS store cannot be read: {exc}") from exc
    if state.get("v") != FORMAT:
        raise StoreError(f"a snapshot of the NATS store is in format {state.get('v')!r}; this version of retold "
                         f"reads format {FORMAT} (upgrade retold on every process sharing the store)")
    view.workflows = {row[0]: WorkflowEntry(*row) for row in state["workflows"]}
    view.keys = state["keys"]
    view.runs = {row.run_id: row for row in (_unrow(Run, r) for r in state["runs"])}
    view.events = {run_id: decode(events) for run_id, events in state["events"].items()}
    view.children = state["children"]
    view.wfts = {row.run_id: row for row in (_unrow(WfTask, r) for r in state["wfts"])}
    view.tasks = {row.id: row for row in (_unrow(ActTask, r) for r in state["tasks"])}
    view.queues = {}
    for task in view.tasks.values():
        view.queues.setdefault(task.queue, {})[task.id] = task
    view.run_tasks = {run_id: {seq: task_id for seq, task_id in tasks} for run_id, tasks in state["run_tasks"].items()}
    view.timers = {run_id: {seq: at for seq, at in timers} for run_id, timers in state["timers"].items()}
    view.inbox = {run_id: [(inbox_id, event) for inbox_id, event in decode(items)]
                  for run_id, items in state["inbox"].items()}
    view.workers = {worker: (host, pid, start) for worker, (host, pid, start) in state["workers"].items()}
    view.hosting = {worker: (Hosting.from_json(hosting), until)
                    for worker, (hosting, until) in state["hosting"].items()}
    view.next_task_id, view.next_inbox_id = state["next_task_id"], state["next_inbox_id"]
    rows: list[ScheduleRow] = [decode(row) for row in state.get("schedules", [])]  # none before schedules
    view.schedules = {row.schedule_id: row for row in rows}
    return int(state["seq"]), dict(state["recent"])


class Buckets:
    """Where snapshots are kept: the object store ``NAME_snapshots`` (``state-SEQ``) and the key
    ``snapshot`` of the key-value bucket ``NAME_meta``, which names the newest and only moves forward."""

    def __init__(self, js: JetStreamContext, objects: str, pointer: str, replicas: int) -> None:
        self._js, self._objects_name, self._pointer_name, self._replicas = js, objects, pointer, replicas
        self._objects: Any = None
        self._pointer: Any = None

    async def _open(self) -> tuple[Any, Any]:
        from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
        from nats.js.errors import BucketNotFoundError, NotFoundError

        if self._objects is None:
            try:
                self._objects = await self._js.object_store(self._objects_name)
            except (BucketNotFoundError, NotFoundError):
                self._objects = await self._js.create_object_store(self._objects_name, config=ObjectStoreConfig(
                    bucket=self._objects_name, storage=StorageType.FILE, replicas=self._replicas))
        if self._pointer is None:
            try:
                self._pointer = await self._js.key_value(self._pointer_name)
            except (BucketNotFoundError, NotFoundError):
                self._pointer = await self._js.create_key_value(config=KeyValueConfig(
                    bucket=self._pointer_name, history=1, storage=StorageType.FILE, replicas=self._replicas))
        return self._objects, self._pointer

    async def _newest(self) -> tuple[int, int | None]:
        """(log position, key revision) of the newest snapshot; (0, None) if there is none."""
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        _, pointer = await self._open()
        try:
            entry = await pointer.get("snapshot")
        except (KeyNotFoundError, KeyDeletedError):
            return 0, None
        return int(entry.value or b"0"), entry.revision

    async def fetch(self, at_least: int) -> bytes:
        """The newest snapshot, which must reach log message ``at_least``."""
        from nats.js.errors import ObjectNotFoundError

        objects, _ = await self._open()
        for _ in range(5):
            seq, _ = await self._newest()
            if seq < at_least:
                break
            try:
                result = await objects.get(f"state-{seq}")
            except ObjectNotFoundError:
                continue  # a newer one replaced it meanwhile: read the pointer again
            return bytes(result.data or b"")
        raise StoreError(f"the NATS store's log was deleted up to message {at_least} and no snapshot covers it "
                         "(was the stream purged by hand?): the runs it held cannot be read")

    async def save(self, seq: int, data: bytes) -> bool:
        """Keep ``data`` as the snapshot at log message ``seq`` and point at it, unless a newer one is there.

        True if the pointer now names it (the log up to ``seq`` may go); the
        snapshot it replaced is deleted.
        """
        from nats.js.errors import KeyWrongLastSequenceError, ObjectNotFoundError

        objects, pointer = await self._open()
        await objects.put(f"state-{seq}", data)
        failpoint("snapshot_saved", "snapshot")
        while True:
            newest, revision = await self._newest()
            if newest >= seq:
                await objects.delete(f"state-{seq}")  # another process saved a newer one meanwhile
                return False
            try:
                if revision is None:
                    await pointer.create("snapshot", str(seq).encode())
                else:
                    await pointer.update("snapshot", str(seq).encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue
            except Exception as exc:  # create() on a key another process created meanwhile
                if "wrong last sequence" not in str(exc).lower():
                    raise
                continue
            failpoint("snapshot_pointed", "snapshot")
            # The one it replaced, and any left by a process killed before it moved the pointer.
            for info in await objects.list(ignore_deletes=True):
                if info.name != f"state-{seq}":
                    with contextlib.suppress(ObjectNotFoundError):
                        await objects.delete(info.name)
            return True
