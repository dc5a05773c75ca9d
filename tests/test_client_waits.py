"""A client waiting for runs hosted elsewhere: one read for all its waiters, and only the runs said closed.

Before, each ``result()`` read its run once (a waiter registered, then a read
in case it had closed already), and every word from the store that *some*
run closed made the client read every run it waited for. In W8 (a
client-only process starting 1,000 workflows that workers run) that cost
2-3 ms of the client's CPU per workflow, more than its starts. Now the
first look of new waiters is one batched read, the store says which runs
closed (PostgreSQL's notification carries their ids), the client reads
those alone, and the read hands the waiters the records: no read of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

import retold
from retold.client._handle import RunHandle
from retold.errors import RunNotFoundError, StoreError
from retold.stores.sql._dialect import Dialect

pytestmark = pytest.mark.anyio


@retold.workflow
async def until_signalled() -> str:
    value = await retold.wait_signal("go", str)
    assert value is not None
    return value


class _Reads:
    """Counts the store reads a client makes while waiting (and the ids it asks about)."""

    def __init__(self, store: Any) -> None:
        self.get_run = 0
        self.asked: list[list[str]] = []
        self._closed_among = store.closed_among
        self._get_run = store.get_run
        store.closed_among = self.closed_among
        store.get_run = self.get_run_

    async def closed_among(self, run_ids: Sequence[str]) -> Any:
        self.asked.append(list(run_ids))
        return await self._closed_among(run_ids)

    async def get_run_(self, ident: str) -> Any:
        self.get_run += 1
        return await self._get_run(ident)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'waits.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_waiters_get_their_records_from_one_read_and_never_read_alone(url: str) -> None:
    async with retold.Engine(url, workflows=[until_signalled], poll_interval=0.05), \
            retold.Client(url, workflows=[until_signalled], poll_interval=0.05) as client:
        reads = _Reads(client.store)
        runs = [await client.start(until_signalled.with_options(id=f"w-{i}")) for i in range(20)]
        results: dict[int, str] = {}

        async def wait(i: int) -> None:
            results[i] = await runs[i].result(timeout=60)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(wait, i)
            with anyio.fail_after(30):
                while len(client._closed_waiters) < 20:  # every waiter registered (and seen running)
                    await anyio.sleep(0.01)
            for i, run in enumerate(runs):
                await run.signal("go", f"go {i}")
    assert results == {i: f"go {i}" for i in range(20)}
    assert reads.get_run == 0  # the watch's reads handed every waiter its record
    assert reads.asked


async def test_a_client_told_which_runs_closed_reads_those_alone(postgres_url: str) -> None:
    # A poll interval longer than the test: only PostgreSQL's notifications wake the client.
    async with retold.Engine(postgres_url, workflows=[until_signalled], poll_interval=0.05), \
            retold.Client(postgres_url, workflows=[until_signalled], poll_interval=600) as client:
        runs = [await client.start(until_signalled.with_options(id=f"n-{i}")) for i in range(30)]
        async with anyio.create_task_group() as tg:
            for run in runs:
                tg.start_soon(run.result)
            with anyio.fail_after(30):
                while len(client._closed_waiters) < 30:
                    await anyio.sleep(0.01)
            reads = _Reads(client.store)
            await runs[7].signal("go", "seven")
            with anyio.fail_after(30):  # woken by the notification that names the run
                assert await runs[7].result() == "seven"
            for i, run in enumerate(runs):
                if i != 7:
                    await run.signal("go", str(i))
    assert reads.asked
    assert runs[7].run_id is not None
    # The reads that found run 7 closed asked about it (and runs closing with it), not all 30 runs.
    assert all(len(ids) < 30 for ids in reads.asked)
    assert any(str(runs[7].run_id) in ids for ids in reads.asked)


async def test_a_wait_for_an_unknown_run_says_so(url: str) -> None:
    async with retold.Client(url, poll_interval=0.05) as client:
        with pytest.raises(RunNotFoundError):
            await RunHandle(client, "no-such-workflow", "no-such-run", Any).result(timeout=10)


async def test_a_wait_whose_first_read_fails_raises_the_store_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'waits.db'}"
    async with retold.Engine(url, workflows=[until_signalled], poll_interval=0.05) as engine:
        run = await engine.start(until_signalled)
    async with retold.Client(url, poll_interval=0.05) as client:

        async def broken(*_: Any) -> Any:
            raise StoreError("database is locked")

        setattr(client.store, "closed_among", broken)  # noqa: B010 - a store that fails every read
        setattr(client.store, "get_run", broken)  # noqa: B010
        with anyio.fail_after(10), pytest.raises(StoreError, match="database is locked"):
            await RunHandle(client, run.workflow_id, str(run.run_id), Any).result()


def test_closed_runs_are_named_in_notifications_under_the_size_limit() -> None:
    engine = sa.create_engine("sqlite://")
    dialect = Dialect.__new__(Dialect)
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(700)]
    with engine.connect() as conn:
        for kind in ["workflow", "activity", "workflow"]:
            dialect.notify(conn, kind)
        for run_id in ids:
            dialect.notify(conn, f"closed {run_id}")
        payloads = dialect.pending_notifications(conn)
        assert dialect.pending_notifications(conn) == []  # taken
    assert payloads[:2] == ["activity", "workflow"]
    closed = payloads[2:]
    assert len(closed) >= 4  # 700 ids x 37 bytes: more than one notification can carry
    assert all(p.startswith("closed ") and len(p.encode()) < 8000 for p in closed)
    named = [run_id for p in closed for run_id in p.split()[1:]]
    assert sorted(named) == ids
