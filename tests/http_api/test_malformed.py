"""Malformed requests: a 4xx problem document naming the field, never a 5xx, and nothing written.

Sent as raw bytes over a socket, so that what reaches the server is exactly
what a hostile client sends (Latin-1 header bytes, NUL bytes in the path),
on SQLite and on PostgreSQL (which refuses NUL bytes and long keys that
SQLite takes).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import retold
from tests.http_api.conftest import Server, serve
from tests.http_api.test_api import assert_problem, wait_for
from tests.properties.test_json_exact import same_json


@retold.workflow(name="inbox")
async def inbox() -> list[Any]:
    """Collect the values of 'put' signals until one is "stop"."""
    values: list[Any] = []
    retold.set_query_handler("count", lambda: len(values))
    while (value := await retold.wait_signal("put")) != "stop":
        values.append(value)
    return values


@retold.workflow(name="echo")
async def echo(value: Any) -> Any:
    """Return the argument."""
    return value


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    url = (f"sqlite:///{tmp_path / 'retold.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("postgres_url")))
    engine = retold.Engine(url, workflows=[inbox, echo], poll_interval=0.05)
    with serve(engine, tmp_path / "retold.db", max_body_size=64 * 1024) as running:
        yield running


def send(server: Server, method: str, path: bytes, headers: dict[bytes, bytes] | None = None,
         body: bytes = b"") -> bytes:
    """One request, written by hand; everything the server answers until it closes."""
    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    head = [b"%s %s%s HTTP/1.1" % (method.encode(), url.path.encode(), path), b"Host: test", b"Connection: close"]
    head += [b"%s: %s" % item for item in (headers or {}).items()]
    if body:
        head += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def problem(answer: bytes) -> tuple[int, dict[str, Any]]:
    """The status and problem document of a raw answer (which must have a status line)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 "), answer[:300]
    assert b"content-type: application/problem+json" in head.lower(), answer[:300]
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == int(lines[0].split()[1])
    return document["status"], document


def snapshot(client: httpx.Client) -> list[Any]:
    """Every run and its history: what must not change when a request is refused."""
    runs = client.get("/runs", params={"limit": 1000}).json()["runs"]
    return [(run, client.get(f"/runs/{run['run_id']}/history").json()) for run in runs]


BIG = str(2**100).encode()
LONG = b"x" * 10_000

# (method, path, headers, body, status, words the detail must contain)
CASES: list[tuple[str, bytes, dict[bytes, bytes], bytes, int, str]] = [
    ("GET", b"/runs/box/events", {b"Last-Event-ID": b"9" * 400}, b"", 400, "Last-Event-ID"),
    ("GET", b"/runs/box/events", {b"Last-Event-ID": str(2**63).encode()}, b"", 400, "between 0 and"),
    ("GET", b"/runs/box/events", {b"Last-Event-ID": b"\xb2"}, b"", 400, "ASCII digits"),  # Latin-1 superscript 2
    ("GET", b"/runs/box/events", {b"Last-Event-ID": "²".encode()}, b"", 400, "ASCII digits"),
    ("GET", b"/runs/box/events", {b"Last-Event-ID": "٣".encode()}, b"", 400, "ASCII digits"),
    ("GET", b"/runs/box/events", {b"Last-Event-ID": b"-1"}, b"", 400, "between 0 and"),
    ("GET", b"/runs/box/events?after=%C2%B2", {}, b"", 400, "after must be an integer"),
    ("GET", b"/runs?limit=1_0", {}, b"", 400, "limit must be an integer"),
    ("GET", b"/runs?offset=" + b"9" * 5000, {}, b"", 400, "offset must be an integer"),
    ("GET", b"/runs/a%00b", {}, b"", 400, "NUL"),
    ("GET", b"/runs/a%00b/events", {}, b"", 400, "NUL"),
    ("GET", b"/runs/a%00b/history", {}, b"", 400, "NUL"),
    ("GET", b"/runs/a%00b/queries/count", {}, b"", 400, "NUL"),
    ("POST", b"/runs/a%00b/signals/put", {}, b'{"value": 1}', 400, "NUL"),
    ("POST", b"/runs/a%00b/cancel", {}, b"{}", 400, "NUL"),
    ("GET", b"/runs/" + LONG, {}, b"", 400, "at most 255 characters"),
    ("GET", b"/runs/" + LONG + b"/events", {}, b"", 400, "at most 255 characters"),
    ("POST", b"/runs/" + LONG + b"/signals/put", {}, b'{"value": 1}', 400, "at most 255 characters"),
    ("POST", b"/runs/box/signals/a%00b", {}, b'{"value": 1}', 400, "signal name must not contain a NUL"),
    ("POST", b"/runs/box/signals/" + LONG, {}, b'{"value": 1}', 400, "signal name may have at most 255"),
    ("GET", b"/runs/box/queries/a%00b", {}, b"", 400, "query name must not contain a NUL"),
    ("GET", b"/runs?workflow=a%00b", {}, b"", 400, "NUL"),
    ("GET", b"/runs?workflow=" + LONG, {}, b"", 400, "at most 255 characters"),
    ("POST", b"/workflows/echo/runs", {}, b'{"args": [1], "id": "a\\u0000b"}', 422, "NUL"),
    ("POST", b"/workflows/echo/runs", {}, b'{"args": [1], "id": "' + LONG + b'"}', 422, "at most 255"),
    ("POST", b"/workflows/echo/runs", {b"Idempotency-Key": LONG}, b'{"args": [1]}', 400, "1 to 255 characters"),
    ("POST", b"/workflows/echo/runs", {b"Idempotency-Key": "clé".encode()}, b'{"args": [1]}', 400, "visible ASCII"),
    ("POST", b"/workflows/echo/runs", {b"Idempotency-Key": b"\xe9t\xe9"}, b'{"args": [1]}', 400, "visible ASCII"),
    ("POST", b"/workflows/echo/runs", {}, b'{"args": [' + BIG + b"]}", 422, "outside the range"),
    ("POST", b"/workflows/echo/runs", {}, b'{"args": [[-9223372036854775809]]}', 422, "outside the range"),
    ("POST", b"/runs/box/signals/put", {}, b'{"value": ' + BIG + b"}", 422, "send it as a string"),
    ("POST", b"/runs/box/signals/put", {}, b'{"value": {"n": -' + BIG + b"}}", 422, "outside the range"),
    ("POST", b"/runs/box/signals/put", {}, b'{"value": 1e400}', 400, "not valid JSON"),
    ("POST", b"/runs/box/signals/put", {}, b'{"value": NaN}', 400, "not valid JSON"),
    ("POST", b"/runs/box/signals/put", {}, b'{"value": "\\ud800"}', 400, "not valid JSON"),
    ("GET", b"/runs/box/queries/count?args=%5B" + BIG + b"%5D", {}, b"", 422, "outside the range"),
]


