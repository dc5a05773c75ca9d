"""What an engine's workers may use of it: the narrow context, named in one place.

The workers (``_workflow_worker.py``, ``_activity_worker.py``) still take the
``Engine`` itself; they are being rebuilt around the run state machine
(issue 11). This protocol lists everything they read of it today, and mypy
checks below that ``Engine`` provides it, so that they can take a
``WorkerContext`` instead of the whole engine with its public mutable
attributes. The cross-references of the fast path (``workflow_worker``,
``activity_workers``) are meant to go with the component that will own
running ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._wake import Wakeup
    from ..authoring import Activity, Workflow
    from ..client import EventFeeds
    from ..history.codec import Codec
    from ..runtime import StepRunner
    from ..stores import Store
    from ._activity_worker import ActivityWorker
    from ._cache import InstanceCache
    from ._workflow_worker import WorkflowWorker

__all__ = ["WorkerContext"]


class WorkerContext(Protocol):
    """The store, codec, registry, lease settings and wake-ups that workers need."""

    @property
    def store(self) -> Store: ...
    @property
    def codec(self) -> Codec: ...
    @property
    def workflows(self) -> Mapping[str, Workflow[..., Any]]: ...
    @property
    def activities(self) -> Mapping[str, Activity[..., Any]]: ...
    @property
    def worker_id(self) -> str: ...
    @property
    def lease(self) -> float: ...
    @property
    def poll_interval(self) -> float: ...
    @property
    def workflow_concurrency(self) -> int: ...
    @property
    def max_workflow_task_attempts(self) -> int: ...
    @property
    def workflow_task_retry_delay(self) -> float: ...
    @property
    def draining(self) -> bool: ...
    @property
    def cache(self) -> InstanceCache: ...
    @property
    def steps(self) -> StepRunner: ...
    @property
    def feeds(self) -> EventFeeds: ...
    @property
    def wake_workflows(self) -> Wakeup: ...
    @property
    def wake_activities(self) -> Wakeup: ...
    @property
    def wake_timers(self) -> Wakeup: ...
    @property
    def workflow_worker(self) -> WorkflowWorker | None: ...
    @property
    def activity_workers(self) -> Sequence[ActivityWorker]: ...

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the engine's task group."""

    def notify_closed(self, run_id: str) -> None:
        """Wake the callers waiting for ``run_id`` to close."""
