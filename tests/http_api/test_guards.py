"""Idempotency keys, the body size limit and bearer tokens."""

from __future__ import annotations

import socket
import sqlite3
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx

import retold
from tests.http_api.conftest import Server, ServerFactory
from tests.http_api.test_api import assert_problem

ORDER = {"args": [{"sku": "tea", "quantity": 1}]}


def test_an_idempotency_key_returns_the_same_run_for_the_same_request(server: Server) -> None:
    with server.client() as client:
        first = client.post("/workflows/order/runs", json=ORDER, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201
        again = client.post("/workflows/order/runs", json=ORDER, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200
        assert again.json()["run_id"] == first.json()["run_id"]
        assert again.headers["location"] == first.headers["location"]
        other = client.post("/workflows/order/runs", json=ORDER, headers={"Idempotency-Key": "k-2"})
        assert other.status_code == 201
        assert other.json()["run_id"] != first.json()["run_id"]
        assert len(client.get("/runs").json()["runs"]) == 2


def test_an_idempotency_key_with_another_body_is_422(server: Server) -> None:
    with server.client() as client:
        key = {"Idempotency-Key": "k-1"}
        assert client.post("/workflows/order/runs", json=ORDER, headers=key).status_code == 201
        changed = {"args": [{"sku": "tea", "quantity": 2}]}
        body = assert_problem(client.post("/workflows/order/runs", json=changed, headers=key), 422, "k-1")
        assert body["error"] == "IdempotencyError"
        assert_problem(client.post("/workflows/order/runs", json={**ORDER, "id": "x"}, headers=key), 422, "k-1")
        assert_problem(client.post("/workflows/greet/runs", json={"args": ["ada"]}, headers=key), 422, "k-1")
        with_id = {"Idempotency-Key": "k-2"}
        assert client.post("/workflows/order/runs", json={**ORDER, "id": "o-9"}, headers=with_id).status_code == 201
        assert_problem(client.post("/workflows/order/runs", json=ORDER, headers=with_id), 422, "k-2")
        assert client.post("/workflows/order/runs", json={**ORDER, "id": "o-9"}, headers=with_id).status_code == 200
        assert_problem(client.post("/workflows/order/runs", json=ORDER, headers={"Idempotency-Key": ""}), 400)
        assert len(client.get("/runs").json()["runs"]) == 2


def test_a_retry_while_the_first_request_is_being_written_is_409(server: Server) -> None:
    # Another connection holds SQLite's write lock, so the first request waits
    # inside its transaction while the retry arrives.
    lock = sqlite3.connect(server.db, isolation_level=None, timeout=10)
    lock.execute("BEGIN IMMEDIATE")
    first: list[httpx.Response] = []
    # The first request has taken its key once it asks the store for the run
    # (and waits there for the lock): the retry goes in after that, not after a guess.
    writing = threading.Event()
    assert isinstance(server.engine, retold.Engine)
    store = server.engine.runs  # where starts are recorded
    real_start = store.start

    async def start(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        return await real_start(*args, **kwargs)

    store.start = start  # type: ignore[method-assign]

    def send_first() -> None:
        with server.client(timeout=30) as own:
            first.append(own.post("/workflows/order/runs", json=ORDER, headers={"Idempotency-Key": "k-1"}))

    thread = threading.Thread(target=send_first)
    thread.start()
    try:
        assert writing.wait(20), "the first request never reached the store"
        with server.client() as client:
            retry = client.post("/workflows/order/runs", json=ORDER, headers={"Idempotency-Key": "k-1"})
            body = assert_problem(retry, 409, "still being processed")
            assert retry.headers["retry-after"] == "1"
            assert body["status"] == 409
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        thread.join(30)
    assert first[0].status_code == 201
    with server.client() as client:
        after = client.post("/workflows/order/runs", json=ORDER, headers={"Idempotency-Key": "k-1"})
        assert after.status_code == 200
        assert after.json()["run_id"] == first[0].json()["run_id"]


def raw_request(server: Server, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request by hand (headers, then body chunks) and read what comes back."""
    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.replace(b"PATH", url.path.encode()))
        for chunk in chunks:
            sock.sendall(chunk)
        return sock.recv(65536)


def test_bodies_over_the_limit_are_refused_while_they_stream_in(make_server: ServerFactory) -> None:
    with make_server(max_body_size=4096) as server:
        with server.client() as client:
            fits = client.post("/workflows/greet/runs", json={"args": ["a" * 3000]})
            assert fits.status_code == 201
            assert_problem(client.post("/workflows/greet/runs", json={"args": ["a" * 5000]}), 413, "limit")
            assert_problem(client.post("/runs/x/signals/go", json={"value": "a" * 5000}), 413)
        # Chunked, with no length declared, and never finished: the answer must
        # come once the limit is passed, not when the body ends (it never does).
        chunk = b"x" * 1024
        answer = raw_request(
            server,
            b"POST PATH/workflows/greet/runs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 5,
        )
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"application/problem+json" in answer
        # A declared length over the limit is refused before any body is sent.
        answer = raw_request(
            server,
            b"POST PATH/workflows/greet/runs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n",
            [],
        )
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_bearer_tokens(make_server: ServerFactory) -> None:
    with make_server(tokens=["s3cret", "other-token"]) as server:
        with server.client() as anonymous:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
                            {"Authorization": "Bearer"}, {"Authorization": "s3cret"}):
                refused = anonymous.get("/runs", headers=headers)
                assert_problem(refused, 401, "bearer token")
                assert refused.headers["www-authenticate"] == 'Bearer realm="retold"'
            assert anonymous.get("/runs/x/events").status_code == 401
            assert anonymous.post("/workflows/greet/runs", json={"args": ["a"]}).status_code == 401
            doc = anonymous.get("/openapi.json")
            assert doc.status_code == 200
            assert doc.json()["security"] == [{"bearer": []}]
        for token in ("s3cret", "other-token"):
            with server.client(headers={"Authorization": f"Bearer {token}"}) as client:
                assert client.get("/runs").status_code == 200
                assert client.post("/workflows/greet/runs", json={"args": ["a"]}).status_code == 201
