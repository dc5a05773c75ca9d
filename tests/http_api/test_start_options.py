"""Start options over HTTP: signal-with-start (a ``signal`` field), id reuse policy, time limits."""

from __future__ import annotations

from tests.http_api.conftest import Server
from tests.http_api.test_api import assert_problem, wait_for

ORDER = {"sku": "tea", "quantity": 2}


def test_a_start_with_a_signal_starts_the_run_with_it_then_signals_it(server: Server) -> None:
    with server.client() as client:
        body = {"args": [ORDER], "id": "sws-1", "signal": {"name": "note", "value": "first"}}
        started = client.post("/workflows/order/runs", json=body)
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        again = client.post("/workflows/order/runs",
                            json={"args": [ORDER], "id": "sws-1", "signal": {"name": "approve", "value": True}})
        assert again.status_code == 200, again.text
        assert again.json()["run_id"] == run_id
        done = wait_for(client, "/runs/sws-1", lambda b: b["status"] == "completed")
        assert done["result"] == "reserved 2 x tea"
        events = client.get("/runs/sws-1/history").json()["events"]
        assert [e["type"] for e in events[:2]] == ["WorkflowStarted", "SignalReceived"]
        assert sum(e["type"] == "SignalReceived" for e in events) == 2
        late = client.post("/workflows/order/runs",
                           json={"args": [ORDER], "id": "sws-1", "signal": {"name": "approve", "value": True}})
        assert_problem(late, 409, "already finished")


def test_bad_signal_with_start_requests_write_nothing(server: Server) -> None:
    cases: list[tuple[dict[str, object], dict[str, str], str]] = [
        ({"args": [ORDER], "signal": {"name": "approve", "value": True}}, {}, "needs an 'id'"),
        ({"args": [ORDER], "id": "sws-2", "signal": {"value": True}}, {}, "non-empty 'name'"),
        ({"args": [ORDER], "id": "sws-2", "signal": {"name": "approve", "extra": 1}}, {}, "unknown field 'extra'"),
        ({"args": [ORDER], "id": "sws-2", "signal": "approve"}, {}, "field 'signal' must be an object"),
        ({"args": [ORDER], "id": "sws-2", "signal": {"name": "approve"}}, {"Idempotency-Key": "k1"},
         "takes no Idempotency-Key"),
        ({"args": ["tea"], "id": "sws-2", "signal": {"name": "approve", "value": True}}, {}, ""),
    ]
    with server.client() as client:
        for body, headers, detail in cases:
            response = client.post("/workflows/order/runs", json=body, headers=headers)
            assert_problem(response, 422, detail)
        assert client.get("/runs").json()["runs"] == []


def test_id_reuse_policy_field(server: Server) -> None:
    with server.client() as client:
        first = client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-reuse"})
        assert first.status_code == 201, first.text
        wait_for(client, "/runs/g-reuse", lambda b: b["status"] == "completed")
        same = client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-reuse"})
        assert same.status_code == 200
        assert same.json()["run_id"] == first.json()["run_id"]
        refused = client.post("/workflows/greet/runs",
                              json={"args": ["ada"], "id": "g-reuse", "id_reuse_policy": "reject_duplicate"})
        assert_problem(refused, 409, "refuses a new run after a completed one")
        assert_problem(client.post("/workflows/greet/runs",
                                   json={"args": ["ada"], "id": "g-reuse", "id_reuse_policy": "sometimes"}),
                       422, "field 'id_reuse_policy' must be one of")
        again = client.post("/workflows/greet/runs",
                            json={"args": ["bob"], "id": "g-reuse", "id_reuse_policy": "allow_duplicate"})
        assert again.status_code == 201, again.text
        assert again.json()["run_id"] != first.json()["run_id"]
        done = wait_for(client, "/runs/g-reuse", lambda b: b["status"] == "completed")
        assert done["run_id"] == again.json()["run_id"]
        assert done["result"] == "hello, bob"
        assert len(client.get("/runs", params={"id_prefix": "g-reuse"}).json()["runs"]) == 2


def test_time_limit_fields(server: Server) -> None:
    with server.client() as client:
        for field in ("run_timeout", "execution_timeout", "start_delay"):
            bad = client.post("/workflows/order/runs", json={"args": [ORDER], "id": "t-bad", field: 0})
            assert_problem(bad, 422, f"field {field!r} must be a positive number of seconds")
            bad = client.post("/workflows/order/runs", json={"args": [ORDER], "id": "t-bad", field: "1"})
            assert_problem(bad, 422, f"field {field!r} must be an integer or float, not a string")
        assert client.get("/runs").json()["runs"] == []
        started = client.post("/workflows/order/runs", json={"args": [ORDER], "id": "t-1", "run_timeout": 0.5})
        assert started.status_code == 201, started.text
        done = wait_for(client, "/runs/t-1", lambda b: b["status"] == "timed_out", timeout=30)
        assert "timed out: its run timeout passed" in done["failure"]
        assert client.get("/runs", params={"status": "timed_out"}).json()["runs"][0]["workflow_id"] == "t-1"
        events = client.get("/runs/t-1/history").json()["events"]
        assert events[-1]["type"] == "WorkflowTimedOut"
