"""The writer: every transaction of a SQL store goes through here.

On SQLite (one writer per database file) durable transactions are batched:
each caller's work runs in a savepoint of one transaction, one fsync for
many (group commit), and each caller learns its own outcome only after the
COMMIT. Elsewhere each transaction takes a pooled connection; requests from
outside the engine may be held to all connections but one. Reads run on
read transactions of their own, lease-only transactions without waiting for
the disk. Driver errors become :class:`~retold.StoreError` here, in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import StoreError
from ._dialect import Dialect

__all__ = ["Writer"]

_T = TypeVar("_T")


def _locked(exc: StoreError) -> bool:
    """Whether a store error is SQLite's "database is locked" (or busy)."""
    text = str(exc.__cause__ or exc).lower()
    return "database is locked" in text or "database is busy" in text


class _Queued:
    """A transaction body waiting for a group commit, and then its outcome."""

    __slots__ = ("args", "error", "fn", "result", "taken")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.taken = False
        self.result: Any = None
        self.error: Exception | None = None

class Writer:
    """Runs transaction bodies ``fn(conn, *args)`` on a :class:`~._dialect.Dialect`'s connections."""

    _d: Dialect
    url: str

    def _init_writer(self, pool_size: int) -> None:
        dbapi = self._d.engine.dialect.dbapi
        self._driver_errors: tuple[type[Exception], ...] = (dbapi.Error,) if dbapi is not None else ()
        # SQLite has one writer: batch durable transactions (see _run).
        self._group_commit = self._d.name == "sqlite"
        # Elsewhere transactions queue, first come first served, for the
        # pool's connections. Requests from outside (start, signal, cancel)
        # take at most all but one: a flood of them cannot queue ahead of
        # every step of the runs they feed.
        self._outside: anyio.CapacityLimiter | None = (
            None if self._group_commit or pool_size < 2 else anyio.CapacityLimiter(pool_size - 1))
        self._queue: list[_Queued] = []
        self._queue_lock = threading.Lock()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if not self._group_commit:
            return await anyio.to_thread.run_sync(self._tx, fn, *args, limiter=self._d.limiter)
        # Group commit: queue the work, then take a turn at the writer. The
        # first turn takes everything queued so far and runs it in one
        # transaction, each piece in a savepoint of its own: one fsync for
        # many runs' steps. A piece's outcome is known only after COMMIT.
        item = _Queued(fn, args)
        with self._queue_lock:
            self._queue.append(item)
        try:
            async with self._d.limiter:  # our turn at the writer
                if not item.taken:  # else an earlier turn already ran it: no thread hop
                    await anyio.to_thread.run_sync(self._drain)
        except BaseException:
            with self._queue_lock:
                if not item.taken:  # cancelled before any turn took it: it never runs
                    self._queue.remove(item)
            raise
        if item.error is not None:
            raise item.error
        result: _T = item.result
        return result

    async def _run_outside(self, fn: Callable[..., _T], *args: Any) -> _T:
        """A durable transaction asked for from outside the engine (start, signal, cancel)."""
        if self._outside is None:
            return await self._run(fn, *args)
        async with self._outside:
            return await self._run(fn, *args)

    def _drain(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue, []
            for item in batch:
                item.taken = True
        if not batch:
            return  # an earlier turn ran ours
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
            failed = self._as_store_error(exc) if isinstance(exc, Exception) else StoreError(
                f"the transaction on {self.url} was interrupted: {exc!r}")
            for i, item in enumerate(batch):
                # A piece that failed on its own (rolled back to its savepoint)
                # keeps its own error; every other one was not written.
                own = outcomes[i][1] if i < len(outcomes) else None
                item.error = own if own is not None else failed
            if not isinstance(exc, Exception):
                raise
            return
        for item, (result, error) in zip(batch, outcomes, strict=True):
            item.result, item.error = result, error

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a transaction that only reads, on a read transaction of its own.

        On a SQLite file it never takes the write lock, so a long read (a
        big history) stalls no writer, here or in another process.
        """
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
                return await anyio.to_thread.run_sync(self._tx_lease_only, fn, *args, limiter=self._d.limiter)
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
                result = fn(conn, *args)
                self._d.before_commit(conn)
                return result
        except sa.exc.DBAPIError as exc:
            raise self._db_error(exc) from exc
        except self._driver_errors as exc:  # raised on the driver's connection (BEGIN, direct statements)
            raise self._as_store_error(exc) from exc
