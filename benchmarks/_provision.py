"""Fresh databases for every workload process: SQLite files or PostgreSQL databases.

Each process gets a database nobody used before, so no run sees another's
rows, caches or WAL. ``clone`` copies a prepared database (W4's long
histories are built once and recovered from copies).
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

import sqlalchemy as sa

from _common import Job, sqlite_files


class Databases:
    """Hands out databases under ``directory`` (SQLite) or on the server of ``url`` (PostgreSQL).

    Args:
        url: None for SQLite files, else a PostgreSQL URL whose database is
            only used to create and drop the benchmark's own databases.
        directory: where SQLite files go (keep it on the disk you measure).
    """

    def __init__(self, url: str | None, directory: Path) -> None:
        self.url = url
        self.directory = directory
        self._created: list[str] = []
        self.memory = bool(url and url.startswith("memory:"))  # memory://: the pure memory store, no database
        self._admin = sa.create_engine(url, isolation_level="AUTOCOMMIT") if url and not self.memory else None

    @property
    def kind(self) -> str:
        """``sqlite``, ``memory`` or the URL's dialect name."""
        if self.memory:
            return "memory"
        return "sqlite" if self._admin is None else self._admin.dialect.name

    def job(self, workload: str, name: str, params: dict[str, object]) -> Job:
        """A job on a new, empty database called after ``name``."""
        url, path = self._new(name)
        return Job(workload=workload, url=url, path=path, params=dict(params))

    def clone(self, source: Job, workload: str, name: str, params: dict[str, object]) -> Job:
        """A job on a copy of ``source``'s database."""
        if self.memory:
            raise ValueError("a memory:// store lives in one process: it cannot be copied for another")
        if source.path is not None:
            _, path = self._sqlite_path(name)
            checkpoint = sqlite3.connect(source.path)
            try:
                checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                checkpoint.close()
            shutil.copyfile(source.path, path)  # WAL mode is recorded in the file's header
            return Job(workload=workload, url=f"sqlite:///{path}", path=str(path), params=dict(params))
        assert self._admin is not None
        database = self._database_name(name)
        source_db = sa.make_url(source.url).database
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}" TEMPLATE "{source_db}"'))
        self._created.append(database)
        target = sa.make_url(self.url or "").set(database=database)
        return Job(workload=workload, url=target.render_as_string(hide_password=False), path=None,
                   params=dict(params))

    def drop(self, job: Job) -> None:
        """Delete the job's database."""
        if self.memory:
            return
        if job.path is not None:
            for file in sqlite_files(Path(job.path)):
                file.unlink()
            return
        assert self._admin is not None
        database = sa.make_url(job.url).database
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if database in self._created:
            self._created.remove(database)

    def close(self) -> None:
        """Drop every PostgreSQL database still around."""
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for database in self._created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        self._created.clear()
        self._admin.dispose()

    def _new(self, name: str) -> tuple[str, str | None]:
        if self.memory:
            return "memory://", None
        if self._admin is None:
            url, path = self._sqlite_path(name)
            return url, str(path)
        database = self._database_name(name)
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        self._created.append(database)
        target = sa.make_url(self.url or "").set(database=database)
        return target.render_as_string(hide_password=False), None

    def _sqlite_path(self, name: str) -> tuple[str, Path]:
        path = self.directory / f"{name}-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", path

    @staticmethod
    def _database_name(name: str) -> str:
        safe = "".join(c if c.isalnum() else "_" for c in name.lower())
        return f"retold_bench_{safe}_{uuid.uuid4().hex[:8]}"


class NatsStreams:
    """Hands out NATS stores (``nats://...``): each job gets a stream prefix nobody used before, deleted after."""

    memory = False

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url.split("?")[0]
        self.directory = directory
        self._created: list[str] = []

    @property
    def kind(self) -> str:
        return "nats"

    def job(self, workload: str, name: str, params: dict[str, object]) -> Job:
        safe = "".join(c if c.isalnum() else "_" for c in name.lower())
        url = f"{self.url}?prefix=bench_{safe}_{uuid.uuid4().hex[:8]}"
        self._created.append(url)
        return Job(workload=workload, url=url, path=None, params=dict(params))

    def clone(self, source: Job, workload: str, name: str, params: dict[str, object]) -> Job:
        raise ValueError("a NATS store's stream is not copied: W4 does not run on nats://")

    def drop(self, job: Job) -> None:
        _drop_nats(job.url)
        if job.url in self._created:
            self._created.remove(job.url)

    def close(self) -> None:
        for url in self._created:
            _drop_nats(url)
        self._created.clear()


def _drop_nats(url: str) -> None:
    import asyncio

    from retold.stores.nats import delete_store

    asyncio.run(delete_store(url))
