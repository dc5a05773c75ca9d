"""Logging that knows about runs and replay.

Two pieces, both plain :mod:`logging`:

* :class:`RunContextFilter` adds ``workflow``, ``workflow_id`` and ``run_id``
  (and in activities ``activity`` and ``attempt``) to every record that
  passes it, taken from where the record was made: workflow code on its
  run's loop, an activity attempt, or the engine working on a run. retold
  puts it on its own loggers; add it to a handler and records of any logger
  (``logging.getLogger(__name__)`` in activity code) carry them too.
* :func:`get_logger` returns a logger for workflow and activity code that
  drops its records while the run is replaying, so a line is logged once
  per real step, not again at every restart, cache eviction or query.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping, MutableMapping
from typing import Any, final

from .authoring._activity import _current as _current_activity
from .runtime import _guard

__all__ = ["RunContextFilter", "bind_run", "get_logger", "logger", "run_fields"]

# The run an engine task works on (a workflow task, an activity attempt):
# set by the engine's workers for the rest of that task's asyncio task.
_bound: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("retold_log_run", default=None)

_FIELDS = ("workflow", "workflow_id", "run_id", "activity", "attempt")


def bind_run(workflow: str, workflow_id: str, run_id: str, **more: Any) -> None:
    """Say which run the current asyncio task works on, for the records it makes (engine use)."""
    _bound.set({"workflow": workflow, "workflow_id": workflow_id, "run_id": run_id, **more})


def _runtime() -> Any:
    return getattr(asyncio.events._get_running_loop(), "retold_runtime", None)


def run_fields() -> Mapping[str, Any] | None:
    """The run fields of the code running now, or None outside any run."""
    runtime = _runtime()
    if runtime is not None:  # workflow code, on its run's loop (in a step thread)
        info = runtime.info()
        return {"workflow": info.workflow, "workflow_id": info.workflow_id, "run_id": info.run_id}
    bound = _bound.get()
    if bound is not None:
        return bound
    activity = _current_activity.get(None)
    if activity is not None:
        return {"workflow": "", "workflow_id": activity.workflow_id, "run_id": activity.run_id,
                "activity": activity.activity, "attempt": activity.attempt}
    return None


@final
class RunContextFilter(logging.Filter):
    """Adds the run's fields to each record, as attributes (like ``extra=``).

    ``workflow``, ``workflow_id`` and ``run_id`` always (empty strings outside
    a run, so a format string may name them), and ``activity`` and
    ``attempt`` in activities. Fields the call already gave in ``extra=`` are
    kept. Attach it to a handler to give every record it formats the fields::

        handler.addFilter(retold.RunContextFilter())

    It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields; always True."""
        fields = run_fields()
        for name in _FIELDS:
            if name not in record.__dict__:
                if fields is not None and name in fields:
                    record.__dict__[name] = fields[name]
                elif name in ("workflow", "workflow_id", "run_id"):
                    record.__dict__[name] = ""
        return True


class _RunLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger for workflow and activity code: quiet during replay, records with the run's fields."""

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging API's name
        runtime = _runtime()
        if runtime is not None and runtime.replaying:
            return False  # this line was logged when the step first ran
        return self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = run_fields()
        if fields:
            kwargs["extra"] = {**fields, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Log as :meth:`logging.Logger.log` does, with the workflow sandbox lifted.

        The handlers are the application's (a file, a socket, a log
        shipper), not workflow code: their I/O must not fail the step.
        """
        if not self.isEnabledFor(level):
            return
        msg, options = self.process(msg, kwargs)
        options["stacklevel"] = options.get("stacklevel", 1) + 1  # the caller, not this method
        guarded = getattr(_guard._state, "active", False)
        _guard._state.active = False
        try:
            self.logger.log(level, msg, *args, **options)
        finally:
            _guard._state.active = guarded


def get_logger(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger for workflow and activity code, wrapping ``logging.getLogger(name)``.

    In workflow code its records are dropped while the run replays (after a
    restart, a cache eviction, for a query): each line appears once, when
    the step that logs it first runs. A step whose commit fails (another
    worker moved the run first) is run again, and may log again. Records
    carry ``workflow``, ``workflow_id``, ``run_id`` and, in activities,
    ``activity`` and ``attempt`` as attributes. Outside runs it is the plain
    logger.
    """
    return _RunLogger(logging.getLogger(name), {})


logger = get_logger("retold.app")
"""A ready :func:`get_logger` logger, named ``retold.app``."""

_FILTER = RunContextFilter()
for _name in ("retold", "retold.engine", "retold.activity", "retold.workflow", "retold.worker", "retold.app"):
    logging.getLogger(_name).addFilter(_FILTER)
