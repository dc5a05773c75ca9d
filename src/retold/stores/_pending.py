"""What stores say about a run's pending work and about the engines that could do it.

Plain rows, on the store's clock: the engine turns them into the public
:class:`~retold.PendingWork` of a run's description (``retold/_pending.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, final

import orjson

from ..history.failure import Failure

__all__ = ["ActivityRow", "ChildRow", "Hosting", "LiveWorker", "RunWork", "SignalRow", "TimerRow"]


@final
@dataclass(frozen=True, slots=True)
class Hosting:
    """What an engine runs: its workflows, and its activities on each of its task queues.

    Every queue an engine serves takes every activity it hosts (an activity
    may be sent to any queue with ``task_queue=``). ``definitions`` describes
    them for processes that host nothing (``GET /workflows`` of a client-only
    ``retold serve``): the JSON of :func:`retold.authoring.describe_registry`.
    """

    workflows: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    definitions: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def runs_activity(self, queue: str, activity: str) -> bool:
        """Whether this engine would claim ``activity`` from ``queue``."""
        return queue in self.queues and activity in self.activities

    def to_json(self) -> bytes:
        """The JSON a store keeps."""
        value: dict[str, Any] = {"workflows": self.workflows, "queues": self.queues, "activities": self.activities}
        if self.definitions:
            value["definitions"] = self.definitions
        return orjson.dumps(value)

    @classmethod
    def from_json(cls, data: bytes | str | None) -> Hosting:
        """Read :meth:`to_json`'s form (nothing recorded: hosts nothing)."""
        if not data:
            return cls()
        value: dict[str, Any] = orjson.loads(data)
        definitions = value.get("definitions")
        names = {k: tuple(str(x) for x in value.get(k, ())) for k in ("workflows", "queues", "activities")}
        return cls(names["workflows"], names["queues"], names["activities"],
                   definitions=definitions if isinstance(definitions, dict) else {})


@final
@dataclass(frozen=True, slots=True)
class LiveWorker:
    """An engine that registered (or renewed its registration) within its time to live."""

    worker_id: str
    hosting: Hosting


@final
@dataclass(frozen=True, slots=True)
class ActivityRow:
    """An activity task of a run: scheduled, running or waiting to retry.

    ``attempt`` is the attempt running now (or next); ``started_at`` and
    ``owner`` are set only while an attempt holds a live lease;
    ``visible_at`` is when the task may next be claimed (after a failed
    attempt, the retry time); ``last_failure`` the previous attempt's failure.
    """

    seq: int
    activity: str
    queue: str
    attempt: int
    options: dict[str, Any]
    scheduled_at: float
    visible_at: float
    started_at: float | None
    owner: str | None
    last_failure: Failure | None


@final
@dataclass(frozen=True, slots=True)
class TimerRow:
    """A timer of a run that has not fired."""

    seq: int
    fire_at: float


@final
@dataclass(frozen=True, slots=True)
class ChildRow:
    """A child run still running; ``seq`` is its ``ChildWorkflowStarted`` in the parent."""

    seq: int | None
    run_id: str
    workflow_id: str
    workflow: str


@final
@dataclass(frozen=True, slots=True)
class SignalRow:
    """A signal the run has not processed: in its history (``seq``, ``at``) or in its inbox (both None)."""

    name: str
    seq: int | None
    at: float | None


@final
@dataclass(frozen=True, slots=True)
class RunWork:
    """A run's pending work as a store reads it, in one read transaction.

    ``workflow_task`` is (visible_at, live owner or None, failed attempts)
    when the run has a workflow task; ``now`` is the store's clock then.
    """

    run_id: str
    activities: tuple[ActivityRow, ...]
    timers: tuple[TimerRow, ...]
    children: tuple[ChildRow, ...]
    signals: tuple[SignalRow, ...]
    workflow_task: tuple[float, str | None, int] | None
    now: float
