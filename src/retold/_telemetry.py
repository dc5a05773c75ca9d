"""The engine's telemetry hooks: OpenTelemetry when installed, nothing otherwise.

The engine calls these hooks at a few points (a start, a committed or failed
workflow task, an activity attempt, a signal, a query, a lost lease). Without
OpenTelemetry (the ``retold[otel]`` extra) they go to :class:`NoTelemetry`,
whose methods do nothing, and :mod:`opentelemetry` is never imported. With
it, :mod:`retold._otel` implements them (spans and metrics); see
docs/operations.md for what they record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .engine._engine import Engine
    from .history import events as ev
    from .runtime._instance import WorkflowInstance
    from .stores._protocol import ActivityOutcome, ActivityTask

__all__ = ["Attempt", "NoTelemetry", "Telemetry", "load"]


class Attempt:
    """An activity attempt being recorded: the worker sets its outcome.

    Also the context manager that records nothing (:meth:`NoTelemetry.activity`).
    """

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome: ActivityOutcome | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()  # reusable, and cheaper than a generator


class NoTelemetry:
    """Hooks that record nothing (OpenTelemetry absent or turned off)."""

    enabled = False

    def attach(self, engine: Engine) -> None:
        """Start observing an engine that opened (its cache, its store)."""

    def detach(self, engine: Engine) -> None:
        """Stop observing an engine that closed."""

    def starting(self, workflow: str) -> AbstractContextManager[dict[str, str] | None]:
        """Around a start: gives the headers to record in the run's WorkflowStarted."""
        return _NOTHING

    def run_started(self, workflow: str) -> None:
        """A new run was stored."""

    def client_call(self, kind: str, name: str, ident: str) -> AbstractContextManager[None]:
        """Around a signal or a query sent to a run."""
        return _NOTHING

    def workflow_task(
        self, instance: WorkflowInstance, began: int, commands: Sequence[ev.Event]
    ) -> None:
        """A workflow task's step was committed (``began`` from :func:`time.time_ns`)."""

    def workflow_task_failed(
        self, run_id: str, instance: WorkflowInstance | None, began: int, error: BaseException,
        closed: bool,
    ) -> None:
        """A workflow task failed; ``closed`` if that failed the run."""

    def activity(self, task: ActivityTask, lag: float | None) -> AbstractContextManager[Attempt]:
        """Around an activity attempt; ``lag`` is its schedule-to-start delay, if known."""
        return Attempt()

    def lease_lost(self, kind: str) -> None:
        """A lease of ``kind`` (``workflow`` or ``activity``) was lost."""


Telemetry = NoTelemetry  # the interface; retold._otel.OtelTelemetry implements it


def load(enabled: bool | None, tracer_provider: Any, meter_provider: Any) -> NoTelemetry:
    """The engine's telemetry: OpenTelemetry's if it is installed, set up, and not turned off.

    With ``enabled`` None, "set up" means providers given here or global ones
    configured (an SDK's); the engine asks again when it opens, so a
    provider configured after the engine was made but before it opened
    counts. True records through whatever providers there are.

    Raises:
        ConfigurationError: ``enabled`` is True (or providers are given) but
            OpenTelemetry is not installed.
    """
    if enabled is False:
        return NoTelemetry()
    wanted = enabled or tracer_provider is not None or meter_provider is not None
    try:
        from . import _otel
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        if wanted:
            raise ConfigurationError(
                f"Engine telemetry needs OpenTelemetry ({exc}): pip install 'retold[otel]'"
            ) from exc
        return NoTelemetry()
    if not (enabled or _otel.configured(tracer_provider, meter_provider)):
        return NoTelemetry()  # no SDK set up (yet): nothing would be recorded
    return _otel.OtelTelemetry(tracer_provider, meter_provider)
