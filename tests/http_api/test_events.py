"""GET /runs/{id}/events: SSE with a real SSE client, disconnects and Last-Event-ID resumes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
from httpx_sse import ServerSentEvent, connect_sse

import retold
from tests import shop
from tests.http_api.conftest import Server, ServerFactory
from tests.http_api.test_api import wait_for


def read_events(
    client: httpx.Client, ident: str, *, last_id: str | None = None, stop_after: int | None = None, **params: Any
) -> list[ServerSentEvent]:
    """Read a run's stream to its end, or disconnect after ``stop_after`` events."""
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    events: list[ServerSentEvent] = []
    with connect_sse(client, "GET", f"/runs/{ident}/events", headers=headers, params=params) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-store"
        for sse in source.iter_sse():
            events.append(sse)
            if stop_after is not None and len(events) >= stop_after:
                break  # leaving the block closes the connection mid-stream
    return events


def test_the_stream_is_the_history_then_it_ends(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-1"})
        events = read_events(client, "g-1")  # starts while the run is young, ends with it
        history = client.get("/runs/g-1/history").json()
    assert [int(e.id) for e in events] == list(range(1, len(history["events"]) + 1))
    assert [e.event for e in events] == [e["type"] for e in history["events"]]
    assert [orjson.loads(e.data) for e in events] == history["events"]
    assert events[-1].event == "WorkflowCompleted"


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/ticker/runs", json={"args": [12, 0.05], "id": "t-1"})
        seen: list[ServerSentEvent] = []
        last_id: str | None = None
        connections = 0
        while not seen or seen[-1].event != "WorkflowCompleted":
            connections += 1
            assert connections < 50
            batch = read_events(client, "t-1", last_id=last_id, stop_after=3)
            seen += batch
            last_id = batch[-1].id if batch else last_id
        history = client.get("/runs/t-1/history").json()["events"]
        # Reconnecting after the final event: 204, which tells EventSource to stop.
        done = client.get("/runs/t-1/events", headers={"Last-Event-ID": last_id or ""})
        assert done.status_code == 204
    assert connections >= 5
    assert [int(e.id) for e in seen] == list(range(1, len(history) + 1))
    assert [orjson.loads(e.data) for e in seen] == history


def test_after_and_last_event_id(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-1"})
        wait_for(client, "/runs/g-1", lambda b: b["status"] == "completed")
        total = client.get("/runs/g-1").json()["event_count"]
        assert [int(e.id) for e in read_events(client, "g-1", after="2")] == list(range(3, total + 1))
        # The header (sent by a reconnecting EventSource) wins over the URL's `after`.
        assert [int(e.id) for e in read_events(client, "g-1", last_id="3", after="1")] == list(range(4, total + 1))
        assert client.get("/runs/g-1/events", params={"after": total}).status_code == 204
        assert client.get("/runs/g-1/events", params={"after": total + 10}).status_code == 204


def test_head_answers_without_following_the_run(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-1"})
        head = client.head("/runs/o-1/events")
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert not server.engine.feeds


def test_idle_streams_send_keepalive_comments(make_server: ServerFactory) -> None:
    with make_server(keepalive=0.1) as server, server.client() as client:
        client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-1"})
        wait_for(client, "/runs/o-1/queries/status", lambda b: b == {"result": "waiting"})
        lines: list[str] = []
        with client.stream("GET", "/runs/o-1/events") as response:
            for line in response.iter_lines():
                lines.append(line)
                if lines.count(": keep-alive") >= 3:
                    break
    assert lines[:3] == ["id: 1", "event: WorkflowStarted", lines[2]]
    assert lines[2].startswith("data: {")
    assert ": keep-alive" in lines


def test_subscribers_of_a_run_share_one_watcher_and_release_it_on_disconnect(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-1"})
        wait_for(client, "/runs/o-1/queries/status", lambda b: b == {"result": "waiting"})
        results: list[list[ServerSentEvent]] = []
        ready = threading.Barrier(21)

        def subscribe() -> None:
            with server.client() as own, connect_sse(own, "GET", "/runs/o-1/events") as source:
                got = []
                for sse in source.iter_sse():
                    got.append(sse)
                    if sse.id == "4":
                        ready.wait(30)
                results.append(got)

        threads = [threading.Thread(target=subscribe) for _ in range(20)]
        for thread in threads:
            thread.start()
        ready.wait(30)
        assert len(server.engine.feeds) == 1
        client.post("/runs/o-1/signals/approve", json={"value": True})
        for thread in threads:
            thread.join(30)
        history = client.get("/runs/o-1/history").json()["events"]
        assert [[orjson.loads(e.data) for e in got] for got in results] == [history] * 20
        # A client that leaves mid-stream releases its subscription at once.
        client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-2"})
        assert len(read_events(client, "o-2", stop_after=1)) == 1
        deadline = time.monotonic() + 15
        while server.engine.feeds:
            assert time.monotonic() < deadline, "the subscription outlived its connection"
            time.sleep(0.01)


def test_runs_advanced_by_another_process_reach_the_stream(make_server: ServerFactory, tmp_path: Path) -> None:
    # The server's engine runs nothing; a second engine on the same database
    # does the work. The stream sees its events by polling.
    with make_server(run_workers=False) as server, server.client() as client:
        client.post("/workflows/ticker/runs", json={"args": [3, 0.05], "id": "t-1"})
        stop = threading.Event()

        async def worker() -> None:
            async with retold.Engine(f"sqlite:///{server.db}", workflows=shop.WORKFLOWS,
                                     activities=shop.ACTIVITIES, poll_interval=0.05):
                while not stop.is_set():
                    await anyio.sleep(0.05)

        thread = threading.Thread(target=anyio.run, args=(worker,))
        thread.start()
        try:
            events = read_events(client, "t-1")
        finally:
            stop.set()
            thread.join(10)
    assert [e.event for e in events] == [
        "WorkflowStarted", "TimerStarted", "TimerFired", "TimerStarted", "TimerFired",
        "TimerStarted", "TimerFired", "WorkflowCompleted",
    ]
