"""Snapshots of the NATS store's state: the folded log at one position, so the log before it can go.

A snapshot is the memory store's tables after folding the log up to message
``seq``, with the ids of the operations recorded last (a process that lost a
publish's reply looks its id up). It is JSON (events in the log's own form,
bytes in base64), compressed; nothing in it is executable, as in the log.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from ...errors import StoreError
from .._pending import Hosting
from .._plan import WorkflowEntry
from ..memory import MemoryStore
from ..memory._data import ActTask, Run, WfTask
from ._codec import decode, encode

__all__ = ["FORMAT", "dump", "load"]

FORMAT = 1

_ROWS: tuple[tuple[str, type[Any]], ...] = (("runs", Run), ("wfts", WfTask), ("tasks", ActTask))


def _row(obj: Any) -> dict[str, Any]:
    return {name: encode(getattr(obj, name)) for name in type(obj).__slots__}


def _unrow(cls: type[Any], data: dict[str, Any]) -> Any:
    obj = object.__new__(cls)
    for name in cls.__slots__:
        value = decode(data[name])
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
    return int(state["seq"]), dict(state["recent"])
