"""Shared fixtures: every engine test runs under asyncio and under trio.

Store fixtures: ``store_url`` gives each kind of store (memory, a SQLite file,
PostgreSQL), ``shared_url`` those several processes can share. PostgreSQL
tests use ``$RETOLD_TEST_POSTGRES_URL`` with a fresh schema per test, and
skip, saying so, when it is not set.
"""

from __future__ import annotations

import compileall
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import Phase, settings
from sqlalchemy.pool import NullPool

import retold
from retold.stores import Store
from retold.stores.memory import MemoryStore
from retold.stores.sql import SqlStore

# Hypothesis without its explain phase: once a failure is shrunk, that phase runs the failing
# example again and again under a tracer only to annotate the report (which parts of the input
# did not matter). Whether a test passes or fails is decided before it; the tests that expect
# assert_deterministic to find nondeterminism spent most of their time there (e.g. 22 s -> 0.2 s).
# Every settings object without explicit phases (assert_deterministic's too) inherits this profile.
settings.register_profile("retold-tests", phases=[phase for phase in Phase if phase is not Phase.explain])
settings.load_profile("retold-tests")


ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Compile the project's modules to bytecode once, before the suite starts its processes.

    The suite starts hundreds of Python processes (the CLI, workers, examples, benchmarks),
    each importing retold and the tests' helper modules. Where PYTHONDONTWRITEBYTECODE is set
    nothing writes their bytecode, so each of them compiled all of it from source again (about
    a tenth of the suite's CPU). Python reads bytecode whatever that variable says, and checks
    it against the source's time and size, so a stale file is never used.
    """
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller compiled them
        return
    for folder in ("src", "tests", "examples", "benchmarks"):
        compileall.compile_dir(ROOT / folder, quiet=1)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test on both backends the engine supports."""
    return str(request.param)


EngineFactory = Callable[..., AbstractAsyncContextManager[retold.Engine]]


@pytest.fixture
def make_engine(tmp_path: Path) -> EngineFactory:
    """Open an engine on a fresh SQLite file (or ``url=``) with test-friendly timings."""

    @asynccontextmanager
    async def factory(
        workflows: Iterable[Any] = (), activities: Iterable[Any] = (), **kwargs: Any
    ) -> AsyncIterator[retold.Engine]:
        kwargs.setdefault("url", f"sqlite:///{tmp_path / 'retold.db'}")
        kwargs.setdefault("poll_interval", 0.05)
        async with retold.Engine(workflows=workflows, activities=activities, **kwargs) as engine:
            yield engine

    return factory


POSTGRES_ENV = "RETOLD_TEST_POSTGRES_URL"


def postgres_base_url() -> str:
    """The PostgreSQL server the tests use, or a skip that says how to name one."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV}, e.g. "
            f"{POSTGRES_ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/test (.ci/run sets it)"
        )
    return url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh schema of their own, dropped afterwards."""
    base = postgres_base_url()
    schema = f"retold_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield sa.make_url(base).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        ).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh schema of their own, dropped afterwards."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each kind of store: the contract suite runs against all of them."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite-memory", "sqlite", "postgres"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each kind of SQL database: SQLite in memory, a SQLite file, PostgreSQL."""
    if request.param == "sqlite-memory":
        return "sqlite://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL that several stores (processes) can open at once."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


class Clock:
    """A store clock that tests move by hand (``clock.now += 5``)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def store_for(url: str, clock: Callable[[], float] | None = None, **options: Any) -> Store:
    """The store for ``url`` as the engine picks it: ``memory://`` is the pure memory store, else SQL."""
    if url.startswith("memory:"):
        return MemoryStore(clock=clock, **options)
    return SqlStore(url, clock=clock, **options)


def count_calls(store: Store, method: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of ``store.<method>`` from now on (``counter[0]``), each passed on unchanged.

    ``count_calls(store, "transact", monkeypatch)`` counts write transactions.
    """
    counter = [0]
    wrapped = getattr(store, method)

    async def counted(*args: Any, **options: Any) -> Any:
        counter[0] += 1
        return await wrapped(*args, **options)

    monkeypatch.setattr(store, method, counted)
    return counter


NATS_ENV = "RETOLD_TEST_NATS_URL"


def nats_base_url() -> str:
    """The NATS server (with JetStream) the tests use, or a skip that says how to name one."""
    url = os.environ.get(NATS_ENV)
    if not url:
        pytest.skip(f"NATS tests need {NATS_ENV}, e.g. {NATS_ENV}=nats://127.0.0.1:4222 (a server started with "
                    "-js; .ci/run sets it and starts one)")
    return url


def drop_nats_prefix(url: str) -> None:
    """Delete the stream and snapshot buckets of a NATS store URL (its prefix), if they exist."""
    import asyncio

    from retold.stores.nats import delete_store

    asyncio.run(delete_store(url))


@pytest.fixture
def nats_url() -> Iterator[str]:
    """A NATS store URL with a prefix (stream) of its own, deleted afterwards."""
    base = nats_base_url().split("?")[0]
    url = f"{base}?prefix=t{uuid.uuid4().hex[:12]}"
    yield url
    drop_nats_prefix(url)
