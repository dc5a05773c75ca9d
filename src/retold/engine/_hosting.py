"""Who runs what: this engine's registration, and a warning when a run waits for work nobody hosts.

Engines record in the store what they host (``Store.register_worker``) and
renew it every third of their lease. A run that schedules an activity no
running engine hosts would wait forever in silence: the engine that
scheduled it says so, once per (queue, activity), at WARNING.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._pending import NOT_HOSTED
from ..authoring import describe_registry
from ..history import events as ev
from ..stores import Hosting

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["HostingWatch"]

log = logging.getLogger("retold.engine")

_RECHECK = 30.0  # seconds before a pair found hosted elsewhere is looked up again


def _definitions(engine: Engine) -> dict[str, Any]:
    """What this engine hosts, described for processes that host nothing (best effort: {} if it fails)."""
    if not engine.workflows and not engine.activities:
        return {}
    try:
        return describe_registry(engine.workflows, engine.activities)
    except Exception:
        log.warning("could not describe this engine's workflows for its registration", exc_info=True)
        return {}


class HostingWatch:
    """This engine's :class:`Hosting`, and the check behind the not-hosted warning."""

    def __init__(self, engine: Engine, queues: Iterable[str]) -> None:
        self._engine = engine
        self.hosting = Hosting(
            workflows=tuple(sorted(engine.workflows)),
            queues=tuple(sorted(queues)) if engine.activities else (),
            activities=tuple(sorted(engine.activities)),
            definitions=_definitions(engine),
        )
        self._warned: set[tuple[str, str]] = set()
        self._checked: dict[tuple[str, str], float] = {}  # found hosted elsewhere, at (monotonic)
        self._checking: set[tuple[str, str]] = set()

    def scheduled(self, run_id: str, commands: Iterable[ev.Event]) -> None:
        """Look up, in the background, the activities ``commands`` schedule that this engine does not run."""
        now = time.monotonic()
        pairs = set()
        for cmd in commands:
            if isinstance(cmd, ev.ActivityScheduled):
                pair = (str(cmd.options.get("task_queue", "default")), cmd.activity)
                if (pair in self._warned or pair in self._checking or self.hosting.runs_activity(*pair)
                        or now - self._checked.get(pair, -_RECHECK) < _RECHECK):
                    continue
                pairs.add(pair)
        if pairs:
            self._checking |= pairs
            self._engine.spawn(self._check, run_id, sorted(pairs))

    async def _check(self, run_id: str, pairs: list[tuple[str, str]]) -> None:
        try:
            workers = await self._engine.store.live_workers()
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not take the engine down
            log.debug("could not read the worker registry: %s", exc)
            return
        finally:
            self._checking -= set(pairs)
        for queue, activity in pairs:
            if any(w.hosting.runs_activity(queue, activity) for w in workers):
                self._checked[(queue, activity)] = time.monotonic()
                continue
            self._warned.add((queue, activity))
            log.warning(
                "run %s is waiting for activity %r on queue %r: %s; it stays scheduled until an engine "
                "with that activity serving that queue starts (this is logged once per activity and queue)",
                run_id, activity, queue, NOT_HOSTED,
            )
