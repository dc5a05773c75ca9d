"""The one way a run is rebuilt from its history, and what an activation returns.

The engine's cache misses and queries, ``retold.testing.replay``, the
cross-process replay worker, ``retold replay`` and the property-test
simulator all rebuild runs through :func:`replay`; an activation returns a
:class:`Completion` (new commands, or the failure of the workflow task) and
never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, final

from ..authoring._decorators import Workflow
from ..history import events as ev
from ..history.codec import Codec
from ._instance import WorkflowInstance

__all__ = ["Completion", "activate", "replay"]


@final
@dataclass(frozen=True, slots=True)
class Completion:
    """What an activation produced: new commands (numbered, not stored yet), or ``error``.

    ``error`` is the workflow task's failure, not the workflow's: the code
    diverged from its history (:class:`~retold.NondeterminismError`), reached
    the outside world, or broke a rule of the runtime. (A workflow that
    raises completes its task with a ``WorkflowFailed`` command.)
    """

    commands: list[ev.Event] = field(default_factory=list)
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """The activation completed."""
        return self.error is None

    def unwrap(self) -> list[ev.Event]:
        """The commands; raises ``error`` if the activation failed."""
        if self.error is not None:
            raise self.error
        return self.commands


def activate(instance: WorkflowInstance, events: Sequence[ev.Event]) -> Completion:
    """Feed ``instance`` the events it has not seen; never raises an Exception."""
    try:
        return Completion(instance.apply(events))
    except Exception as exc:  # noqa: BLE001 - the task's failure, handed back as a value
        return Completion(error=exc)


def replay(
    workflow: Workflow[..., Any], run_id: str, codec: Codec, events: Sequence[ev.Event], *,
    replay_only: bool = False,
) -> tuple[WorkflowInstance, Completion]:
    """Rebuild a run from ``events`` (its history, or a prefix of it) on a new instance.

    ``replay_only``: the instance will never run live (a query, a replay
    check), so nothing it does is a real step (its log lines are dropped).
    The caller owns the instance (``close()`` it when done) whether or not
    the completion is ok.
    """
    instance = WorkflowInstance(workflow, run_id, codec, replay_only=replay_only)
    return instance, activate(instance, events)
