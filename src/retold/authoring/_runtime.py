"""The seam between authoring API and runtime: a Protocol the runtime implements.

``retold.authoring`` never imports ``retold.runtime``; it finds the current
run through the running event loop's ``retold_runtime`` attribute.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, final

from ..errors import QueryError, RetoldError

if TYPE_CHECKING:
    from ._decorators import Activity, Workflow
    from ._options import ActivityOptions

__all__ = ["ContinueAsNew", "WorkflowInfo", "WorkflowRuntime", "current"]


@final
@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """Facts about the running workflow.

    Attributes:
        workflow: the workflow's registered name.
        workflow_id: the id given at start (stable across continue-as-new).
        run_id: this run's id.
        parent_run_id: the parent's run id, for a child workflow.
    """

    workflow: str
    workflow_id: str
    run_id: str
    parent_run_id: str | None


class ContinueAsNew(BaseException):
    """Raised by ``retold.continue_as_new()``; ends the run with a new one."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        super().__init__()
        self.args_ = args


class WorkflowRuntime(Protocol):
    """What a running workflow can ask of the runtime."""

    @property
    def querying(self) -> str | None:
        """The name of the query whose handler is running, or None."""
        ...

    @property
    def replaying(self) -> bool:
        """Whether the code runs again over recorded history (its log records are dropped)."""
        ...

    def info(self) -> WorkflowInfo: ...
    def now(self) -> datetime: ...
    def rng(self) -> random.Random: ...
    def execute_activity(
        self, activity: Activity[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        options: ActivityOptions,
    ) -> Awaitable[Any]: ...
    def start_child(
        self, workflow: Workflow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        workflow_id: str | None,
    ) -> tuple[str, asyncio.Future[Any]]: ...
    def start_workflow(
        self, workflow: Workflow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        workflow_id: str | None,
    ) -> Awaitable[str]: ...
    def wait_signal(self, name: str, type_: Any, timeout: float | None) -> Awaitable[Any]: ...
    def signal_workflow(self, workflow_id: str, name: str, value: Any) -> Awaitable[None]: ...
    def set_query_handler(self, name: str, handler: Callable[..., Any] | None) -> None: ...
    def set_update_handler(
        self, name: str, handler: Callable[..., Any] | None, validator: Callable[..., Any] | None,
    ) -> None: ...
    def side_effect(self, fn: Callable[[], Any], type_: Any) -> Any: ...
    def patched(self, patch_id: str) -> bool: ...
    def upsert_search_attributes(self, attributes: dict[str, str | None]) -> None: ...
    def track_call(self, coro: Coroutine[Any, Any, Any], call: str, where: str) -> None: ...
    def fail_task(self, error: BaseException) -> None: ...


def current(call: str) -> WorkflowRuntime:
    """Return the runtime of the workflow running on this thread."""
    loop = asyncio.events._get_running_loop()
    runtime: WorkflowRuntime | None = getattr(loop, "retold_runtime", None)
    if runtime is None:
        raise RetoldError(f"retold.{call}() can only be called inside workflow code")
    query = runtime.querying
    if query is not None and call not in _READ_ONLY:
        raise QueryError(
            f"retold.{call}() cannot be called in query handler {query!r}: a query reads the "
            f"run's state and must not change it (the run's replay would not see the change); "
            f"call it in the workflow code and keep the result in a variable the handler returns"
        )
    return runtime


# What a query handler may call: it reads the run and changes nothing.
_READ_ONLY = frozenset({"now", "info"})
