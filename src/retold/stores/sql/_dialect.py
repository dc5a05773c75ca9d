"""What differs between the databases the SQL store runs on, in one small seam.

The store's transactions are written once, in SQLAlchemy Core. A
:class:`Dialect` supplies only what cannot be written once: how to connect,
how a transaction begins, whose clock is "now", how rows are locked, and how
other processes hear about new work.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["Dialect", "Insert", "dialect_for"]

Insert = Callable[[sa.Table], Any]
"""An ``insert(table)`` that supports ``on_conflict_do_nothing()``."""

_NOTIFY_KEY = "retold.notify"
_PAYLOAD_LIMIT = 7_900  # bytes of one notification (PostgreSQL refuses 8,000 and more)


class Dialect:
    """The seam between the store's SQL and one database.

    Attributes:
        name: ``sqlite`` or ``postgresql``.
        title: the database's name in messages.
        engine: the SQLAlchemy engine (a connection pool).
        insert: the dialect's ``insert`` with ``ON CONFLICT DO NOTHING``.
        limiter: how many store transactions run at once in this process.
        server_clock: whether "now" is read from the database server.
        row_locks: whether concurrent transactions need explicit row locks
            (SQLite runs one writer at a time: it needs none).
        shares_database: whether other applications' tables may live beside
            retold's (a PostgreSQL database usually holds more than retold).
    """

    name = ""
    title = ""
    insert: Insert
    server_clock = False
    row_locks = False
    shares_database = False
    shares_reads = False
    """Whether reads run on the writer's connection (SQLite's private in-memory database)."""

    def __init__(self, url: str, engine: sa.Engine, concurrency: int) -> None:
        self.url = url
        self.engine = engine
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.read_limiter = self.limiter
        """How many read transactions (:meth:`begin_read`) run at once."""

    def now(self, conn: Connection) -> float:
        """The database's clock inside a transaction (only with ``server_clock``)."""
        raise NotImplementedError

    def saw_clock(self, server: float) -> None:
        """A reading of :meth:`now` taken by another statement (only with ``server_clock``)."""

    def wall(self) -> float:
        """The database's clock outside a transaction, as best known."""
        raise NotImplementedError

    def lock_run(self, conn: Connection, run_id: str) -> None:
        """Lock a run's row until the transaction ends (where rows can be locked).

        Transactions that append to a run lock its row before any task or
        timer row of that run, so two of them never wait on each other.
        """

    def notify(self, conn: Connection, kind: str) -> None:
        """Tell other processes, when this transaction commits, that ``kind`` of work exists."""
        pending: set[str] = conn.info.setdefault(_NOTIFY_KEY, set())
        pending.add(kind)

    def withdraw(self, conn: Connection, kind: str) -> None:
        """Take back a :meth:`notify` of this transaction (the work it told of is hidden after all)."""
        pending: set[str] | None = conn.info.get(_NOTIFY_KEY)
        if pending is not None:
            pending.discard(kind)

    def pending_notifications(self, conn: Connection) -> list[str]:
        """Take the payloads of what :meth:`notify` collected in this transaction: each kind once (a kind
        given with a run id, ``"workflow <run id>"``, counts as the kind), and the runs closed
        (``"closed <run id>"``) as ``"closed <run id> <run id>..."`` under 8,000 bytes each."""
        pending: set[str] = conn.info.pop(_NOTIFY_KEY, set())
        closed: list[str] = []
        kinds: set[str] = set()
        for kind in pending:
            base, _, run_id = kind.partition(" ")
            if base == "closed" and run_id:
                closed.append(run_id)
            else:
                kinds.add(base)
        payloads = sorted(kinds)
        closed.sort()
        while closed:
            chunk: list[str] = []
            size = 6
            while closed and (not chunk or size + len(closed[-1]) + 1 < _PAYLOAD_LIMIT):
                size += len(closed[-1]) + 1
                chunk.append(closed.pop())
            payloads.append(" ".join(["closed", *chunk]))
        return payloads

    def before_commit(self, conn: Connection) -> None:
        """Last statements of every transaction (send the notifications)."""
        self.pending_notifications(conn)

    def begin(self) -> AbstractContextManager[Connection]:
        """A transaction that may append to histories: durable when it commits."""
        return self.engine.begin()

    def begin_read(self) -> AbstractContextManager[Connection]:
        """A transaction that only reads: it must not block writers."""
        return self.engine.begin()

    def dispose(self) -> None:
        """Close every connection."""
        self.engine.dispose()

    def begin_lease_only(self) -> AbstractContextManager[Connection]:
        """A transaction that only moves leases and never appends an event.

        Losing one to a crash only hands a task back to the queue, so a
        dialect may commit it without waiting for the disk.
        """
        return self.engine.begin()

    def schema_lock(self, conn: Connection) -> None:
        """Serialise schema creation and upgrades between processes."""

    def after_open(self) -> None:
        """Settings to apply once the database is known to be ours."""

    def retold_tables(self, names: set[str]) -> set[str]:
        """The tables among ``names`` that count when deciding whose database this is."""
        return names if not self.shares_database else {n for n in names if n.startswith("retold_")}

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """Call ``on_work(kind)`` whenever a transaction anywhere created work.

        Returns at once where the database cannot notify: callers poll.
        """


def dialect_for(url: str, *, pool_size: int, busy_timeout: float | None = None) -> Dialect:
    """The dialect that serves ``url``.

    Raises:
        StoreError: the URL names an unsupported database, or its driver is
            not installed.
    """
    from ...errors import ConfigurationError, StoreError

    try:
        if url.startswith(("memory:", "sqlite:")):
            from ._sqlite import SQLite

            return SQLite(url, busy_timeout=busy_timeout)
        if url.startswith(("postgresql", "postgres:")):
            from ._postgres import PostgreSQL

            return PostgreSQL(url, pool_size=pool_size)
    except (sa.exc.ArgumentError, ValueError) as exc:  # a malformed URL (or port): say which form is right
        raise ConfigurationError(_url_advice(url)) from exc
    raise StoreError(
        f"unsupported store URL {url!r}: use sqlite:///path.db, memory:// or "
        "postgresql+psycopg://user@host/dbname"
    )


def _url_advice(url: str) -> str:
    if url.startswith("postgres"):
        return (f"invalid PostgreSQL store URL {url!r}: "
                "write postgresql+psycopg://user:password@host:5432/dbname")
    rest = url.removeprefix("sqlite://")
    guess = f"sqlite:///{rest} (a file relative to the working directory), " if rest and rest != url else ""
    return (f"invalid SQLite store URL {url!r}: write {guess}sqlite:///path/to/file.db (three slashes, "
            "then a relative path) or sqlite:////absolute/path/to/file.db, or memory:// for a store in memory")
