"""The SQL store: SQLite or PostgreSQL through SQLAlchemy Core."""

from ._store import SqlStore as SqlStore

__all__ = ["SqlStore"]
