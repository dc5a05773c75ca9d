"""The state folded from the NATS store's log: the memory store's tables and rules, and a recorder of writes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from .._pending import Hosting
from .._plan import Plan, RunState, ScheduleRow, TaskState, WorkflowEntry
from ..memory import MemoryStore
from ..memory._data import Journal
from ..memory._tx import MemoryTx
from . import _codec

__all__ = ["Recorder", "View", "replay_calls"]

_T = TypeVar("_T")


class View(MemoryStore):
    """The state folded from the log: the memory store's tables and rules, run under the operation's clocks.

    Its transactions do not notify anyone and keep their journals (in
    :attr:`journals`) until the operation is published or undone. The memory
    store's choices among equals never depend on its dicts' order (undoing a
    refused operation puts a removed key back at the end of its dict), so
    replaying an operation decides alike in every process.
    """

    def __init__(self, clock: Callable[[], float], lease_clock: Callable[[], float]) -> None:
        self.pinned: tuple[float, float] | None = None
        super().__init__(clock=lambda: clock() if self.pinned is None else self.pinned[0],
                         lease_clock=lambda: lease_clock() if self.pinned is None else self.pinned[1])
        self.journals: list[Journal] = []

    def _write(self, fn: Callable[[MemoryTx], _T]) -> _T:
        journal = Journal()
        with self._locked():
            try:
                result = fn(MemoryTx(self, journal))
            except BaseException:
                journal.rollback()
                raise
        self.journals.append(journal)  # kept until the operation is published (or undone)
        return result

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str,
        hosting: Hosting | bytes | None = None, ttl: float = 15.0,
    ) -> list[tuple[str, int, str]]:
        """As the memory store's; ``hosting`` comes through the log as its JSON.

        Every registration is recorded (a log message): it renews the
        engine's liveness deadline, which the engines count it running by.
        """
        if isinstance(hosting, bytes):
            hosting = Hosting.from_json(hosting)
        return await super().register_worker(worker_id, host, pid, process_start, hosting=hosting, ttl=ttl)

    def take_journals(self) -> list[Journal]:
        journals, self.journals = self.journals, []
        return journals


class Recorder:
    """A :class:`~retold.stores.Tx` over the view's transaction that notes every write, for the log."""

    __slots__ = ("_tx", "calls")

    def __init__(self, tx: MemoryTx) -> None:
        self._tx = tx
        self.calls: list[list[Any]] = []  # [name, encoded argument, raised]

    def now(self) -> float:
        return self._tx.now()

    def run(self, run_or_workflow_id: str, *, inbox: bool = False) -> RunState | None:
        return self._tx.run(run_or_workflow_id, inbox=inbox)

    def entry(self, workflow_id: str, idempotency_key: str | None = None) -> WorkflowEntry | None:
        return self._tx.entry(workflow_id, idempotency_key)

    def prefetch_task(self, task_id: int) -> None:
        """Nothing to read ahead here."""

    def task(self, task_id: int) -> TaskState | None:
        return self._tx.task(task_id)

    def open_children(self, run_id: str) -> list[str]:
        return self._tx.open_children(run_id)

    def leased_runs(self, owner: str) -> list[str]:
        return self._tx.leased_runs(owner)

    def _note(self, name: str, arg: Any, call: Callable[[], _T]) -> _T:
        note = [name, _codec.encode(arg), False]
        self.calls.append(note)
        try:
            return call()
        except Exception:
            note[2] = True
            raise

    def take_due_timers(self, limit: int) -> list[tuple[str, int]]:
        return self._note("take_due_timers", limit, lambda: self._tx.take_due_timers(limit))

    def take_overdue_tasks(self, limit: int) -> list[TaskState]:
        return self._note("take_overdue_tasks", limit, lambda: self._tx.take_overdue_tasks(limit))

    def schedule(self, schedule_id: str, *, skip_locked: bool = False) -> ScheduleRow | None:
        return self._tx.schedule(schedule_id)

    def schedules(self) -> list[ScheduleRow]:
        return self._tx.schedules()

    def put_schedule(self, row: ScheduleRow) -> None:
        self._note("put_schedule", row, lambda: self._tx.put_schedule(row))

    def delete_schedule(self, schedule_id: str) -> bool:
        return self._note("delete_schedule", schedule_id, lambda: self._tx.delete_schedule(schedule_id))

    def apply(self, plan: Plan) -> list[tuple[str, int, int]]:
        return self._note("apply", plan, lambda: self._tx.apply(plan))


def replay_calls(tx: MemoryTx, *, calls: list[list[Any]]) -> None:
    for name, arg, raised in calls:
        method = getattr(tx, name)
        if raised:
            # It raised when it was decided too: the same partial writes, the same error.
            with contextlib.suppress(Exception):
                method(_codec.decode(arg))
        else:
            method(_codec.decode(arg))
