"""A real server for the HTTP tests: uvicorn on a loopback socket, in a thread."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

import retold
import retold.http
from tests import shop


@dataclass
class Server:
    """A running app: ``url`` is the API's base URL (it is mounted at /api)."""

    url: str
    engine: retold.Engine | retold.Client
    db: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 10)
        return httpx.Client(base_url=self.url, **kwargs)


@contextmanager
def serve(engine: retold.Engine | retold.Client, db: Path, **app_options: Any) -> Iterator[Server]:
    """Run ``create_app(engine)`` (or a client's) mounted at /api on uvicorn; the lifespan opens it."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with engine:
            yield

    mount = Mount("/api", retold.http.create_app(engine, **app_options))
    # Workflow ids may hold newlines: let the host's mount pass them on, as retold's own routes do.
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    host = Starlette(routes=[mount], lifespan=lifespan)
    config = uvicorn.Config(host, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}/api", engine, db)
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


ServerFactory = Callable[..., AbstractContextManager[Server]]


@pytest.fixture
def make_server(tmp_path: Path) -> ServerFactory:
    """Start a server on a fresh SQLite file; keyword arguments go to Engine and create_app."""

    @contextmanager
    def factory(**options: Any) -> Iterator[Server]:
        app_keys = {"tokens", "max_body_size", "keepalive", "dashboard"}
        app_options = {k: options.pop(k) for k in list(options) if k in app_keys}
        db = tmp_path / "retold.db"
        options.setdefault("poll_interval", 0.05)
        engine = retold.Engine(
            f"sqlite:///{db}", workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES, **options
        )
        with serve(engine, db, **app_options) as server:
            yield server

    return factory


@pytest.fixture
def server(make_server: ServerFactory) -> Iterator[Server]:
    """A server with default settings."""
    with make_server() as running:
        yield running
