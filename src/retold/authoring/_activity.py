"""What activity code can ask while it runs: its info and a heartbeat."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any, final

from ..errors import RetoldError

__all__ = ["ActivityInfo", "activity_info", "heartbeat"]


@final
@dataclass(slots=True)
class ActivityInfo:
    """Facts about the running activity attempt.

    Attributes:
        activity: the activity's registered name.
        workflow_id: the workflow that scheduled it.
        run_id: that workflow's run id.
        seq: the event number of its ``ActivityScheduled`` event.
        attempt: 1 for the first attempt, then 2, 3...
        idempotency_key: ``"{workflow_id}/{run_id}/{seq}"``, the same on every
            attempt and after crashes: use it to deduplicate side effects.
        heartbeat_details: the details of the last heartbeat, if any.
    """

    activity: str
    workflow_id: str
    run_id: str
    seq: int
    attempt: int
    idempotency_key: str
    heartbeat_details: Any = None
    last_heartbeat: float = field(default_factory=time.monotonic)


_current: contextvars.ContextVar[ActivityInfo] = contextvars.ContextVar("retold_activity")


def activity_info() -> ActivityInfo:
    """Return the info of the activity attempt running in this context."""
    try:
        return _current.get()
    except LookupError:
        raise RetoldError("retold.activity_info() can only be called inside an activity") from None


def heartbeat(details: Any = None) -> None:
    """Tell the engine this activity attempt is alive (and optionally how far it got).

    Required at least every ``heartbeat_timeout`` when the activity has one.
    """
    info = activity_info()
    info.last_heartbeat = time.monotonic()
    info.heartbeat_details = details
