"""Worker processes: host workflows and activities found in a module, drain on SIGTERM.

Split mode runs the program that starts workflows (a web app with a
client-only ``Engine(url, run_workers=False)``) apart from any number of
worker processes on any number of machines, all on one store::

    python -m retold worker myapp.tasks --url postgresql+psycopg://db/app

The target names what to host, as ``MODULE`` or ``MODULE:ATTR`` (``ATTR``
may be dotted):

* a module (``myapp.tasks``, or ``myapp:tasks``): every ``@retold.workflow``
  and ``@retold.activity`` defined at its top level;
* a list, tuple or set of workflows and activities: exactly those;
* a single workflow or activity;
* a mapping of :class:`~retold.Engine` keyword arguments
  (``{"workflows": [...], "activities": [...], "activity_concurrency": {...},
  "lease": 10}``): full control; a ``url`` in it is used when the command
  line gives none.

The URL comes from ``--url``, else the target's mapping, else the
``RETOLD_URL`` environment variable, else ``sqlite:///retold.db``.

On SIGTERM or SIGINT the worker stops claiming, lets the tasks in flight
finish for up to ``grace`` seconds, hands the rest back to the store (other
workers take them at once, not after their leases), and exits with status 0.
A second signal skips the rest of the grace period.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import signal
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import anyio

from . import Engine
from .authoring import Activity, Workflow
from .client import DEFAULT_URL
from .errors import ConfigurationError

__all__ = ["load_target", "run_worker", "serve"]

log = logging.getLogger("retold.worker")


def _collect(items: Iterable[Any], where: str) -> dict[str, Any]:
    workflows: list[Any] = []
    activities: list[Any] = []
    for item in items:
        if isinstance(item, Workflow):
            workflows.append(item)
        elif isinstance(item, Activity):
            activities.append(item)
        else:
            raise ConfigurationError(f"{where} holds {item!r}, which is neither a workflow nor an activity")
    return {"workflows": workflows, "activities": activities}


def _from_module(module: ModuleType) -> dict[str, Any]:
    found: dict[int, Any] = {}
    for value in vars(module).values():
        if isinstance(value, Workflow | Activity):
            found.setdefault(id(value), value)
    return _collect(found.values(), module.__name__)


def load_target(target: str) -> dict[str, Any]:
    """The :class:`~retold.Engine` keyword arguments a ``MODULE[:ATTR]`` target names.

    Raises:
        ConfigurationError: the module or attribute does not exist, holds
            something else, or names no workflow and no activity.
    """
    module_name, _, attr = target.partition(":")
    if not module_name or (":" in target and not attr):
        raise ConfigurationError(f"worker target {target!r} is not MODULE or MODULE:ATTR")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"worker target {target!r}: cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"worker target {target!r}: {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, ModuleType):
        kwargs = _from_module(obj)
    elif isinstance(obj, Mapping):
        kwargs = dict(obj)
        allowed = set(inspect.signature(Engine).parameters)
        unknown = sorted(str(key) for key in kwargs if key not in allowed)
        if unknown:
            raise ConfigurationError(
                f"worker target {target!r} has keys {unknown} that are not Engine arguments"
            )
    elif isinstance(obj, Workflow | Activity):
        kwargs = _collect([obj], target)
    elif isinstance(obj, list | tuple | set | frozenset):
        kwargs = _collect(obj, target)
    else:
        raise ConfigurationError(
            f"worker target {target!r} is {type(obj).__name__}: name a module, a list of workflows "
            "and activities, one of them, or a mapping of Engine arguments"
        )
    if not kwargs.get("workflows") and not kwargs.get("activities"):
        raise ConfigurationError(f"worker target {target!r} names no @retold.workflow and no @retold.activity")
    return kwargs


async def serve(engine: Engine, *, grace: float) -> bool:
    """Run an engine until SIGTERM or SIGINT, then drain it for up to ``grace`` seconds.

    Returns:
        True if every task in flight finished within the grace period (the
        rest were handed back).
    """
    drained = True
    async with engine:
        workflows, activities = sorted(engine.workflows), sorted(engine.activities)
        # The handlers first, then "ready": a SIGTERM sent as soon as the line
        # appears must drain, not meet Python's default handler (exit -15).
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            log.info(
                "retold worker %s ready (pid %d): workflows %s, activities %s on %s",
                engine.worker_id, os.getpid(), workflows, activities, getattr(engine.store, "url", "?"),
            )
            async for signum in signals:
                log.info("retold worker %s: %s, draining (grace %.1f s)",
                         engine.worker_id, signal.Signals(signum).name, grace)
                break
            async with anyio.create_task_group() as tg:

                async def second_signal() -> None:
                    async for signum in signals:
                        log.info("retold worker %s: %s again, stopping now",
                                 engine.worker_id, signal.Signals(signum).name)
                        tg.cancel_scope.cancel()

                tg.start_soon(second_signal)
                drained = False
                drained = await engine.drain(grace)
                tg.cancel_scope.cancel()
        log.info("retold worker %s: %s, handing back what is left",
                 engine.worker_id, "every task finished" if drained else "grace period over")
    log.info("retold worker %s stopped", engine.worker_id)
    return drained


def run_worker(
    target: str,
    url: str | None = None,
    *,
    grace: float = 30.0,
    backend: str = "asyncio",
    **engine_options: Any,
) -> int:
    """Host the workflows and activities ``target`` names until SIGTERM or SIGINT.

    Args:
        target: ``MODULE`` or ``MODULE:ATTR`` (see the module docstring).
        url: the store URL; None takes the target's, then ``RETOLD_URL``,
            then ``sqlite:///retold.db``.
        grace: seconds to let tasks in flight finish after the first signal.
        backend: ``asyncio`` or ``trio``.
        engine_options: more :class:`~retold.Engine` keyword arguments
            (``lease``, ``poll_interval``, ``activity_concurrency``...);
            they override the target's.

    Returns:
        The process exit status: 0 after a drain.

    Raises:
        ConfigurationError: the target or an option is not usable.
    """
    if grace < 0:
        raise ConfigurationError(f"worker grace must not be negative, got {grace}")
    kwargs = {**load_target(target), **engine_options}
    kwargs["url"] = url or kwargs.get("url") or os.environ.get("RETOLD_URL") or DEFAULT_URL
    engine = Engine(**kwargs)
    anyio.run(lambda: serve(engine, grace=grace), backend=backend)
    return 0
