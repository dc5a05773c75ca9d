"""SQLite: one file, one writer at a time, WAL and ``synchronous=FULL``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.pool import QueuePool, StaticPool

from ...errors import ConfigurationError
from ._dialect import Dialect

__all__ = ["NOWAIT", "SQLite", "boot_clock", "locked"]

NOWAIT = "retold_nowait"  # a connection's info key: its next BEGIN fails at once if the file is locked

_IN_MEMORY = ("memory://", "memory:", "sqlite://", "sqlite:///:memory:")
_READERS = 4  # reading connections of a SQLite file
# A writer waits for the write lock in slices of this many milliseconds (SQLite's
# own busy handler sleeps 1, 2 ms within one), trying again after each, until
# busy_timeout is over. SQLite's handler alone sleeps up to 100 ms between tries
# once it has waited a while: with several busy processes on one file, the lock
# is almost never free at the moment it looks, and a writer starved past
# busy_timeout though the lock was free most of that time.
_SLICE_MS = 3


def boot_clock() -> float:
    """Seconds since this machine booted: the same in every process, blind to wall-clock steps.

    ``CLOCK_BOOTTIME`` counts suspended time too (Linux); elsewhere the
    system-wide monotonic clock. Leases of a SQLite store use it: they are
    shared only by processes of one machine.
    """
    return time.clock_gettime(_BOOT)


_BOOT = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


class SQLite(Dialect):
    """A SQLite file (or a private in-memory database for ``memory://``).

    Every writing transaction begins with ``BEGIN IMMEDIATE``, so writers
    queue for the lock instead of failing half-way (tried again every few
    milliseconds until ``busy_timeout``, then a StoreError saying nothing
    was written: see :func:`_begin_waiting`), and commits with
    ``synchronous=FULL`` in WAL mode. Writing transactions are queued
    in-process (one at a time): SQLite has one writer anyway. Reads of a
    file run on connections of their own in deferred (read) transactions:
    in WAL mode they see a snapshot and never hold up a writer.
    """

    name = "sqlite"
    title = "SQLite"
    insert = staticmethod(sqlite_insert)

    def __init__(self, url: str, *, busy_timeout: float | None = None) -> None:
        file_url, from_url = _split_busy_timeout(url)
        busy_timeout = busy_timeout if busy_timeout is not None else from_url if from_url is not None else 10.0
        # One connection, kept: the store runs one transaction at a time in
        # this process (the limiter below), so a pool would only add a
        # checkout, a checkin and a reset (a ROLLBACK) to every transaction.
        # Every transaction ends in COMMIT or ROLLBACK of its own.
        memory = file_url in _IN_MEMORY
        engine = sa.create_engine(
            "sqlite://" if memory else file_url, poolclass=StaticPool, pool_reset_on_return=None,
            connect_args={"check_same_thread": False},
        )
        busy_ms = int(busy_timeout * 1000)
        self.busy_timeout = busy_timeout
        _install_pragmas(engine, busy_ms, begin="BEGIN IMMEDIATE", wait=busy_timeout)
        super().__init__(url, engine, concurrency=1)
        self._reader: sa.Engine | None = None
        self.shares_reads = memory
        if not memory:  # a private in-memory database has one connection: reads share it
            self._reader = sa.create_engine(
                file_url, poolclass=QueuePool, pool_size=_READERS, max_overflow=0, pool_reset_on_return=None,
                connect_args={"check_same_thread": False},
            )
            _install_pragmas(self._reader, busy_ms, begin="BEGIN", read_only=True)
            self.read_limiter = anyio.CapacityLimiter(_READERS)

    def begin_read(self) -> AbstractContextManager[Connection]:
        """A deferred (read) transaction on a reading connection: it takes no write lock."""
        if self._reader is None:
            return self.begin()
        return self._reader.begin()

    def dispose(self) -> None:
        """Close every connection, the readers' too."""
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()

    def wall(self) -> float:
        """The local clock: a SQLite file is shared by processes of one machine."""
        return time.time()

    def notify(self, conn: Connection, kind: str) -> None:
        """Nothing to send: SQLite engines poll."""

    def before_commit(self, conn: Connection) -> None:
        """Nothing to do before a commit."""

    @contextmanager
    def begin_lease_only(self) -> Iterator[Connection]:
        """Commit with ``synchronous=NORMAL``; the next durable commit syncs it anyway."""
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA synchronous=NORMAL")  # outside any transaction, as SQLite requires
            try:
                with conn.begin():
                    yield conn
            finally:
                raw.execute("PRAGMA synchronous=FULL")

    def after_open(self) -> None:
        """Switch to WAL, once the file is known to be ours.

        WAL mode is written into the file header, and a database we refuse
        must stay byte-for-byte intact. ``journal_mode`` cannot change inside
        a transaction, hence the raw connection.
        """
        raw = self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            # Changing the journal mode takes the file's exclusive lock without
            # waiting on busy_timeout: when several processes open a new file
            # at once, retry for a while (another one may have switched it).
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    if driver.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                        return
                    driver.execute("PRAGMA journal_mode=WAL")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        finally:
            raw.close()


def _split_busy_timeout(url: str) -> tuple[str, float | None]:
    """``sqlite:///f.db?busy_timeout=30`` -> (``sqlite:///f.db``, 30.0); no parameter: (url, None).

    Raises:
        ConfigurationError: the value is not a number of seconds, at least 0.
    """
    base, sep, query = url.partition("?")
    if not sep:
        return url, None
    kept, found = [], None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name != "busy_timeout":
            kept.append(part)
            continue
        try:
            found = float(value)
        except ValueError:
            found = -1.0
        if not found >= 0 or found == float("inf"):
            raise ConfigurationError(
                f"invalid busy_timeout={value!r} in the store URL {url!r}: give seconds, a number at least 0")
    return (base + ("?" + "&".join(kept) if kept else "")), found


def _busy(exc: sqlite3.OperationalError) -> bool:
    return locked(exc)


def locked(exc: BaseException) -> bool:
    """Whether an error is SQLite's "database is locked" (or busy)."""
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


def _begin_waiting(driver: sqlite3.Connection | sqlite3.Cursor, begin: str, wait: float) -> None:
    """Run ``begin`` (``BEGIN IMMEDIATE``, or a pragma that writes), trying again while the file is locked.

    For ``wait`` seconds at most; each try waits one slice in SQLite's busy handler.

    Raises:
        sqlite3.OperationalError: still locked after ``wait`` seconds (nothing ran).
    """
    deadline = time.monotonic() + wait
    tries = 0
    while True:
        tries += 1
        try:
            driver.execute(begin)
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError(
                    f"database is locked: another process held the write lock for more than "
                    f"busy_timeout={wait:g} s ({tries} tries); nothing was written") from exc


def _install_pragmas(
    engine: sa.Engine, busy_ms: int, *, begin: str, read_only: bool = False, wait: float | None = None,
) -> None:
    @sa_event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA synchronous=FULL")
            # A writer's busy handler waits one slice at a time: _begin_waiting
            # tries again until ``wait`` is over.
            cursor.execute(f"PRAGMA busy_timeout={busy_ms if wait is None else _SLICE_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            if read_only:
                cursor.execute("PRAGMA query_only=ON")  # a read that tried to write would fail loudly
            else:
                # Takes effect in a new file only (before its first table): pages
                # freed by purging old runs can then be handed back to the file
                # system (see _retention.py). An existing file is left as it is.
                # It takes the write lock: wait for it like a transaction.
                _begin_waiting(cursor, "PRAGMA auto_vacuum=INCREMENTAL", 10.0 if wait is None else wait)
                # No checkpoint at COMMIT (it may run on the event loop's
                # thread): the writer thread checkpoints (Writer._checkpoint).
                cursor.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        driver = conn.connection.driver_connection  # straight to the driver: this runs per transaction
        assert driver is not None
        if wait is None:
            driver.execute(begin)
        elif conn.info.get(NOWAIT):
            # On the event loop's thread (see Writer._run): one try, no wait;
            # the caller hands the transaction to the writer thread if it is locked.
            driver.execute("PRAGMA busy_timeout=0")
            try:
                driver.execute(begin)
            finally:
                driver.execute(f"PRAGMA busy_timeout={_SLICE_MS}")
        else:
            _begin_waiting(driver, begin, wait)
