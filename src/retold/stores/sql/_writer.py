"""The writer: every transaction of a SQL store goes through here.

On SQLite (one writer per database file) durable transactions are batched:
each caller's work runs in a savepoint of one transaction, one fsync for
many (group commit), and each caller learns its own outcome only after the
COMMIT (PostgreSQL can too, ``group_commit=True``, each pooled connection
running a batch; off by default, see docs/performance.md). Elsewhere each
transaction takes a pooled connection; requests from
outside the engine may be held to all connections but one. Reads run on
read transactions of their own, lease-only transactions without waiting for
the disk. Driver errors become :class:`~retold.StoreError` here, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..._wake import Done, done_and_poster, poster_key, set_all
from ...errors import StoreError
from ._dialect import Dialect
from ._pipeline import AFTER_COMMIT_KEY, PIPELINE_KEY, Pipeline
from ._sqlite import locked

if TYPE_CHECKING:
    from ._sqlite import SQLite

__all__ = ["Writer"]

_T = TypeVar("_T")
_LOCKED = object()  # an inline transaction found the file locked by another process: nothing ran
# Transactions (pieces of group commits) between two WAL checkpoints: about
# SQLite's own default of 1000 pages, a step writing a few pages.
_CHECKPOINT_EVERY = 100


def _locked(exc: StoreError) -> bool:
    """Whether a store error is SQLite's "database is locked" (or busy)."""
    text = str(exc.__cause__ or exc).lower()
    return "database is locked" in text or "database is busy" in text


class _Queued:
    """A transaction body waiting for a group commit, and then its outcome."""

    __slots__ = ("args", "done", "error", "fn", "post", "result", "taken")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.taken = False
        self.result: Any = None
        self.error: Exception | None = None
        self.done: Done
        self.post: Callable[[Callable[[], object]], object]
        self.done, self.post = done_and_poster()


class _WriterThread:
    """SQLite's writer: one thread that runs every queued durable transaction, in group commits.

    Callers queue a body and wait on an event; the thread takes everything
    queued, runs it in one transaction (``run_batch``) and wakes each
    caller's loop once per batch. No anyio thread pool or limiter on the way:
    a step costs two thread wake-ups (the writer's, the loop's) and nothing more.
    ``lock`` is the writer connection's: anything else run on that connection
    (lease-only transactions, the in-memory database's reads, vacuums) takes it.
    """

    def __init__(self, run_batch: Callable[[list[_Queued]], None], checkpoint: Callable[[], None]) -> None:
        self._run_batch = run_batch
        self._checkpoint = checkpoint
        self._queue: deque[_Queued] = deque()
        self._cond = threading.Condition(threading.Lock())
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._commits = 0  # since the last checkpoint
        self._checkpoint_due = False

    def inline(self) -> bool:
        """Whether a transaction may run right here, on the event loop's thread; if so, ``lock`` is held.

        Only when nothing is queued for the writer and the event loop has
        nothing else ready to run: the hop to the writer thread and back
        (two thread wake-ups) is then all the wait there would be.
        """
        return not self._queue and _loop_idle() and self.lock.acquire(blocking=False)

    def committed(self, pieces: int = 1) -> None:
        """Count the pieces of a commit; every ``_CHECKPOINT_EVERY``, the thread checkpoints the WAL."""
        self._commits += pieces
        if self._commits >= _CHECKPOINT_EVERY:
            with self._cond:
                self._commits = 0
                self._checkpoint_due = True
                self._start()
                self._cond.notify()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="retold-sqlite-writer", daemon=True)
            self._thread.start()

    def submit(self, item: _Queued) -> None:
        with self._cond:
            self._queue.append(item)  # while stopping too: the thread runs everything queued before it ends
            self._start()
            self._cond.notify()

    def withdraw(self, item: _Queued) -> bool:
        """Take back an item no batch has taken yet; whether it was still queued."""
        return _withdraw(item, self._cond, self._queue)

    def stop(self) -> None:
        """Run what is queued, then end the thread (blocking: call it from a worker thread)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify()
        if thread is not None:
            thread.join()
        with self._cond:  # a store used again after close() starts a new thread
            self._stopping = False

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping and not self._checkpoint_due:
                    self._cond.wait()
                due, self._checkpoint_due = self._checkpoint_due, False
                if not self._queue and not due:
                    self._thread = None  # stopping, and nothing left: a later submit starts a new one
                    return
                batch = list(self._queue)
                self._queue.clear()
                for item in batch:
                    item.taken = True
            if batch:
                try:
                    with self.lock:
                        self._run_batch(batch)
                except BaseException as exc:  # noqa: BLE001 - never leave a caller waiting
                    for item in batch:
                        if item.error is None and item.result is None:
                            item.error = StoreError(f"the SQLite writer failed: {exc!r}")
                _wake(batch)
                self.committed(len(batch))
            if due:
                with self.lock:
                    self._checkpoint()


def _loop_idle() -> bool:
    """Whether the running asyncio loop has no callback ready (never known on trio: False)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    ready = getattr(loop, "_ready", None)  # asyncio's own loop; others (uvloop) do not say
    return ready is not None and not ready


