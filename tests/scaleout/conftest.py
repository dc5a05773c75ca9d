"""Worker processes started by a test are killed when it ends, whatever happened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.scaleout._procs import Worker

Spawn = Callable[..., Worker]


@pytest.fixture
def anyio_backend() -> str:
    """The test's own loop (a client); workers run asyncio or trio in their processes."""
    return "asyncio"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``python -m retold worker TARGET --url URL *options``; killed at the end of the test."""
    started: list[Worker] = []

    def start(target: str, url: str, *options: str) -> Worker:
        worker = Worker(target, url, tmp_path, *options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
