"""POST /runs/{id}/updates/{name}: validated, recorded, answered (or 202 and a place to ask again)."""

from __future__ import annotations

from pathlib import Path

import retold
from tests.http_api.conftest import serve
from tests.test_updates import cart, price


def test_an_update_over_http_answers_rejects_and_hands_out_a_place_to_ask_again(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    engine = retold.Engine(f"sqlite:///{db}", workflows=[cart], activities=[price], poll_interval=0.05)
    with serve(engine, db) as server, server.client(timeout=60) as client:
        assert client.post("/workflows/cart/runs", json={"args": ["ann"], "id": "c-1"}).status_code == 201
        done = client.post("/runs/c-1/updates/add", json={"args": ["apple"], "id": "h-1"})
        assert done.status_code == 200, done.text
        assert done.json() == {"workflow_id": "c-1", "update_id": "h-1", "result": 5}
        assert client.post("/runs/c-1/updates/add", json={"args": ["apple"], "id": "h-1"}).json()["result"] == 5
        events = len(client.get("/runs/c-1/history").json()["events"])
        rejected = client.post("/runs/c-1/updates/add", json={"args": ["apple"]})
        assert rejected.status_code == 422
        assert "already in the cart" in rejected.json()["detail"]
        assert rejected.json()["error"] == "UpdateRejectedError"
        assert client.post("/runs/c-1/updates/remove", json={"args": ["x"]}).status_code == 422
        assert len(client.get("/runs/c-1/history").json()["events"]) == events  # no trace
        failed = client.post("/runs/c-1/updates/add", json={"args": ["broken"]})
        assert failed.status_code == 409
        assert "the shelf is empty" in failed.json()["detail"]

        later = client.post("/runs/c-1/updates/add?wait=0", json={"args": ["slow"], "id": "h-slow"})
        assert later.status_code == 202, later.text
        assert later.json() == {"workflow_id": "c-1", "update_id": "h-slow"}
        location = later.headers["Location"]
        assert location.endswith("/runs/c-1/updates/add/h-slow")
        assert client.get(location, params={"wait": 0}).status_code == 202
        slashed = client.post("/runs/c-1/updates/add?wait=0", json={"args": ["slow"], "id": "order/7"})
        assert slashed.status_code == 202
        assert client.get(slashed.headers["Location"], params={"wait": 0}).json()["update_id"] == "order/7"
        assert client.get("/runs/c-1/updates/add/h-1").json()["result"] == 5
        assert client.get("/runs/c-1/updates/add/nope").status_code == 404
        assert client.get("/runs/c-1/updates/remove/h-1").status_code == 404  # h-1 was an "add"
        assert client.post("/runs/c-1/signals/checkout", json={}).status_code == 202
        closed = client.get(location)
        assert closed.status_code == 409
        assert "closed" in closed.json()["detail"]
        assert client.post("/runs/nope/updates/add", json={"args": ["x"]}).status_code == 404
        assert client.post("/runs/c-1/updates/add?wait=301", json={"args": ["x"]}).status_code == 400
