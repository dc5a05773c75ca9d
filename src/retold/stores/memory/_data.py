"""The memory store's tables, as plain Python objects, and the undo journal that makes a transaction atomic.

Every change made inside a transaction goes through a :class:`Journal`,
which notes how to undo it; if the transaction's body raises, the notes are
played backwards and the tables are as they were. Nothing is copied up front.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...history import events as ev
from ...history.failure import BlockedTask, Failure
from .._protocol import RunRecord

__all__ = ["ActTask", "Journal", "Run", "WfTask", "copy_event", "json_copy"]

_MISSING: Any = object()
_KEY, _ATTR, _TRUNCATE = 0, 1, 2


class Journal:
    """Changes made by one transaction, and how to undo them."""

    __slots__ = ("kinds", "undo")

    def __init__(self) -> None:
        self.undo: list[tuple[int, Any, Any, Any]] = []
        self.kinds: set[str] = set()  # notifications, sent once the transaction commits

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self.undo.append((_KEY, table, key, table.get(key, _MISSING)))
        table[key] = value

    def pop(self, table: dict[Any, Any], key: Any) -> Any:
        old = table.pop(key, _MISSING)
        if old is _MISSING:
            return None
        self.undo.append((_KEY, table, key, old))
        return old

    def set(self, obj: Any, name: str, value: Any) -> None:
        self.undo.append((_ATTR, obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def extend(self, items: list[Any], more: list[Any]) -> None:
        self.undo.append((_TRUNCATE, items, len(items), None))
        items.extend(more)

    def rollback(self) -> None:
        undo, self.undo = self.undo, []
        for kind, target, key, old in reversed(undo):
            if kind == _KEY:
                if old is _MISSING:
                    target.pop(key, None)
                else:
                    target[key] = old
            elif kind == _ATTR:
                setattr(target, key, old)
            else:
                del target[key:]
        self.kinds.clear()


class Run:
    """A run's row."""

    __slots__ = ("attributes", "closed_at", "created_at", "failure", "last_seq", "memo", "next_run_id",
                 "parent_close_policy",
                 "parent_run_id", "parent_seq", "result", "run_id", "status", "workflow", "workflow_id")

    def __init__(self, run_id: str, workflow_id: str, workflow: str, created_at: float, last_seq: int,
                 parent_run_id: str | None, parent_seq: int | None) -> None:
        self.run_id, self.workflow_id, self.workflow = run_id, workflow_id, workflow
        self.status = "running"
        self.created_at = created_at
        self.closed_at: float | None = None
        self.last_seq = last_seq
        self.result: bytes | None = None
        self.failure: bytes | None = None  # JSON: every reader gets a copy of its own
        self.parent_run_id, self.parent_seq = parent_run_id, parent_seq
        self.next_run_id: str | None = None
        self.parent_close_policy: str | None = None
        self.attributes: dict[str, str] | None = None  # search attributes (stored forms); replaced, never changed
        self.memo: bytes | None = None  # JSON: every reader gets a copy of its own

    def record(self, task: WfTask | None = None) -> RunRecord:
        """The run's record; with its workflow task, its attempts and (while the run is open) its failure."""
        return RunRecord(
            run_id=self.run_id, workflow_id=self.workflow_id, workflow=self.workflow, status=self.status,  # type: ignore[arg-type]
            created_at=self.created_at, closed_at=self.closed_at, last_seq=self.last_seq, result=self.result,
            failure=None if self.failure is None else Failure.from_json(orjson.loads(self.failure)),
            parent_run_id=self.parent_run_id, next_run_id=self.next_run_id,
            parent_close_policy=self.parent_close_policy,
            task_attempts=0 if task is None else task.attempts,
            task_lapses=0 if task is None else task.lapses,
            task_failure=None if task is None or task.failure is None or self.status != "running"
            else BlockedTask.from_json(orjson.loads(task.failure)),
            search_attributes=None if self.attributes is None else dict(self.attributes),
            memo=None if self.memo is None else orjson.loads(self.memo),
        )


class WfTask:
    """A run's pending workflow task."""

    __slots__ = ("attempts", "expires", "failed_by", "failure", "lapses", "owner", "run_id", "signals", "stepping",
                 "visible_at", "workflow")

    def __init__(self, run_id: str, workflow: str, visible_at: float) -> None:
        self.run_id, self.workflow = run_id, workflow
        self.visible_at = visible_at
        self.owner: str | None = None
        self.expires: float | None = None
        self.attempts = 0  # deaths of workers while they ran a marked step of it
        self.lapses = 0  # times another owner's lease ran out since the last commit
        self.stepping = False  # a marked step is running (see TaskChange)
        self.signals = 0
        self.failure: bytes | None = None  # JSON of the last failed attempt's record: the run is blocked
        self.failed_by: tuple[str, ...] = ()  # code fingerprints it failed on


class ActTask:
    """An activity task."""

    __slots__ = ("activity", "attempt", "cancel_requested", "deadline", "deaths", "expires", "id", "input", "lapses",
                 "last_failure", "options", "owner", "queue", "run_id", "scheduled_at", "seq", "started_at", "stepping",
                 "visible_at", "workflow_id")

    def __init__(self, task_id: int, run_id: str, workflow_id: str, seq: int, activity: str, queue: str,
                 payload: bytes, options: bytes, scheduled_at: float, deadline: float | None) -> None:
        self.id, self.run_id, self.workflow_id, self.seq = task_id, run_id, workflow_id, seq
        self.activity, self.queue, self.input, self.options = activity, queue, payload, options
        self.attempt = 1
        self.lapses = 0  # its holders' leases that ran out in a row
        self.deaths = 0  # workers that died running a marked attempt of it
        self.stepping = False  # the current attempt runs under the stepping mark
        self.cancel_requested = False  # the run waits for its attempt to end
        self.scheduled_at = scheduled_at
        self.deadline = deadline
        self.visible_at = scheduled_at
        self.owner: str | None = None
        self.expires: float | None = None
        self.last_failure: bytes | None = None
        self.started_at: float | None = None  # when the attempt holding the lease started


def json_copy(value: Any) -> bytes:
    """``value`` as the JSON the SQL store would keep (readers decode a copy of their own)."""
    return orjson.dumps(value)


def copy_event(event: ev.Event, seq: int, at: float) -> ev.Event:
    """A private copy of ``event``, numbered ``seq`` at ``at``, as a SQL store would read it back."""
    return ev.decode_event(seq, at, *ev.encode_event(event))
