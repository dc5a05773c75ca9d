"""WorkflowEnvironment: a real engine on a virtual clock that skips idle time."""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import anyio
from anyio.abc import TaskGroup

from .. import Engine
from ..authoring import Activity, AsyncActivity, SyncActivity, Workflow
from ..client import RunHandle
from ..errors import ConfigurationError
from ..runtime import strict_guard

__all__ = ["WorkflowEnvironment"]

P = ParamSpec("P")
R = TypeVar("R")


class _VirtualClock:
    """Real time plus an offset that only grows."""

    def __init__(self, start: datetime | None) -> None:
        self.offset = 0.0 if start is None else start.timestamp() - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance_to(self, when: float) -> None:
        now = self()
        if when > now:
            self.offset += when - now


def _replace(
    activities: Iterable[object],
    fakes: Mapping[str | Activity[..., Any], Callable[..., Any]],
) -> list[object]:
    if not fakes:
        return list(activities)  # the engine checks each item
    by_name: dict[str, object] = {getattr(a, "name", repr(a)): a for a in activities}
    for key, fake in fakes.items():
        name = key if isinstance(key, str) else key.name
        found = by_name.get(name)
        original = found if isinstance(found, Activity) else key if isinstance(key, Activity) else None
        if original is None:
            raise ConfigurationError(
                f"fake for activity {name!r}: pass the activity object, or list it in activities="
            )
        cls = AsyncActivity if inspect.iscoroutinefunction(fake) else SyncActivity
        replacement: Activity[..., Any] = cls(fake, original.name, original.options)
        replacement.types = original.types  # arguments are decoded to the real activity's types
        by_name[name] = replacement
    return list(by_name.values())


class WorkflowEnvironment:
    """An in-process engine for tests, on a virtual clock.

    Time skips: whenever every run is blocked (no task running or due) and
    the test is waiting, on ``run.result()`` or :meth:`sleep`, the clock
    jumps to the next timer, retry, timeout or schedule fire (the fire loop
    then fires it before time moves on). A workflow that sleeps 30
    days finishes in milliseconds, and ``retold.now()`` inside it shows the
    virtual time. Signals, queries, cancel and ``history()`` work as on a
    real engine, because it is one.

    Args:
        workflows: the workflows to host.
        activities: the activities to run.
        fakes: replacements for activities, by activity or name; a fake is
            called with the same (decoded) arguments.
        url: the store, ``memory://`` (default) or ``sqlite:///file.db``.
        start_time: the virtual clock's starting time (default: now).
        auto_skip: skip time while ``run.result()`` waits (default True);
            with False only :meth:`sleep` moves the clock.
        strict: fail workflow tasks that read the wall clock or unseeded
            randomness (``time.time()``, ``random.random()``...).
        engine_options: more :class:`~retold.Engine` keyword arguments.
            Unlike an engine's default, ``on_workflow_task_failure`` is
            ``"fail"`` here: a test sees a broken workflow task (a
            nondeterminism, a sandbox violation) as a failed run, rather
            than waiting on a blocked one.

    Use it as an async context manager::

        async with WorkflowEnvironment([onboard], [send_email]) as env:
            run = await env.start(onboard, "ada@example.com")
            await env.sleep(timedelta(days=2))
            assert await run.result() == ...
    """

    def __init__(
        self,
        workflows: Iterable[object] = (),
        activities: Iterable[object] = (),
        *,
        fakes: Mapping[str | Activity[..., Any], Callable[..., Any]] | None = None,
        url: str = "memory://",
        start_time: datetime | None = None,
        auto_skip: bool = True,
        strict: bool = True,
        **engine_options: Any,
    ) -> None:
        if start_time is not None and start_time.tzinfo is None:
            raise ConfigurationError("WorkflowEnvironment start_time must be timezone-aware")
        self.clock = _VirtualClock(start_time)
        engine_options.setdefault("poll_interval", 0.05)
        engine_options.setdefault("on_workflow_task_failure", "fail")
        self.engine = Engine(
            url, workflows=workflows, activities=_replace(activities, fakes or {}),
            clock=self.clock, **engine_options,
        )
        self.auto_skip = auto_skip
        self.strict = strict
        self.skipped = 0.0
        self._stack: contextlib.AsyncExitStack | None = None
        self._sleepers = 0

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.engine)
            stack.enter_context(strict_guard(self.strict))
            group: TaskGroup = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)
            group.start_soon(self._skipper)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    # -- the client API, delegated -----------------------------------------------------

    async def start(self, workflow: Workflow[P, R], /, *args: P.args, **kwargs: P.kwargs) -> RunHandle[R]:
        """Start a run, as :meth:`retold.Engine.start` (``workflow.with_options(id=...)`` for an id)."""
        return await self.engine.start(workflow, *args, **kwargs)

    def get_handle(self, workflow_or_run_id: str) -> RunHandle[Any]:
        """A handle on an existing run, as :meth:`retold.Engine.get_handle`."""
        return self.engine.get_handle(workflow_or_run_id)

    # -- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The virtual time."""
        return datetime.fromtimestamp(self.clock(), UTC)

    async def sleep(self, duration: timedelta | float) -> None:
        """Let ``duration`` of virtual time pass, firing due timers on the way."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        if seconds < 0:
            raise ValueError(f"WorkflowEnvironment.sleep() needs a duration >= 0, got {seconds}")
        target = self.clock() + seconds
        self._sleepers += 1
        try:
            while True:
                due = await self._wait_idle()
                if due is None or due > target:
                    self._jump(target)
                    await self._wait_idle()
                    return
                self._jump(due)
        finally:
            self._sleepers -= 1

    def _jump(self, when: float) -> None:
        before = self.clock()
        self.clock.advance_to(when)
        self.skipped += max(0.0, when - before)
        self.engine.wake_timers.set()
        self.engine.wake_schedules.set()
        self.engine.wake_workflows.set()
        self.engine.wake_activities.set()

    async def _wait_idle(self) -> float | None:
        """Wait until every run is blocked; return when work next comes due."""
        while True:
            busy, due = await self.engine.store.quiescence()
            if not busy:
                return due
            await anyio.sleep(0.002)

    async def _skipper(self) -> None:
        while True:
            await anyio.sleep(0.002)
            if not self.auto_skip or self._sleepers or not self.engine.client.waiting:
                continue
            busy, due = await self.engine.store.quiescence()
            if not busy and due is not None:
                self._jump(due)
