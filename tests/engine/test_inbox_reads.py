"""A signal to a run whose step is in flight does not read the run's inbox (a flood was quadratic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import StartRequest, Store, Tx
from retold.stores._plan import RunState
from retold.stores.memory import MemoryStore
from retold.stores.sql import SqlStore

pytestmark = pytest.mark.anyio


class Reads:
    """A store's own transaction, noting whether each read of a run asked for its inbox."""

    def __init__(self, tx: Tx, inboxes: list[bool]) -> None:
        self._tx = tx
        self._inboxes = inboxes

    def run(self, ident: str, *, inbox: bool = False) -> RunState | None:
        self._inboxes.append(inbox)
        return self._tx.run(ident, inbox=inbox)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'inbox.db'}")


async def test_a_signal_to_a_busy_run_reads_the_run_without_its_inbox(store: Store) -> None:
    runs = Runs(store)
    await store.open()
    try:
        record, _ = await runs.start(StartRequest("wf", "w", b"[]", "h"))
        assert await store.claim_workflow_tasks("me", ["wf"], 10, 60.0) == [record.run_id]
        inboxes: list[bool] = []
        for i in range(50):
            event = ev.SignalReceived(seq=0, at=0.0, name="tick", input=str(i).encode())

            def signal(tx: Tx, e: ev.SignalReceived = event) -> Any:
                return runs.input_in(Reads(tx, inboxes), "w", e, 1000)

            await store.transact(signal, outside=True)
        assert inboxes == [False] * 50  # before: every signal read (and decoded) all those before it
        # They all wait in the inbox, and the step's commit appends them in order.
        assert await runs.commit_workflow_task(record.run_id, "me", 1, [ev.WorkflowTaskCompleted(seq=2, at=0)]) == 52
        _, history = await store.load(record.run_id, 2)
        assert [e.input for e in history if isinstance(e, ev.SignalReceived)] == [str(i).encode() for i in range(50)]
    finally:
        await store.close()