def _withdraw(item: _Queued, lock: AbstractContextManager[Any], queue: deque[_Queued] | list[_Queued]) -> bool:
    """Take ``item`` off ``queue`` (guarded by ``lock``) unless a batch took it; whether it was still queued."""
    with lock:
        if item.taken:
            return False
        queue.remove(item)
        return True


async def _outcome(
    item: _Queued, withdraw: Callable[[_Queued], bool], turn: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """A queued item's result (or error), once its batch committed; ``turn``: the caller's part in running it.

    Cancelled meanwhile, the item is withdrawn if no batch took it (it never
    runs); if one did, it runs anyway, and the caller waits for its end before
    giving up: it never leaves a transaction running that it was not told of.
    """
    try:
        if turn is not None:
            await turn()
        await item.done.wait()
    except BaseException:
        if not withdraw(item):  # taken: it runs; wait for it to end, then give up
            with anyio.CancelScope(shield=True):
                await item.done.wait()
        raise
    if item.error is not None:
        raise item.error
    return item.result


def _wake(batch: list[_Queued]) -> None:
    """Wake each item's caller: one callback per event loop."""
    by_loop: dict[int, tuple[Callable[[Callable[[], object]], object], list[Done]]] = {}
    for item in batch:
        entry = by_loop.setdefault(poster_key(item.post), (item.post, []))
        entry[1].append(item.done)
    for post, events in by_loop.values():
        with contextlib.suppress(RuntimeError):  # that loop has ended: nobody waits there any more
            post(partial(set_all, events))


class Writer:
    """Runs transaction bodies ``fn(conn, *args)`` on a :class:`~._dialect.Dialect`'s connections."""

    _d: Dialect
    url: str

    def _init_writer(self, pool_size: int, group_commit: bool | None = None) -> None:
        dbapi = self._d.engine.dialect.dbapi
        self._driver_errors: tuple[type[Exception], ...] = (dbapi.Error,) if dbapi is not None else ()
        # SQLite has one writer: batch durable transactions (see _run).
        # PostgreSQL may too (``group_commit``): each of its connections then
        # runs the transactions queued meanwhile as one, each in a savepoint.
        sqlite = self._d.name == "sqlite"
        self._pipelined = not sqlite  # PostgreSQL: store transactions queue statements (see _pipeline)
        self._group_commit = sqlite if group_commit is None else group_commit
        # Elsewhere transactions queue, first come first served, for the
        # pool's connections. Requests from outside (start, signal, cancel)
        # take at most all but one: a flood of them cannot queue ahead of
        # every step of the runs they feed.
        self._outside: anyio.CapacityLimiter | None = (
            None if sqlite or pool_size < 2 else anyio.CapacityLimiter(pool_size - 1))
        self._writer = _WriterThread(self._drain, self._checkpoint) if self._group_commit and sqlite else None
        self._queue: list[_Queued] = []  # PostgreSQL's group commit (see _run_grouped)
        self._queue_lock = threading.Lock()

    async def _run(self, fn: Callable[..., _T], *args: Any, inline: bool = True) -> _T:
        """Run ``fn(conn, *args)`` in a durable transaction; ``inline=False``: never on the loop's thread
        (a transaction that may be long: a schema upgrade, a purge batch)."""
        # A caller already cancelled starts nothing (a transaction once begun
        # is waited for, and on the loop's thread no checkpoint precedes it).
        await anyio.lowlevel.checkpoint_if_cancelled()
        writer = self._writer
        if writer is None:
            if self._group_commit:
                return await self._run_grouped(fn, *args)
            return await anyio.to_thread.run_sync(self._tx, fn, *args, limiter=self._d.limiter)
        # Group commit: queue the work for the writer thread, which takes
        # everything queued so far and runs it in one transaction, each piece
        # in a savepoint of its own: one fsync for many runs' steps. A
        # piece's outcome is known only after COMMIT.
        if inline and writer.inline():
            try:
                outcome = self._tx_inline(fn, args)
            finally:
                writer.lock.release()
            if outcome is not _LOCKED:
                writer.committed()
                await anyio.lowlevel.cancel_shielded_checkpoint()  # a turn for the rest, the outcome kept
                return cast(_T, outcome)
        item = _Queued(fn, args)
        writer.submit(item)
        result: _T = await _outcome(item, writer.withdraw)
        return result

    async def _run_grouped(self, fn: Callable[..., _T], *args: Any) -> _T:
        """PostgreSQL's group commit: queue the work, then take a turn on a pooled connection.

        A turn takes everything queued so far and runs it as one transaction
        (see :meth:`_drain_pipelined`). Up to ``pool_size`` turns run at
        once: a caller whose piece another turn took waits for that turn's
        COMMIT.
        """
        item = _Queued(fn, args)
        with self._queue_lock:
            self._queue.append(item)

        async def turn() -> None:
            async with self._d.limiter:  # our turn
                if not item.taken:  # else an earlier turn took it: no thread hop
                    batch = await anyio.to_thread.run_sync(self._take_and_drain)
                    set_all([done.done for done in batch])

        result: _T = await _outcome(item, self._withdraw_grouped, turn)
        return result

    def _withdraw_grouped(self, item: _Queued) -> bool:
        """Take back an item no turn has taken yet; whether it was still queued."""
        return _withdraw(item, self._queue_lock, self._queue)

    def _take_and_drain(self) -> list[_Queued]:
        with self._queue_lock:
            batch, self._queue = self._queue, []
            for item in batch:
                item.taken = True
        if batch:
            self._drain(batch)
        return batch

    def _tx_inline(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T | object:
        """Run a transaction on this thread; :data:`_LOCKED` (nothing run) if another process holds the lock."""
        try:
            try:
                transaction = cast("SQLite", self._d).begin_nowait()
                conn = transaction.__enter__()
            except self._driver_errors as exc:
                if locked(exc):
                    return _LOCKED
                raise
            with contextlib.ExitStack() as stack:
                stack.push(transaction)
                result = fn(conn, *args)
                self._d.before_commit(conn)
            return result
        except sa.exc.DBAPIError as exc:
            raise self._db_error(exc) from exc
        except self._driver_errors as exc:
            raise self._as_store_error(exc) from exc

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file, as far as no reader holds it back (on the writer thread)."""
        raw = self._d.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            with contextlib.suppress(*self._driver_errors):  # locked or busy: the next one catches up
                driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            raw.close()

    def _on_writer_connection(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn`` (in a worker thread) while no batch uses SQLite's writer connection."""
        if self._writer is None:
            return fn(*args)
        with self._writer.lock:
            return fn(*args)

    async def _run_outside(self, fn: Callable[..., _T], *args: Any, inline: bool = True) -> _T:
        """A durable transaction asked for from outside the engine (start, signal, cancel)."""
        if self._outside is None:
            return await self._run(fn, *args, inline=inline)
        async with self._outside:
            return await self._run(fn, *args, inline=inline)

    def _drain(self, batch: list[_Queued]) -> None:
        """Run a batch of queued bodies on the writer thread: alone, or in one transaction with savepoints."""
        if len(batch) == 1:
            item = batch[0]
            try:
                item.result = self._tx(item.fn, *item.args)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                item.error = exc
            return
        # Each piece's outcome stays here until COMMIT returns: if anything
        # fails before (BEGIN finding the file locked past the busy timeout,
        # a savepoint, the COMMIT itself), every piece gets that error, and
        # no caller is told its work was written when it was not.
        outcomes: list[tuple[Any, Exception | None]] = []
        if self._pipelined:
            self._drain_pipelined(batch, outcomes)
            return
        try:
            with self._d.begin() as conn:
                # Savepoints on the driver: SQLAlchemy's cost as much as a statement's work.
                driver = conn.connection.driver_connection
                assert driver is not None
                for item in batch:
                    driver.execute("SAVEPOINT retold_piece")
                    try:
                        outcomes.append((item.fn(conn, *item.args), None))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller
                        driver.execute("ROLLBACK TO retold_piece")
                        outcomes.append((None, self._as_store_error(exc)))
                    driver.execute("RELEASE retold_piece")
                self._d.before_commit(conn)
        except BaseException as exc:
            self._hand_out(batch, outcomes, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._hand_out(batch, outcomes, None)

    def _drain_pipelined(self, batch: list[_Queued], outcomes: list[tuple[Any, Exception | None]]) -> None:
        """PostgreSQL's group commit: the pieces in savepoints of one transaction, in pipelines.

        Each piece is two round trips, as alone: its ``SAVEPOINT`` goes with
        its first read, its ``RELEASE`` with its writes (and its fence, so
        that a piece whose run moved is rolled back to its savepoint, alone);
        the batch's ``COMMIT`` is one more. As on SQLite, no piece's outcome
        is handed out before ``COMMIT`` returns, and a failed ``COMMIT``
        fails every piece that had not failed on its own.
        """
        after: list[Callable[[], None]] = []  # what the pieces that were written do once committed
        try:
            with self._d.begin() as conn:
                info = conn.info  # (not reachable through conn once it is invalidated)
                pipe = Pipeline(conn)
                try:
                    for item in batch:
                        pipe.add_sql("SAVEPOINT retold_piece", {})
                        try:
                            result = item.fn(conn, *item.args)
                            pipe.add_sql("RELEASE SAVEPOINT retold_piece", {})
                            pipe.flush()
                            outcomes.append((result, None))
                            after += info.pop(AFTER_COMMIT_KEY, [])
                        except Exception as exc:  # noqa: BLE001 - handed to the caller
                            info.pop(AFTER_COMMIT_KEY, None)
                            pipe.discard()
                            pipe.forget_prepared()
                            pipe.add_sql("ROLLBACK TO SAVEPOINT retold_piece", {})
                            pipe.add_sql("RELEASE SAVEPOINT retold_piece", {})
                            pipe.flush()
                            outcomes.append((None, self._as_store_error(exc)))
                    self._d.before_commit(conn)
                finally:
                    info.pop(PIPELINE_KEY, None)
                    info.pop(AFTER_COMMIT_KEY, None)
        except BaseException as exc:
            self._hand_out(batch, outcomes, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for then in after:
            then()
        self._hand_out(batch, outcomes, None)

    def _hand_out(
        self, batch: list[_Queued], outcomes: list[tuple[Any, Exception | None]], exc: BaseException | None,
    ) -> None:
        """Give each piece of a group commit its outcome, once the transaction ended.

        If it failed (``exc``: BEGIN, a savepoint, the COMMIT itself), a piece
        that failed on its own (rolled back to its savepoint) keeps its own
        error, and every other one gets the transaction's: none was written.
        """
        if exc is None:
            for item, (result, error) in zip(batch, outcomes, strict=True):
                item.result, item.error = result, error
            return
        failed = self._as_store_error(exc) if isinstance(exc, Exception) else StoreError(
            f"the transaction on {self.url} was interrupted: {exc!r}")
        for i, item in enumerate(batch):
            own = outcomes[i][1] if i < len(outcomes) else None
            item.error = own if own is not None else failed

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a transaction that only reads, on a read transaction of its own.

        On a SQLite file it never takes the write lock, so a long read (a
        big history) stalls no writer, here or in another process.
        """
        if self._d.shares_reads:  # an in-memory database: reads use the writer's connection
            return await anyio.to_thread.run_sync(
                self._on_writer_connection, self._tx_in, self._d.begin_read, fn, *args, limiter=self._d.read_limiter)
        return await anyio.to_thread.run_sync(
            self._tx_in, self._d.begin_read, fn, *args, limiter=self._d.read_limiter
        )

    async def _run_lease_only(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a transaction that only moves leases, without waiting for the disk.

        Losing such a transaction to a power cut only hands a task back to the
        queue (SQLite commits it with ``synchronous=NORMAL``, PostgreSQL with
        ``synchronous_commit=off``); the next durable commit writes it to
        disk anyway. It must never append an event.
        """
        for attempt in range(3):
            try:
                return await anyio.to_thread.run_sync(
                    self._on_writer_connection, self._tx_lease_only, fn, *args, limiter=self._d.limiter)
            except StoreError as exc:
                # Another process held SQLite's write lock past the busy
                # timeout: nothing was written, and moving a lease is safe to retry.
                if attempt == 2 or not _locked(exc):
                    raise
        raise AssertionError("unreachable")

    def _db_error(self, exc: sa.exc.DBAPIError) -> StoreError:
        error = StoreError(f"database error on {self.url}: {exc.orig}")
        error.__cause__ = exc
        return error

    def _as_store_error(self, exc: Exception) -> Exception:
        """A database error as a StoreError (whether SQLAlchemy wrapped it or the driver raised it)."""
        if isinstance(exc, sa.exc.DBAPIError):
            return self._db_error(exc)
        if isinstance(exc, self._driver_errors):
            error = StoreError(f"database error on {self.url}: {exc}")
            error.__cause__ = exc
            return error
        return exc

    def _tx(self, fn: Callable[..., _T], *args: Any) -> _T:
        return self._tx_in(self._d.begin, fn, *args)

    def _tx_lease_only(self, fn: Callable[..., _T], *args: Any) -> _T:
        return self._tx_in(self._d.begin_lease_only, fn, *args)

    def _tx_in(
        self, begin: Callable[[], AbstractContextManager[Connection]], fn: Callable[..., _T], *args: Any
    ) -> _T:
        try:
            with begin() as conn:
                if not self._pipelined:  # SQLite: no pipeline to drop
                    result = fn(conn, *args)
                    self._d.before_commit(conn)
                    return result
                info = conn.info  # (not reachable through conn once it is invalidated)
                try:
                    result = fn(conn, *args)
                    self._d.before_commit(conn)
                finally:
                    info.pop(PIPELINE_KEY, None)  # a store transaction's queue (PostgreSQL), if left
                    after: list[Callable[[], None]] = info.pop(AFTER_COMMIT_KEY, [])
            for then in after:  # committed
                then()
            return result
        except sa.exc.DBAPIError as exc:
            raise self._db_error(exc) from exc
        except self._driver_errors as exc:  # raised on the driver's connection (BEGIN, direct statements)
            raise self._as_store_error(exc) from exc
