"""What the contract's tests share: the clock, the factory's type, a few steps."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from ...engine import Runs
from ...history import events as ev
from ...stores import StartRequest, Store


class ManualClock:
    """A clock the tests move by hand (``clock.now += 5``)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


StoreFactory = Callable[[ManualClock], AbstractAsyncContextManager[Store]]


async def start_run(store: Store, wid: str = "w") -> str:
    record, created = await Runs(store).start(StartRequest("wf", wid, b"[]", "h"))
    assert created
    return record.run_id


def schedule(seq: int, queue: str = "q") -> ev.ActivityScheduled:
    return ev.ActivityScheduled(seq=seq, at=0, activity="a", input=b"[]", options={"task_queue": queue})


async def run_with_activity(store: Store, wid: str) -> str:
    """A run whose first workflow task scheduled one activity of queue ``q``."""
    run_id = await start_run(store, wid)
    assert await store.claim_workflow_tasks("setup", ["wf"], 1000, 5.0)
    await Runs(store).commit_workflow_task(run_id, "setup", 1, [schedule(2)])
    return run_id


async def history_types(store: Store, run_id: str, after: int = 0) -> list[str]:
    _, history = await store.load(run_id, after)
    return [e.type for e in history]


async def count_runs(store: Store) -> int:
    return len(await store.list_runs(status=None, workflow=None, limit=10_000, offset=0))


def names(events: list[ev.Event]) -> list[str]:
    return [f"{type(e).__name__}:{e.name}" if isinstance(e, ev.SignalReceived) else type(e).__name__
            for e in events]
