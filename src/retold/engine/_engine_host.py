"""What an engine adds to its own client (:class:`retold.client.Host`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._pending import PendingWork
from ..authoring import Workflow
from ..errors import NotRegisteredError
from ..runtime import StepRunner, WorkflowInstance
from ..stores import RunRecord, StartRequest
from ._runs import Runs

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["EngineHost"]


class EngineHost:
    """What this engine adds to its client (:class:`retold.client.Host`): its workers see starts,
    signals and cancels at once, and queries read its cache."""

    def __init__(self, engine: Engine, steps: StepRunner) -> None:
        self._engine = engine
        self.steps = steps

    @property
    def runs(self) -> Runs:
        return self._engine.runs  # read at each call: tests put a counting one in its place

    def check_start(self, workflow: Workflow[..., Any]) -> None:
        # An engine that runs workers refuses a workflow function it does not
        # host: most often a forgotten registration (its name means "hosted elsewhere").
        engine = self._engine
        hosted = engine.workflows.get(workflow.name)
        if engine._run_workers and (hosted is None or not hosted.same(workflow)):
            raise NotRegisteredError("workflow", workflow.name)

    async def store_start(self, request: StartRequest, definition: Workflow[..., Any] | None) -> tuple[RunRecord, bool]:
        # The fast path: a run this engine hosts, started while it has a free
        # slot, has its first workflow task done here and stored with the start.
        return await self._engine.ahead.start(definition, request)

    def input_recorded(self, run_id: str) -> None:
        self._engine.wake_workflows.set()

    def schedule_changed(self) -> None:
        self._engine.wake_schedules.set()

    async def pending_work(self, record: RunRecord) -> PendingWork:
        return await self._engine.pending_work(record)

    def run_terminated(self, run_id: str) -> None:
        engine = self._engine
        engine.cache.drop(run_id)
        engine.notify_closed(run_id)
        engine.wake_workflows.set()  # its parent and children have work

    def cached(self, run_id: str) -> WorkflowInstance | None:
        return self._engine.cache.peek(run_id)

    def running_here(self, run_id: str) -> bool:
        engine = self._engine
        instance = engine.cache.peek(run_id)
        if instance is not None and not instance.finished:
            return True
        worker = engine.workflow_worker
        return worker is not None and (run_id in worker.processing or run_id in worker.queued)

    def stepping_here(self, run_id: str) -> bool:
        worker = self._engine.workflow_worker
        return worker is not None and run_id in worker.processing

    def drop_cached(self, instance: WorkflowInstance) -> None:
        cache = self._engine.cache
        if cache.peek(instance.run_id) is instance:
            cache.drop(instance.run_id)

    def on_work(self, kind: str) -> None:
        if kind == "workflow":
            self._engine.wake_workflows.set()
        elif kind == "activity":
            self._engine.wake_activities.set()
