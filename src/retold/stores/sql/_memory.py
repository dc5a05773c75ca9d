"""PostgreSQL: what the store's own commits left, so that the next step of a run can be decided without reading.

After each commit the store remembers, per run it read or changed, the
run's state when that state is fully known (open, no workflow task: the
state a run is in between the steps this engine runs ahead), and the
activity tasks it inserted leased to an owner. A step that completes such
an activity (``Tx.prefetch_task`` then ``Tx.run``) is then decided on the
remembered state, and its transaction checks, before anything it writes,
that every part of that state the decision could have read is still so;
if one is not, the transaction fails with nothing written and the step is
decided again on what it reads (see ``SqlTx``).

What is remembered is only ever a guess: other processes share the
database and are not seen here. Soundness rests on the checks, never on
this memory being right.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TypeVar

from .._plan import RunState, TaskState

__all__ = ["Memory"]

_K = TypeVar("_K")
_V = TypeVar("_V")

_KEPT = 8192  # runs, and activity tasks, remembered at most (the oldest forgotten first)


class Memory:
    """Runs (with their integer keys) and leased activity tasks as this store's last commits left them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, tuple[RunState, int]] = OrderedDict()
        self._tasks: OrderedDict[int, TaskState] = OrderedDict()

    def run(self, run_id: str) -> tuple[RunState, int] | None:
        with self._lock:
            return self._runs.get(run_id)

    def task(self, task_id: int) -> TaskState | None:
        with self._lock:
            return self._tasks.get(task_id)

    def forget(self, run_id: str, task_id: int | None = None) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            if task_id is not None:
                self._tasks.pop(task_id, None)

    def update(
        self, runs: dict[str, tuple[RunState, int] | None], tasks: list[TaskState], gone: set[int],
    ) -> None:
        """After a commit: the runs' states (None: not known, forget it), tasks inserted, tasks changed or gone."""
        with self._lock:
            for run_id, known in runs.items():
                if known is None:
                    self._runs.pop(run_id, None)
                else:
                    _put(self._runs, run_id, known)
            for task_id in gone:
                self._tasks.pop(task_id, None)
            for task in tasks:
                _put(self._tasks, task.id, task)


def _put(kept: OrderedDict[_K, _V], key: _K, value: _V) -> None:
    kept[key] = value
    kept.move_to_end(key)
    if len(kept) > _KEPT:
        kept.popitem(last=False)
