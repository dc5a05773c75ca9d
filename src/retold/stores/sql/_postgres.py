"""PostgreSQL (psycopg 3): many processes on many machines share one database.

What this dialect adds to the store's shared SQL:

* "now" is the server's ``clock_timestamp()``, read in each transaction, so
  leases and timers mean the same on every machine whatever their clocks;
* claims lock only the rows they take (``FOR UPDATE SKIP LOCKED``, in the
  store's statements) and transactions that append to a run lock its row
  first, so commits are fenced under READ COMMITTED;
* a transaction that creates work sends ``NOTIFY`` on the schema's channel
  when it commits, and each engine listens on one extra connection;
* schema creation and upgrades run under a transaction-level advisory lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ...errors import StoreError
from . import _schema as t
from ._dialect import Dialect
from ._pipeline import PIPELINE_KEY, Pipeline

__all__ = ["PostgreSQL"]

_NOW = sa.text("SELECT extract(epoch FROM clock_timestamp())::float8")
_LOCK_RUN = sa.select(t.runs.c.run_id).where(t.runs.c.run_id == sa.bindparam("b_run_id")).with_for_update()
_SCHEMA_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.retold_schema'))")
_NOTIFY = sa.text("SELECT pg_notify(:channel, :kind)")


def _driver_url(url: str) -> sa.URL:
    parsed = sa.make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise StoreError(
            f"unsupported PostgreSQL driver {parsed.drivername!r} in the store URL: "
            "retold uses psycopg 3, postgresql+psycopg://user@host/dbname"
        )
    return parsed


class PostgreSQL(Dialect):
    """PostgreSQL through psycopg 3 and a pool of ``pool_size`` connections.

    Store transactions run in worker threads (the engine runs on asyncio or
    trio, and psycopg's async mode is asyncio-only), at most ``pool_size``
    at once, so no thread ever waits for a pooled connection.
    """

    name = "postgresql"
    title = "PostgreSQL"
    insert = staticmethod(pg_insert)
    server_clock = True
    row_locks = True
    shares_database = True

    def __init__(self, url: str, *, pool_size: int) -> None:
        driver_url = _driver_url(url)
        connect_args: dict[str, Any] = {}
        if "application_name" not in driver_url.query:
            connect_args["application_name"] = "retold"
        try:
            engine = sa.create_engine(
                driver_url, pool_size=pool_size, max_overflow=0, isolation_level="READ COMMITTED",
                connect_args=connect_args,
            )
        except ImportError as exc:
            raise StoreError(
                f"the store URL {url!r} needs psycopg 3: pip install 'retold[postgres]'"
            ) from exc
        super().__init__(driver_url.render_as_string(hide_password=True), engine, concurrency=pool_size)
        self._offset = 0.0  # server clock minus local clock, as last measured
        self.channel = "retold"

    def now(self, conn: Connection) -> float:
        """The server's clock; also refreshes the estimate :meth:`wall` uses."""
        server = float(conn.execute(_NOW).scalar_one())
        self._offset = server - time.time()
        return server

    def saw_clock(self, server: float) -> None:
        """A reading of the server's clock taken by another statement: refresh the estimate."""
        self._offset = server - time.time()

    def wall(self) -> float:
        """The server's clock estimated from the local one and the last measured offset."""
        return time.time() + self._offset

    def lock_run(self, conn: Connection, run_id: str) -> None:
        """``SELECT ... FOR UPDATE`` on the run's row."""
        conn.execute(_LOCK_RUN, {"b_run_id": run_id})

    def before_commit(self, conn: Connection) -> None:
        """Send the collected notifications (PostgreSQL delivers them at commit).

        A store transaction's statements still queued (see _pipeline) are
        sent with them and ``COMMIT``, in one round trip; the COMMIT that
        SQLAlchemy sends next then finds no transaction and sends nothing.
        """
        pipe: Pipeline | None = conn.info.pop(PIPELINE_KEY, None)
        kinds = self.pending_notifications(conn)
        if pipe is None:
            for kind in kinds:
                conn.execute(_NOTIFY, {"channel": self.channel, "kind": kind})
            return
        for kind in kinds:
            pipe.add_sql("SELECT pg_notify(%(channel)s, %(kind)s)", {"channel": self.channel, "kind": kind})
        pipe.commit()

    @contextmanager
    def begin_lease_only(self) -> Iterator[Connection]:
        """``synchronous_commit=off`` for this transaction only."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield conn

    def schema_lock(self, conn: Connection) -> None:
        """An advisory lock per schema, released when the transaction ends."""
        conn.execute(_SCHEMA_LOCK)

    def after_open(self) -> None:
        """Name the notification channel after the schema the tables live in."""
        with self.engine.connect() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            self.now(conn)
        self.channel = f"retold.{schema}"[:63]

    async def listen(self, on_work: Callable[[str], None]) -> None:
        """``LISTEN`` on a connection of its own until cancelled."""
        opened: list[tuple[Any, Any]] = []  # filled by the thread: closed below even if cancelled meanwhile
        try:
            await anyio.to_thread.run_sync(self._listener, opened)
            _raw, conn = opened[0]
            while True:
                await anyio.wait_readable(conn.fileno())
                for notification in conn.notifies(timeout=0):
                    on_work(notification.payload)
        finally:
            for raw, _conn in opened:
                raw.close()

    def _listener(self, opened: list[tuple[Any, Any]]) -> None:
        from psycopg import sql

        raw = self.engine.raw_connection()
        conn: Any = raw.driver_connection
        raw.detach()  # out of the pool: it stays in autocommit, listening
        try:
            conn.autocommit = True
            conn.execute("SET application_name = 'retold-listener'")
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except BaseException:
            raw.close()
            raise
        opened.append((raw, conn))
