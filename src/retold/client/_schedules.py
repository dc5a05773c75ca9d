"""A handle on a stored schedule: describe, pause, resume, trigger, delete."""

from __future__ import annotations

from typing import final

from ..engine import ScheduleDescription, Schedules

__all__ = ["ScheduleHandle"]


@final
class ScheduleHandle:
    """A schedule, by id (``Client.schedule`` creates one; ``Client.get_schedule`` finds one).

    Every method raises ``ScheduleNotFoundError`` if the schedule was deleted.
    """

    def __init__(self, schedules: Schedules, schedule_id: str) -> None:
        self._schedules = schedules
        self.id = schedule_id

    def __repr__(self) -> str:
        return f"ScheduleHandle({self.id!r})"

    async def describe(self, *, next_fires: int = 5) -> ScheduleDescription:
        """Its definition, state (fires, skipped fires, last run) and its next ``next_fires`` fire times."""
        return await self._schedules.describe(self.id, next_fires)

    async def pause(self) -> None:
        """Stop firing until :meth:`resume` (fire times that pass meanwhile count as missed)."""
        await self._schedules.pause(self.id, True)

    async def resume(self) -> None:
        """Fire again; at most ``catchup_limit`` of the fire times missed while paused are started."""
        await self._schedules.pause(self.id, False)

    async def trigger(self) -> str | None:
        """Fire now, under its overlap policy; the workflow id of the run started (None: skipped or buffered)."""
        return await self._schedules.trigger(self.id)

    async def delete(self) -> None:
        """Delete it; runs it started go on."""
        await self._schedules.delete(self.id)