def test_malformed_requests_get_problem_details_and_change_nothing(server: Server) -> None:
    with server.client() as client:
        assert client.post("/workflows/inbox/runs", json={"id": "box"}).status_code == 201
        wait_for(client, "/runs/box/queries/count", lambda b: b == {"result": 0})
        before = snapshot(client)
        for method, path, headers, body, status, words in CASES:
            got, document = problem(send(server, method, path, headers, body))
            assert (got, words in document["detail"]) == (status, True), (method, path[:60], headers, document)
        assert snapshot(client) == before
        # The run was not disturbed: it still takes signals and finishes.
        assert client.post("/runs/box/signals/put", json={"value": "stop"}).status_code == 202
        assert wait_for(client, "/runs/box", lambda b: b["status"] == "completed")["result"] == []


def test_integers_stay_exact_from_the_request_to_the_workflow(server: Server) -> None:
    # Values at the edges of the range, and one a float cannot hold (2**53 + 1).
    values = [2**64 - 1, -(2**63), 2**53 + 1, 0.1, -0.0, 1e300, {"n": [2**63, 2.0]}]
    with server.client() as client:
        assert client.post("/workflows/inbox/runs", json={"id": "box"}).status_code == 201
        for value in values:
            sent = client.post("/runs/box/signals/put", content=json.dumps({"value": value}),
                               headers={"content-type": "application/json"})
            assert sent.status_code == 202, sent.text
        client.post("/runs/box/signals/put", json={"value": "stop"})
        done = wait_for(client, "/runs/box", lambda b: b["status"] == "completed")
        assert same_json(done["result"], values)
        started = client.post("/workflows/echo/runs", content=json.dumps({"args": [values], "id": "e"}),
                              headers={"content-type": "application/json"})
        assert started.status_code == 201, started.text
        assert same_json(wait_for(client, "/runs/e", lambda b: b["status"] == "completed")["result"], values)


def test_oversized_bodies_are_answered_413_even_when_sent_whole(server: Server) -> None:
    # A client that writes its whole body before reading (as most do) still
    # reads the 413: the server does not reset the connection under it.
    with server.client() as client:
        for size in (65 * 1024, 5 * 1024 * 1024):
            body = b'{"value": "' + b"a" * size + b'"}'
            assert_problem(client.post("/runs/box/signals/put", content=body,
                                       headers={"content-type": "application/json"}), 413, "limit")
        assert client.get("/runs").json()["runs"] == []



def test_ids_with_newlines_are_addressed_exactly(server: Server) -> None:
    # Workflow ids may hold any character but NUL. A path that ends in a
    # newline used to name the run without it (/runs/box%0A was run "box"),
    # and one with a newline inside matched no route.
    with server.client() as client:
        assert client.post("/workflows/inbox/runs", json={"id": "box"}).status_code == 201
        assert client.post("/workflows/echo/runs", json={"args": [1], "id": "two\nlines"}).status_code == 201
        assert client.get("/runs/two%0Alines").json()["workflow_id"] == "two\nlines"
        done = wait_for(client, "/runs/two%0Alines", lambda b: b["status"] == "completed")
        assert done["result"] == 1
        assert_problem(client.get("/runs/box%0A"), 404, "no run with id 'box\\n'")
        assert_problem(client.post("/runs/box%0A/signals/put", json={"value": 1}), 404, "no run")
        assert client.get("/runs/box").json()["status"] == "running"
