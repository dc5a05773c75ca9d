"""PostgreSQL: the writes of a plan sent together, in one round trip (psycopg's pipeline mode).

A plan's writes mostly need no answer before the next one is sent: they
are queued, in order, and sent in one pipeline on the driver's connection
(the transaction SQLAlchemy began), then their answers read. Anything that
must run through SQLAlchemy, or read, sends the queue first, so statements
still run in the order the store issued them. Nothing is committed here:
COMMIT stays where it was, after every write has been answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ._fast import Statement

__all__ = ["Pipeline"]


class Pipeline:
    """Writes queued on one transaction's connection, sent by :meth:`flush`."""

    __slots__ = ("_conn", "_queue")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # (sql, parameters or rows, many, holder of the cursor for an answer)
        self._queue: list[tuple[str, Any, bool, list[Any] | None]] = []

    def add(self, stmt: Statement, params: Mapping[str, Any], answer: list[Any] | None = None) -> None:
        """Queue one execution; ``answer`` receives its cursor once sent."""
        sql, defaults = stmt.driver_sql(self._conn, params)
        self._queue.append((sql, {**defaults, **params}, False, answer))

    def add_many(self, stmt: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue an ``executemany``."""
        sql, defaults = stmt.driver_sql(self._conn, rows[0])
        self._queue.append((sql, [{**defaults, **row} for row in rows], True, None))

    def add_sql(self, sql: str, params: Mapping[str, Any]) -> None:
        """Queue a statement written for the driver."""
        self._queue.append((sql, dict(params), False, None))

    def flush(self) -> None:
        """Send the queue in one pipeline and wait for every answer (raising the first error)."""
        queue, self._queue = self._queue, []
        if not queue:
            return
        driver: Any = self._conn.connection.driver_connection
        if len(queue) == 1:
            sql, params, many, answer = queue[0]
            cur = driver.cursor()
            (cur.executemany if many else cur.execute)(sql, params)
            if answer is not None:
                answer.append(cur)
            return
        with driver.pipeline():
            for sql, params, many, answer in queue:
                cur = driver.cursor()
                if many:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
                if answer is not None:
                    answer.append(cur)
