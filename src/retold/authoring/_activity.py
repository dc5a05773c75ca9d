"""What activity code can ask while it runs: its info and a heartbeat."""

from __future__ import annotations

import asyncio
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
        cancelled: True once the engine stopped this attempt: its activity was
            cancelled (the workflow stopped waiting for it, or the run closed)
            or its lease was lost. An ``async def`` activity gets
            ``CancelledError`` at its current await; a plain ``def`` one runs
            in a thread that cannot be interrupted, so it learns of it here or
            from :func:`heartbeat`, which then raises ``CancelledError``. Its
            outcome is not recorded either way.
    """

    activity: str
    workflow_id: str
    run_id: str
    seq: int
    attempt: int
    idempotency_key: str
    heartbeat_details: Any = None
    last_heartbeat: float = field(default_factory=time.monotonic)
    cancelled: bool = False


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

    Raises:
        asyncio.CancelledError: the engine stopped this attempt (see
            :attr:`ActivityInfo.cancelled`): return, or let it propagate.
    """
    info = activity_info()
    if info.cancelled:
        raise asyncio.CancelledError(
            f"activity {info.activity!r} (run {info.run_id}, event {info.seq}) was cancelled or lost its lease"
        )
    info.last_heartbeat = time.monotonic()
    info.heartbeat_details = details
