"""Blocked runs and terminate over HTTP: GET /runs/{id}, ?status=blocked, SSE status messages, POST terminate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from httpx_sse import ServerSentEvent, connect_sse

import retold
from tests.http_api.conftest import Server, serve
from tests.http_api.test_api import assert_problem, wait_for

BROKEN = threading.Event()  # while set, the workflow's code trips the sandbox after "go": its run is blocked


@retold.workflow
async def fragile() -> str:
    await retold.wait_signal("go")
    if BROKEN.is_set():
        open("/dev/null")  # noqa: SIM115 - a sandbox violation, on purpose
    await retold.wait_signal("end")
    return "done"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    BROKEN.clear()
    db = tmp_path / "retold.db"
    engine = retold.Engine(f"sqlite:///{db}", workflows=[fragile], poll_interval=0.05,
                           workflow_task_retry_delay=0.2)
    with serve(engine, db) as running:
        yield running


def stream(server: Server, ident: str, messages: list[ServerSentEvent], opened: threading.Event) -> None:
    with server.client(timeout=30) as client, connect_sse(client, "GET", f"/runs/{ident}/events") as source:
        assert source.response.status_code == 200
        opened.set()
        messages.extend(source.iter_sse())


def test_a_blocked_run_is_described_listed_and_streamed_until_it_recovers(server: Server) -> None:
    messages: list[ServerSentEvent] = []
    opened = threading.Event()
    with server.client() as client:
        assert client.post("/workflows/fragile/runs", json={"id": "f-1"}).status_code == 201
        reader = threading.Thread(target=stream, args=(server, "f-1", messages, opened), daemon=True)
        reader.start()
        assert opened.wait(10)
        BROKEN.set()
        assert client.post("/runs/f-1/signals/go", json={}).status_code == 202
        run = wait_for(client, "/runs/f-1", lambda b: b["status"] == "blocked")
        assert run["blocked"]["type"] == "retold.errors.WorkflowSandboxError"
        assert "open()" in run["blocked"]["message"]
        assert run["blocked"]["seq"] is None
        assert run["blocked"]["attempts"] >= 1
        assert run["closed_at"] is None
        assert [r["workflow_id"] for r in client.get("/runs", params={"status": "blocked"}).json()["runs"]] == ["f-1"]
        assert client.get("/runs", params={"status": "running"}).json()["runs"] == []
        wait_for(client, "/runs/f-1", lambda b: b["blocked"]["attempts"] >= 2)  # retried, still blocked
        deadline = time.monotonic() + 10
        while "status" not in [m.event for m in messages]:  # the stream says so too
            assert time.monotonic() < deadline, [m.event for m in messages]
            time.sleep(0.02)
        BROKEN.clear()  # the fix: the next retry goes through
        wait_for(client, "/runs/f-1", lambda b: b["status"] == "running")
        assert client.post("/runs/f-1/signals/end", json={}).status_code == 202
        done = wait_for(client, "/runs/f-1", lambda b: b["status"] == "completed")
        reader.join(20)
    assert not reader.is_alive()
    assert (done["result"], done["blocked"]) == ("done", None)
    kinds = [m.event for m in messages]
    assert kinds == ["WorkflowStarted", "WorkflowTaskCompleted", "SignalReceived", "status", "status",
                     "WorkflowTaskCompleted", "SignalReceived", "WorkflowCompleted"]
    blocked, unblocked = (orjson.loads(m.data) for m in messages if m.event == "status")
    assert blocked["status"] == "blocked"
    assert blocked["blocked"]["type"] == "retold.errors.WorkflowSandboxError"
    assert unblocked == {"status": "running", "blocked": None}
    assert all(m.id == "3" for m in messages if m.event == "status")  # no id of their own: the last event's stays


def test_terminate_closes_the_run_and_its_stream(server: Server) -> None:
    messages: list[ServerSentEvent] = []
    opened = threading.Event()
    with server.client() as client:
        client.post("/workflows/fragile/runs", json={"id": "f-2"})
        reader = threading.Thread(target=stream, args=(server, "f-2", messages, opened), daemon=True)
        reader.start()
        assert opened.wait(10)
        answer = client.post("/runs/f-2/terminate", json={"reason": "not needed"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "terminated"
        assert answer.json()["failure"] == "the run was terminated: not needed"
        assert_problem(client.post("/runs/f-2/terminate", json={}), 409, "already finished (terminated)")
        assert_problem(client.post("/runs/nope/terminate"), 404, "no run with id 'nope'")
        assert_problem(client.post("/runs/f-2/terminate", json={"reason": 5}), 422)
        assert [r["workflow_id"] for r in client.get("/runs", params={"status": "terminated"}).json()["runs"]] == [
            "f-2"]
        reader.join(20)
        assert client.get("/runs/f-2/events", params={"after": 3}).status_code == 204
    assert not reader.is_alive()
    assert messages[-1].event == "WorkflowTerminated"
    assert orjson.loads(messages[-1].data)["reason"] == "not needed"
    assert "status" not in [m.event for m in messages]
