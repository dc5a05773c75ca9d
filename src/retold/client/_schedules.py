"""A handle on a stored schedule: describe, update, pause, resume, trigger, delete."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, final

from ..engine import KEEP, Keep, Overlap, ScheduleDescription, Schedules

if TYPE_CHECKING:
    from ..authoring import Workflow

__all__ = ["ScheduleHandle"]

P = ParamSpec("P")
R = TypeVar("R")

_Encode = Callable[["Workflow[Any, Any] | str", Sequence[Any], Mapping[str, Any]], tuple[str, bytes, str]]
_EncodeByName = Callable[[str, Sequence[Any]], tuple[str, bytes, str]]


def _nothing() -> None:
    pass


@final
class ScheduleHandle:
    """A schedule, by id (``Client.schedule`` creates one; ``Client.get_schedule`` finds one).

    Every method raises ``ScheduleNotFoundError`` if the schedule was deleted.
    """

    def __init__(
        self, schedules: Schedules, schedule_id: str, encode: _Encode | None = None,
        encode_by_name: _EncodeByName | None = None, changed: Callable[[], None] = _nothing,
    ) -> None:
        self._schedules = schedules
        self.id = schedule_id
        self._encode, self._encode_by_name, self._changed = encode, encode_by_name, changed

    def __repr__(self) -> str:
        return f"ScheduleHandle({self.id!r})"

    async def update(
        self, *, cron: str | Keep | None = KEEP, every: timedelta | Keep | None = KEEP,
        timezone: str | Keep = KEEP, jitter: timedelta | Keep | None = KEEP, overlap: Overlap | Keep = KEEP,
        catchup_limit: int | Keep = KEEP, start_at: datetime | Keep | None = KEEP, paused: bool | Keep = KEEP,
    ) -> ScheduleDescription:
        """Change it in place: the fields given (as in :class:`~retold.Schedule`); the others are kept,
        and so are its id, its counters, its last run and a buffered fire::

            await handle.update(cron="0 3 * * *")              # a cron replaces an interval, and back
            await handle.update(overlap="allow_all", paused=False)

        A new ``cron``, ``every``, ``timezone`` or ``start_at`` counts fire
        times again from now (those missed while paused are dropped); an
        interval keeps counting from its ``start_at``. All is one store
        transaction, checked first as a new ``Schedule`` would be.

        Raises:
            ConfigurationError: the result is not a valid schedule (nothing is written).
        """
        given = {"cron": cron, "every": every, "timezone": timezone, "jitter": jitter, "overlap": overlap,
                 "catchup_limit": catchup_limit, "start_at": start_at, "paused": paused}
        described = await self._schedules.update(self.id, {k: v for k, v in given.items() if v is not KEEP})
        self._changed()
        return described

    async def update_workflow(
        self, workflow: Workflow[P, R] | str, /, *args: P.args, **kwargs: P.kwargs,
    ) -> ScheduleDescription:
        """Start ``workflow`` with these arguments from the next fire on (typed as for ``Client.schedule``).

        A fire buffered meanwhile starts with them too.

        Raises:
            InvalidArgumentsError: the arguments do not fit its signature or types (nothing is written).
        """
        if self._encode is None:
            raise RuntimeError("this ScheduleHandle was not made by a Client")
        described = await self._schedules.update(self.id, {}, self._encode(workflow, args, kwargs))
        self._changed()
        return described

    async def update_by_name(
        self, changes: Mapping[str, Any] | None = None, workflow: str | None = None, args: Sequence[Any] | None = None,
    ) -> ScheduleDescription:
        """:meth:`update` and :meth:`update_workflow` in one transaction, for callers that know
        workflows by name, with arguments in their JSON form (HTTP, CLI).

        ``changes``: fields of :class:`~retold.Schedule` by name (``every`` and
        ``jitter`` as timedeltas). ``args`` without ``workflow``: new arguments
        for the schedule's workflow.

        Raises:
            ConfigurationError: an unknown field, or the result is not a valid schedule.
            NotRegisteredError: this client does not know the workflow.
            InvalidArgumentsError: the arguments do not fit its signature or types.
        """
        if self._encode_by_name is None:
            raise RuntimeError("this ScheduleHandle was not made by a Client")
        encoded = None
        if workflow is not None or args is not None:
            name = workflow if workflow is not None else (await self.describe(next_fires=0)).workflow
            encoded = self._encode_by_name(name, list(args or ()))
        described = await self._schedules.update(self.id, dict(changes or {}), encoded)
        self._changed()
        return described

    async def describe(self, *, next_fires: int = 5) -> ScheduleDescription:
        """Its definition, state (fires, skipped fires, last run) and its next ``next_fires`` fire times."""
        return await self._schedules.describe(self.id, next_fires)

    async def pause(self) -> None:
        """Stop firing until :meth:`resume` (fire times that pass meanwhile count as missed)."""
        await self._schedules.pause(self.id, True)

    async def resume(self) -> None:
        """Fire again; at most ``catchup_limit`` of the fire times missed while paused are started."""
        await self._schedules.pause(self.id, False)
        self._changed()

    async def trigger(self) -> str | None:
        """Fire now, under its overlap policy; the workflow id of the run started (None: skipped or buffered)."""
        return await self._schedules.trigger(self.id)

    async def delete(self) -> None:
        """Delete it; runs it started go on."""
        await self._schedules.delete(self.id)
