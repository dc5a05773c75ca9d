"""The seam through which an engine plugs its host into its own client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._pending import PendingWork
    from ..authoring import Workflow
    from ..engine import Runs
    from ..runtime import StepRunner, WorkflowInstance
    from ..stores import RunRecord, StartRequest

__all__ = ["Host"]


class Host(Protocol):
    """What an engine that hosts runs adds to its own client (see :class:`~retold.Engine`).

    A client alone writes starts, signals and cancels to the store and waits
    for workers elsewhere to notice them; a host's client also hands them to
    its own workers at once and answers queries from its cache.
    """

    steps: StepRunner
    """Where workflow code runs (a query's replay), under the host's deadlock limit."""

    @property
    def runs(self) -> Runs:
        """Where starts, signals and cancels are decided and recorded."""
        ...

    def check_start(self, workflow: Workflow[..., Any]) -> None:
        """Refuse a workflow function this host should run but does not (a forgotten registration)."""
        ...

    async def store_start(self, request: StartRequest, definition: Workflow[..., Any] | None) -> tuple[RunRecord, bool]:
        """Record the start (doing its first workflow task at once, if it can) and wake its workers."""
        ...

    def input_recorded(self, run_id: str) -> None:
        """A signal or cancel was recorded for ``run_id``: its workflow task awaits."""
        ...

    def schedule_changed(self) -> None:
        """A schedule was changed (its next fire may be sooner): the fire loop looks again."""
        ...

    async def pending_work(self, record: RunRecord) -> PendingWork:
        """What the run waits for, judged with this host counted as a running engine."""
        ...

    def run_terminated(self, run_id: str) -> None:
        """``run_id`` was terminated: drop its live instance, wake whoever waits on it."""
        ...

    def cached(self, run_id: str) -> WorkflowInstance | None:
        """The host's live instance of ``run_id``, if it holds one."""
        ...

    def running_here(self, run_id: str) -> bool:
        """Whether the host runs ``run_id`` now (its live instance, or a step of it in progress): its
        close here wakes the run's waiters."""
        ...

    def stepping_here(self, run_id: str) -> bool:
        """Whether a step of ``run_id`` is in progress here: when it ends, the host tells its waiters."""
        ...

    def drop_cached(self, instance: WorkflowInstance) -> None:
        """Forget ``instance`` if it is still the cached copy of its run (its next step replays)."""
        ...

    def on_work(self, kind: str) -> None:
        """Another process created work of ``kind`` (see :meth:`Store.listen <retold.stores.Store.listen>`)."""
        ...
