"""``POST /purge``: delete finished runs over HTTP, with counts."""

from __future__ import annotations

import pytest

from tests.http_api.conftest import Server
from tests.http_api.test_api import assert_problem, wait_for


def test_purge_counts_then_deletes_finished_runs_only(server: Server) -> None:
    with server.client() as client:
        for name in ("ada", "bo"):
            assert client.post("/workflows/greet/runs", json={"args": [name], "id": name}).status_code == 201
            wait_for(client, f"/runs/{name}", lambda run: run["status"] == "completed")
        assert client.post("/workflows/order/runs", json={"args": [{"sku": "a", "quantity": 1}], "id": "open"}
                           ).status_code == 201
        counted = client.post("/purge", json={"older_than": 0, "dry_run": True})
        assert counted.status_code == 200, counted.text
        assert counted.json() == {"runs": 2, "workflow_ids": 2, "events": 8, "tasks": 0, "inbox": 0, "timers": 0,
                                  "kept": 0, "dry_run": True}
        assert len(client.get("/runs").json()["runs"]) == 3
        assert client.post("/purge", json={"older_than": 3600}).json()["runs"] == 0
        done = client.post("/purge", json={"older_than": 0, "statuses": ["completed"], "workflow": "greet"})
        assert done.json()["runs"] == 2
        assert [run["workflow_id"] for run in client.get("/runs").json()["runs"]] == ["open"]
        assert_problem(client.get("/runs/ada"), 404)


@pytest.mark.parametrize(("body", "detail"), [
    ({}, "'older_than' is required"),
    (None, "'older_than' is required"),
    ({"older_than": -1}, "from 0 to"),
    ({"older_than": True}, "'older_than' is required"),
    ({"older_than": "30d"}, "must be"),
    ({"older_than": 0, "statuses": ["running"]}, "never purged"),
    ({"older_than": 0, "statuses": "completed"}, "must be an array"),
    ({"older_than": 0, "workflow": ""}, "field 'workflow'"),
    ({"older_than": 0, "dry_run": 1}, "must be"),
    ({"older_than": 0, "everything": True}, "unknown field"),
])
def test_purge_refuses_a_bad_body(server: Server, body: object, detail: str) -> None:
    with server.client() as client:
        assert_problem(client.post("/purge", json=body), 422, detail)
