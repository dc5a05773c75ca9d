"""``GET /runs/{id}`` lists a run's pending work and says when no worker hosts it."""

from __future__ import annotations

from pathlib import Path

import retold
from tests import shop
from tests.http_api.conftest import serve
from tests.http_api.test_api import wait_for


def test_a_run_shows_its_pending_activity_and_that_nothing_hosts_it(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    engine = retold.Engine(f"sqlite:///{db}", workflows=[shop.greet], poll_interval=0.05)  # no activities
    with serve(engine, db) as server, server.client() as client:
        started = client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-1"})
        assert started.status_code == 201, started.text
        body = wait_for(client, "/runs/g-1", lambda b: bool(b["pending"]["activities"]))
        [activity] = body["pending"]["activities"]
        assert {k: activity[k] for k in ("seq", "activity", "queue", "attempt", "hosted", "worker")} == {
            "seq": 2, "activity": "email", "queue": "default", "attempt": 1, "hosted": False, "worker": None}
        assert activity["scheduled_at"].startswith(body["started_at"][:10])
        assert body["pending"]["waiting_for"] == [
            "waiting for activity 'email' on queue 'default': no running worker hosts it"]
        # Lists leave pending work out.
        [listed] = client.get("/runs").json()["runs"]
        assert listed["pending"] is None
