"""Engine start-up: a failure (or a cancel) at any step leaves nothing open behind it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

import retold
from retold.client import EventFeeds
from retold.engine import _liveness
from retold.engine._activity_worker import ActivityWorker
from retold.engine._workflow_worker import WorkflowWorker
from retold.stores.sql import SqlStore

pytestmark = pytest.mark.anyio


class StartupError(Exception):
    """The failure injected into one step of the engine's start-up."""


@retold.workflow
async def hello(name: str) -> str:
    return f"hello {name}"


class Injector:
    """At the step named ``at``: raise StartupError, or cancel the host's scope (as a host shutting down would)."""

    def __init__(self, at: str, cancel: bool) -> None:
        self.at = at
        self.cancel = cancel
        self.scope = anyio.CancelScope()

    def step(self, name: str) -> None:
        if name != self.at:
            return
        if self.cancel:
            self.scope.cancel()  # start-up's next checkpoint raises the backend's cancellation
        else:
            raise StartupError(name)


class ObservedStore(SqlStore):
    """A real SQLite store that runs the injector at its start-up calls, and counts opens and closes."""

    def __init__(self, url: str, injector: Injector) -> None:
        super().__init__(url)
        self._inject = injector.step
        self.opened = 0
        self.closed = 0
        self.unregistered: list[str] = []

    async def open(self) -> None:
        self.opened += 1
        await super().open()
        self._inject("store.open")  # opened, then failed: the pool must still be disposed

    async def close(self) -> None:
        self.closed += 1
        await super().close()

    async def register_worker(
        self, worker_id: str, host: str, pid: int, process_start: str, *, hosting: Any = None, ttl: float = 15.0,
    ) -> list[Any]:
        others = await super().register_worker(worker_id, host, pid, process_start, hosting=hosting, ttl=ttl)
        self._inject("register_worker")  # after its write: the engine must unregister
        return others

    async def reap_worker(self, worker_id: str) -> int:
        self._inject("reap_worker")
        return await super().reap_worker(worker_id)

    async def unregister_worker(self, worker_id: str) -> None:
        self.unregistered.append(worker_id)
        await super().unregister_worker(worker_id)


STORE_STEPS = ["store.open", "register_worker", "reap_worker"]
ENGINE_STEPS = ["feeds.open", "WorkflowWorker", "ActivityWorker"]


def inject(monkeypatch: pytest.MonkeyPatch, injector: Injector) -> None:
    """Run the injector at the engine's own start-up steps (the store's run it in ObservedStore)."""

    def wrap(name: str, original: Any) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            injector.step(name)
            return original(*args, **kwargs)

        return step

    monkeypatch.setattr(EventFeeds, "open", wrap("feeds.open", EventFeeds.open))
    monkeypatch.setattr("retold.engine._engine.WorkflowWorker", wrap("WorkflowWorker", WorkflowWorker))
    # after the workflow worker's task has started
    monkeypatch.setattr("retold.engine._engine.ActivityWorker", wrap("ActivityWorker", ActivityWorker))


def task_count() -> int:
    return len(anyio.get_running_tasks())


def only(error: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups, or the exception itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@pytest.fixture
def dead_worker(tmp_path: Path) -> str:
    """A store URL where an engine of this host is recorded whose process is gone (so start-up reaps it)."""
    url = f"sqlite:///{tmp_path / 'startup.db'}"

    async def record() -> None:
        store = SqlStore(url)
        await store.open()
        try:  # our pid with another start time: a process that has since died
            await store.register_worker("engine-dead", _liveness.host_key(), os.getpid(), "1")
        finally:
            await store.close()

    anyio.run(record)
    return url


@pytest.mark.parametrize("cancel", [False, True], ids=["error", "cancel"])
@pytest.mark.parametrize("step", STORE_STEPS + ENGINE_STEPS)
async def test_a_failed_start_leaves_nothing_open(
    step: str, cancel: bool, dead_worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = dead_worker
    injector = Injector(step, cancel)
    inject(monkeypatch, injector)
    store = ObservedStore(url, injector)
    engine = retold.Engine(store=store, workflows=[hello], poll_interval=0.05)
    before = task_count()

    caught: BaseException | None = None
    with injector.scope:
        try:
            async with engine:
                await anyio.sleep_forever()  # only a cancel during start-up gets here, and leaves at once
        except (StartupError, BaseExceptionGroup) as error:
            caught = error
    monkeypatch.undo()

    if cancel:
        assert injector.scope.cancelled_caught, f"the cancel during {step} did not reach the host's scope"
        assert caught is None, repr(caught)
    else:
        assert caught is not None, f"the engine started although {step} failed"
        assert isinstance(only(caught), StartupError), repr(caught)
        assert str(only(caught)) == step
    assert store.opened == 1
    assert store.closed == 1, f"the store was not closed once after {step}"
    assert task_count() == before, "the engine left tasks running"
    if not cancel:  # (a cancel takes effect at start-up's next checkpoint, which may be the registration)
        registered = step not in ("store.open", "feeds.open")
        assert store.unregistered == ([engine.worker_id] if registered else [])

    # The host carries on: the same task opens a new engine on the same file and runs a workflow.
    with anyio.fail_after(60):
        async with retold.Engine(url, workflows=[hello], poll_interval=0.05) as again:
            run = await again.start(hello, "again")
            assert await run.result() == "hello again"
            others = await again.store.register_worker("engine-probe", again._host, 1, "")
    assert engine.worker_id not in {worker for worker, _, _ in others}, "the failed engine stayed registered"


async def test_an_engine_cannot_be_entered_twice(tmp_path: Path) -> None:
    engine = retold.Engine(f"sqlite:///{tmp_path / 'twice.db'}", workflows=[hello], poll_interval=0.05)
    async with engine:
        with pytest.raises(retold.ConfigurationError, match="already open"):
            await engine.__aenter__()
        run = await engine.start(hello, "once")
        assert await run.result(timeout=60) == "hello once"
