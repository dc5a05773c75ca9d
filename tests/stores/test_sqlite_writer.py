"""SQLite's writer: a thread of its own, or the event loop's thread when nothing else is ready.

A transaction runs on the loop's thread only if it can take the write lock
at once; a file another process holds locked never blocks the event loop.
The writer connection does not checkpoint at COMMIT (it may be the loop's
thread): the writer thread copies the WAL back into the file.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest

import retold
from retold.stores.sql import SqlStore, _writer

pytestmark = pytest.mark.anyio


@retold.workflow
async def greets(name: str) -> str:
    return f"hello, {name}"


class Ticker:
    """Ticks every 10 ms on the event loop; ``gap``: the longest it went without a tick."""

    def __init__(self) -> None:
        self.ticks = 0
        self.gap = 0.0

    async def run(self) -> None:
        last = time.monotonic()
        while True:
            self.ticks += 1
            await anyio.sleep(0.01)
            self.gap, last = max(self.gap, time.monotonic() - last), time.monotonic()


async def test_a_file_locked_by_another_process_never_blocks_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    async with retold.Engine(f"sqlite:///{path}", workflows=[greets], poll_interval=0.05) as engine:
        other = sqlite3.connect(path, isolation_level=None, timeout=0)  # as another process would
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        ticker = Ticker()
        started = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:

                async def start() -> None:
                    run = await engine.start(greets.with_options(id="waits-for-the-lock"), "ada")
                    assert await run.result() == "hello, ada"
                    started.set()

                tg.start_soon(ticker.run)
                tg.start_soon(start)
                # The start waits for the lock; the loop goes on meanwhile.
                with anyio.fail_after(30):
                    while ticker.ticks < 30:
                        await anyio.sleep(0.01)
                assert not started.is_set()
                assert ticker.gap < 5.0, ticker.gap  # waiting on the loop would stop it for busy_timeout
                other.execute("ROLLBACK")
                with anyio.fail_after(30):
                    await started.wait()
                tg.cancel_scope.cancel()
        finally:
            other.close()


async def test_a_transaction_that_finds_the_file_locked_waits_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        async with anyio.create_task_group() as tg:
            ticker = Ticker()
            done = anyio.Event()

            async def write() -> None:
                await store.transact(lambda tx: tx.now())  # BEGIN IMMEDIATE: needs the write lock
                done.set()

            tg.start_soon(ticker.run)
            await anyio.sleep(0.05)
            other.execute("BEGIN IMMEDIATE")
            tg.start_soon(write)  # the loop has nothing else ready: it would run on this thread
            with anyio.fail_after(30):
                while ticker.ticks < 40:
                    await anyio.sleep(0.01)
            assert not done.is_set()
            # Waiting for the lock on the loop's thread would stop it for busy_timeout (10 s).
            assert ticker.gap < 5.0, ticker.gap
            other.execute("ROLLBACK")
            with anyio.fail_after(30):
                await done.wait()
            tg.cancel_scope.cancel()
    finally:
        other.close()
        await store.close()


@pytest.mark.parametrize("every", [None, 10**9])
async def test_the_writer_thread_checkpoints_the_wal(tmp_path: Path, every: int | None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if every is not None:  # the control: no checkpoint from the writer thread
        monkeypatch.setattr(_writer, "_CHECKPOINT_EVERY", every)
    path = tmp_path / "wal.db"
    async with retold.Engine(f"sqlite:///{path}", workflows=[greets]) as engine:
        for i in range(400):
            await (await engine.start(greets.with_options(id=f"g-{i}"), str(i))).result()
        # SQLite's own checkpoint at COMMIT is off on the writer connection; a WAL that
        # is checkpointed is written again from its start, so its file stops growing.
        size = path.with_name(path.name + "-wal").stat().st_size
    if every is None:
        assert size < 8_000_000, size
    else:
        assert size > 12_000_000, size
