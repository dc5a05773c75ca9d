"""An activity outcome lands on the run that scheduled it, whatever happened to task rows meanwhile."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import anyio
import pytest

import retold
from retold.stores.memory import MemoryStore
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

_started: dict[str, threading.Event] = {}
_release: dict[str, threading.Event] = {}


@retold.activity
def gated(tag: str) -> str:
    """Block (in a thread, which cancellation cannot interrupt) until the test releases ``tag``."""
    _started[tag].set()
    _release[tag].wait(60)
    return f"{tag}-secret"


@retold.workflow
async def asks(tag: str) -> str:
    return await retold.execute(gated, tag)


async def _wait_set(event: threading.Event) -> None:
    with anyio.fail_after(30):
        while not event.is_set():
            await anyio.sleep(0.01)


@pytest.fixture(params=["sqlite", "postgres", "memory", "nats"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'identity.db'}"
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_cancelled_runs_result_never_lands_on_the_next_run(
    make_engine: EngineFactory, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancel a run while its activity runs, start another: the first result is refused, not misfiled."""
    caplog.set_level(logging.WARNING, logger="retold.engine")
    for tag in ("A0", "B0"):
        _started[tag], _release[tag] = threading.Event(), threading.Event()
    try:
        # The activity runs in another engine (as in another process) with a long lease: the
        # engine that records the cancel stops only attempts it runs itself, and no lease renewal
        # comes within the test, so A's attempt returns and its worker submits its outcome.
        # memory:// is one process's store: both engines are handed the same one.
        shared = {"store": MemoryStore()} if url == "memory://" else {"url": url}
        async with make_engine([], [gated], lease=600, **shared) as _, make_engine([asks], [], **shared) as engine:
            a = await engine.start(asks.with_options(id="a0"), "A0")
            await _wait_set(_started["A0"])
            await a.cancel()
            with pytest.raises(retold.WorkflowCancelledError):
                await a.result(timeout=30)
            b = await engine.start(asks.with_options(id="b0"), "B0")
            await _wait_set(_started["B0"])
            _release["A0"].set()  # A's attempt returns now, after its task row is gone
            # A's outcome reaches the store before B's: it is either refused
            # (the task is gone) or, the bug, recorded on B.
            with anyio.fail_after(30):
                while "outcome refused" not in caplog.text and not await _completed(b):
                    await anyio.sleep(0.01)
            _release["B0"].set()
            assert await b.result(timeout=30) == "B0-secret"
    finally:
        for event in _release.values():
            event.set()


async def _completed(run: retold.RunHandle[str]) -> bool:
    history = await run.history()
    return any(event.type == "ActivityCompleted" for event in history.events)
