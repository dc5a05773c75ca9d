"""A caller already cancelled starts no new store operation (its loop of calls must end)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from retold.engine._runs import Runs
from retold.stores import StartRequest
from retold.stores.sql import SqlStore

pytestmark = pytest.mark.anyio


async def test_a_cancelled_caller_of_sqlite_starts_no_new_transaction(tmp_path: Path) -> None:
    # A transaction, once begun, is waited for past a cancel (on the loop's thread
    # or the writer's): a caller already cancelled must not begin one, or a task
    # calling the store in a loop writes on after its cancellation.
    store = SqlStore(f"sqlite:///{tmp_path / 'cancelled.db'}")
    await store.open()
    try:
        runs = Runs(store)
        started = 0
        with anyio.CancelScope() as scope:
            scope.cancel()
            while started < 50:
                await runs.start(StartRequest("wf", f"w{started}", b"[]", "h"))
                started += 1
        assert started == 0
        assert await store.list_runs(status=None, workflow=None, limit=100, offset=0) == []
    finally:
        await store.close()
