"""Updates: when an accepted update joins a run's history."""

from __future__ import annotations

from dataclasses import replace

from ...errors import ConflictError
from ...history import events as ev
from ...stores import Plan, RunState, TaskChange

__all__ = ["accept_update"]


def accept_update(run: RunState | None, event: ev.UpdateAccepted, validated_seq: int) -> Plan | None:
    """``UpdateAccepted`` for a run whose validator passed on its state at event ``validated_seq``.

    None if the run is closed (or unknown). It joins the history at once and
    wakes the run only if that state is still the run's: no event since, no
    step in flight (a leased workflow task would move it, and an input
    waiting in the inbox would come first). Otherwise ConflictError, and the
    caller validates again on the newer state: the validator always judged
    the state the update is accepted in. Never into the inbox.
    """
    if run is None or not run.open:
        return None
    task = run.task
    busy = task is not None and task.owner is not None and (task.live or bool(run.inbox))
    if busy or run.last_seq != validated_seq:
        raise ConflictError(run.run_id, validated_seq)
    return Plan(run.run_id, expect_seq=run.last_seq, events=[replace(event, seq=run.last_seq + 1)],
                task=TaskChange("wake"))
