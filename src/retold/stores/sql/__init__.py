"""The SQL store (SQLite through SQLAlchemy Core)."""

from ._store import SqlStore as SqlStore

__all__ = ["SqlStore"]
