"""Shared fixtures: every engine test runs under asyncio and under trio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import retold


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
