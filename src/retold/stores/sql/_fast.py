"""Hot statements: written once in SQLAlchemy Core, run on the driver's connection on SQLite.

SQLAlchemy spends 40-70 µs of Python on each execution of even a cached
statement; the SQLite driver spends 5-20. On SQLite, where one writer
thread runs every transaction of the process, that difference was most of
the writer's time. So the statements of the hot paths are compiled once
for SQLite, and executed on the ``sqlite3`` connection with their
parameters in the compiled order. On other databases (PostgreSQL, where a
network round trip dwarfs it) they go through SQLAlchemy as usual.

Only plain statements qualify: no "expanding" ``IN`` parameters, and
column types that SQLAlchemy does not convert for SQLite (strings,
integers, floats, bytes), which is all the schema uses.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["Rows", "Statement"]


class Rows(Protocol):
    """What the store reads from a result, whichever way the statement ran."""

    def first(self) -> Any: ...

    def scalar(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Statement:
    """A statement of the hot paths: direct on SQLite, through SQLAlchemy elsewhere."""

    __slots__ = ("_defaults", "_keys", "_pg", "_row", "_sql", "stmt")

    def __init__(self, stmt: sa.Executable, dialect: sa.Dialect | None) -> None:
        self.stmt = stmt
        self._sql: str | None = None
        self._keys: tuple[str, ...] = ()
        self._defaults: dict[str, Any] = {}
        self._row: Any = None
        self._pg: dict[tuple[str, ...], tuple[str, dict[str, Any]]] | None = None
        if dialect is not None:
            compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
            if any(bind.expanding for bind in compiled.binds.values()):
                raise TypeError(f"an expanding parameter cannot run directly: {compiled}")
            self._sql = str(compiled)
            self._keys = tuple(compiled.positiontup or ())
            # The values of literal parameters (``status == "running"``).
            self._defaults = {name: bind.value for name, bind in compiled.binds.items()}

    def driver_sql(self, conn: Connection, keys: Iterable[str]) -> tuple[str, dict[str, Any]]:
        """The statement compiled for ``conn``'s dialect (named parameters) and its literal values.

        ``keys``: the parameters given (an insert names the columns it sets).
        """
        if self._pg is None:
            self._pg = {}
        key = tuple(sorted(keys))
        found = self._pg.get(key)
        if found is None:
            compiled = self.stmt.compile(dialect=conn.dialect, column_keys=list(key))  # type: ignore[attr-defined]
            if any(bind.expanding for bind in compiled.binds.values()):
                raise TypeError(f"an expanding parameter cannot run directly: {compiled}")
            found = self._pg[key] = (str(compiled), {name: value for name, value in compiled.params.items()
                                                      if name not in key})
        return found

    def _values(self, params: Mapping[str, Any]) -> list[Any]:
        defaults = self._defaults
        return [params[key] if key in params else defaults[key] for key in self._keys]

    def __call__(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Rows:
        """Execute with ``params`` (keyed like the bind parameters)."""
        if self._sql is None:
            return conn.execute(self.stmt, dict(params or {}))
        return _Direct(_driver(conn).execute(self._sql, self._values(params or {})), self)

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row of parameters (an ``executemany``)."""
        if self._sql is None:
            conn.execute(self.stmt, [dict(row) for row in rows])
            return
        _driver(conn).executemany(self._sql, [self._values(row) for row in rows])

    def insert(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute an insert; return the new row's integer primary key."""
        if self._sql is None:
            key = conn.execute(self.stmt, dict(params)).inserted_primary_key
            assert key is not None
            return int(key[0])
        return int(_driver(conn).execute(self._sql, self._values(params)).lastrowid)

    def _make_row(self, description: Iterable[Sequence[Any]]) -> Any:
        if self._row is None:
            self._row = namedtuple("Row", [column[0] for column in description])  # type: ignore[misc]
        return self._row


def _driver(conn: Connection) -> Any:
    """The ``sqlite3`` connection under a SQLAlchemy one."""
    return conn.connection.driver_connection


class _Direct:
    """A ``sqlite3`` cursor behind the part of SQLAlchemy's result API the store uses."""

    __slots__ = ("_cursor", "_statement")

    def __init__(self, cursor: Any, statement: Statement) -> None:
        self._cursor = cursor
        self._statement = statement

    def first(self) -> Any:
        row = self._cursor.fetchone()
        if row is None:
            return None
        return self._statement._make_row(self._cursor.description)._make(row)

    def scalar(self) -> Any:
        row = self._cursor.fetchone()
        return None if row is None else row[0]

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def all(self) -> list[Any]:
        rows = self._cursor.fetchall()
        if not rows:
            return []
        make = self._statement._make_row(self._cursor.description)._make
        return [make(row) for row in rows]
