"""The HTTP API's routes, over a real socket."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

import retold
from tests.http_api.conftest import Server, ServerFactory


def wait_for(client: httpx.Client, path: str, check: Any, timeout: float = 10) -> dict[str, Any]:
    """GET ``path`` until ``check(json)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(path).json()
        if check(body):
            return body
        assert time.monotonic() < deadline, f"{path}: still {body}"
        time.sleep(0.02)


def assert_problem(response: httpx.Response, status: int, detail: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert detail in body["detail"]
    return body


def test_workflows_lists_the_registry(server: Server) -> None:
    with server.client() as client:
        body = client.get("/workflows").json()
    workflows = {w["name"]: w for w in body["workflows"]}
    assert sorted(workflows) == ["fails", "greet", "order", "ticker"]
    assert workflows["order"]["activities"] == ["reserve"]
    assert workflows["greet"]["activities"] == ["email"]
    assert workflows["order"]["parameters"] == [{"name": "item", "type": "Order", "required": True}]
    assert workflows["ticker"]["parameters"][1] == {"name": "interval", "type": "float", "required": False}
    assert workflows["order"]["returns"] == "str"
    assert workflows["order"]["description"].startswith("Reserve, then wait for approval")
    activities = {a["name"]: a for a in body["activities"]}
    assert activities["reserve"]["task_queue"] == "shop"
    assert activities["email"]["returns"] == "None"


def test_start_then_signal_query_and_read_a_run(server: Server) -> None:
    with server.client() as client:
        started = client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 2}], "id": "o-1"})
        assert started.status_code == 201, started.text
        run = started.json()
        assert run["workflow_id"] == "o-1"
        assert run["workflow"] == "order"
        assert run["status"] == "running"
        assert started.headers["location"] == f"{server.url}/runs/o-1"
        wait_for(client, "/runs/o-1/queries/status", lambda b: b == {"result": "waiting"})
        assert client.get("/runs/o-1/queries/echo", params={"args": '[1, "a"]'}).json() == {"result": [1, "a"]}
        signalled = client.post("/runs/o-1/signals/approve", json={"value": True})
        assert signalled.status_code == 202
        done = wait_for(client, "/runs/o-1", lambda b: b["status"] == "completed")
        assert done["result"] == "reserved 2 x tea"
        assert done["run_id"] == run["run_id"]
        assert done["closed_at"] is not None
        by_run_id = client.get(f"/runs/{run['run_id']}").json()
        assert by_run_id["workflow_id"] == "o-1"
        history = client.get("/runs/o-1/history")
        assert history.headers["content-type"] == "application/json"
        # A long history reads in pages: a full page names the next one.
        pages: list[list[int]] = []
        url: str | None = "/runs/o-1/history?limit=2"
        while url is not None:
            page = client.get(url)
            assert page.status_code == 200, page.text
            pages.append([e["seq"] for e in page.json()["events"]])
            url = page.links.get("next", {}).get("url")
        assert client.get("/runs/o-1/history", params={"after": 2, "limit": 0}).status_code == 400
    exported = retold.History.from_json(history.content)
    assert [e.type for e in exported][-1] == "WorkflowCompleted"
    assert exported.workflow_id == "o-1"
    assert len(exported) == done["event_count"]
    assert [seq for page in pages for seq in page] == [e.seq for e in exported]
    assert all(len(page) <= 2 for page in pages)


def test_cancel_and_failure(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-2"})
        cancelled = client.post("/runs/o-2/cancel", json={"reason": "changed my mind"})
        assert cancelled.status_code == 202
        body = wait_for(client, "/runs/o-2", lambda b: b["status"] == "cancelled")
        assert "result" not in body
        assert_problem(client.post("/runs/o-2/signals/approve", json={"value": True}), 409, "already finished")
        assert_problem(client.post("/runs/o-2/cancel"), 409)
        # A finished run's query is answered from its replayed history: the state it was cancelled in.
        assert client.get("/runs/o-2/queries/status").json()["result"] in ("reserving", "waiting")
        client.post("/workflows/fails/runs", json={"id": "f-1"})
        failed = wait_for(client, "/runs/f-1", lambda b: b["status"] == "failed")
        assert "boom" in failed["failure"]


def test_list_runs_filters_and_pages(server: Server) -> None:
    with server.client() as client:
        for i in range(5):
            assert client.post("/workflows/greet/runs", json={"args": [f"n{i}"], "id": f"g-{i}"}).status_code == 201
        client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-1"})
        wait_for(client, "/runs?status=completed", lambda b: len(b["runs"]) == 5)
        page = client.get("/runs", params={"workflow": "greet", "limit": 2})
        body = page.json()
        assert [r["workflow_id"] for r in body["runs"]] == ["g-4", "g-3"]
        assert page.headers["link"] == f'<{body["next"]}>; rel="next"'
        seen = [r["workflow_id"] for r in body["runs"]]
        while body["next"]:
            body = client.get(body["next"]).json()
            seen += [r["workflow_id"] for r in body["runs"]]
        assert seen == ["g-4", "g-3", "g-2", "g-1", "g-0"]
        running = client.get("/runs", params={"status": "running"}).json()
        assert [r["workflow_id"] for r in running["runs"]] == ["o-1"]
        assert running["next"] is None
        assert_problem(client.get("/runs", params={"status": "sleeping"}), 400, "status must be one of")
        assert_problem(client.get("/runs", params={"limit": "ten"}), 400, "limit must be an integer")
        assert_problem(client.get("/runs", params={"limit": 0}), 400, "between 1 and 1000")


def test_child_ids_with_slashes_are_addressable(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/greet/runs", json={"args": ["ada"], "id": "team/ada"})
        body = wait_for(client, "/runs/team/ada", lambda b: b["status"] == "completed")
        assert body["workflow_id"] == "team/ada"
        assert client.get("/runs/team%2Fada/history").json()["workflow_id"] == "team/ada"


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "detail"),
    [
        ("POST", "/workflows/nope/runs", {"json": {}}, 404, "workflow 'nope' is not registered"),
        ("GET", "/runs/nope", {}, 404, "no run with id 'nope'"),
        ("GET", "/runs/nope/history", {}, 404, "no run"),
        ("GET", "/runs/nope/events", {}, 404, "no run"),
        ("POST", "/runs/nope/signals/go", {}, 404, "no run"),
        ("POST", "/runs/nope/cancel", {}, 404, "no run"),
        ("GET", "/runs/nope/queries/status", {}, 404, "no run"),
        ("GET", "/nowhere", {}, 404, "/nowhere"),
        ("DELETE", "/runs", {}, 405, ""),
        ("POST", "/workflows/greet/runs", {"content": b'{"args": ["ada"'}, 400, "not valid JSON"),
        ("POST", "/workflows/greet/runs", {"content": b"[1]"}, 422, "must be a JSON object"),
        ("POST", "/workflows/greet/runs", {"json": {"args": "ada"}}, 422, "'args' must be an array"),
        ("POST", "/workflows/greet/runs", {"json": {"args": [], "extra": 1}}, 422, "unknown field 'extra'"),
        ("POST", "/workflows/greet/runs", {"json": {"args": [5]}}, 422, "argument 1 (name): cannot decode 5 as str"),
        ("POST", "/workflows/greet/runs", {"json": {"args": []}}, 422, "missing a required argument"),
        ("POST", "/workflows/greet/runs", {"json": {"id": ""}}, 422, "'id' must not be empty"),
        ("POST", "/workflows/order/runs", {"json": {"args": [{"sku": "tea", "quantity": 1.5}]}}, 422,
         "expected an integer, got float 1.5 @ $.quantity"),
        ("POST", "/workflows/greet/runs", {"content": b"ada", "headers": {"content-type": "text/plain"}}, 415,
         "send JSON"),
        ("GET", "/runs/x/queries/status", {"params": {"args": "[1"}}, 400, "args (a JSON array) is not valid JSON"),
        ("GET", "/runs/x/queries/status", {"params": {"args": "{}"}}, 400, "args must be a JSON array"),
        ("GET", "/runs/x/events", {"headers": {"last-event-id": "three"}}, 400, "Last-Event-ID"),
    ],
)
def test_errors_are_problem_details(
    server: Server, method: str, path: str, kwargs: dict[str, Any], status: int, detail: str
) -> None:
    with server.client() as client:
        assert_problem(client.request(method, path, **kwargs), status, detail)


def test_errors_from_the_client_api_name_their_class(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-1"})
        wait_for(client, "/runs/o-1/queries/status", lambda b: b == {"result": "waiting"})
        body = assert_problem(client.get("/runs/o-1/queries/nope"), 422)
        assert body["error"] == "QueryError"
        # The same workflow id with other input, without an idempotency key: a conflict.
        other = client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 2}], "id": "o-1"})
        assert assert_problem(other, 409, "different input")["error"] == "IdempotencyError"
        same = client.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-1"})
        assert same.status_code == 200


def test_the_openapi_document_describes_every_route(server: Server) -> None:
    with server.client() as client:
        doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/workflows", "/runs", "/purge", "/runs/{id}", "/runs/{id}/signals/{name}",
        "/runs/{id}/queries/{name}", "/runs/{id}/updates/{name}", "/runs/{id}/updates/{name}/{update_id}",
        "/runs/{id}/cancel", "/runs/{id}/terminate", "/runs/{id}/history",
        "/runs/{id}/events", "/schedules", "/schedules/{id}", "/schedules/{id}/{action}",
        "/workflows/fails/runs", "/workflows/greet/runs", "/workflows/order/runs", "/workflows/ticker/runs",
    }
    assert set(doc["paths"]["/schedules/{id}"]) == {"get", "patch", "delete"}
    # Each workflow's start operation types its arguments.
    body = doc["paths"]["/workflows/order/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["args"]
    assert body["properties"]["args"]["prefixItems"] == [{
        "type": "object", "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
        "required": ["sku", "quantity"],
    }]
    ticker = doc["paths"]["/workflows/ticker/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert ticker["properties"]["args"]["minItems"] == 1
    assert ticker["properties"]["args"]["maxItems"] == 2
    assert "security" not in doc


def test_create_app_rejects_nonsense_settings(tmp_path: Any) -> None:
    engine = retold.Engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(retold.ConfigurationError, match="max_body_size"):
        retold.http.create_app(engine, max_body_size=0)
    with pytest.raises(retold.ConfigurationError, match="keepalive"):
        retold.http.create_app(engine, keepalive=0)
    for tokens in ([], [""], "secret"):
        with pytest.raises(retold.ConfigurationError, match="at least one token"):
            retold.http.create_app(engine, tokens=tokens)


def test_pickle_codec_engines_take_only_json_over_http(make_server: ServerFactory, tmp_path: Any) -> None:
    # Nothing a client sends is ever unpickled: the body is JSON, and a field
    # that looks like a pickled payload is an unknown field, not a payload.
    import base64
    import pickle

    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (marker.write_text, ("pwned",))

    evil = base64.b64encode(pickle.dumps(Evil())).decode()
    with make_server(codec=retold.PickleCodec()) as server, server.client() as client:
        refused = client.post("/workflows/greet/runs", json={"args_b64": evil})
        assert_problem(refused, 422, "unknown field 'args_b64'")
        started = client.post("/workflows/greet/runs", json={"args": [evil], "id": "p-1"})
        assert started.status_code == 201
        body = wait_for(client, "/runs/p-1", lambda b: b["status"] == "completed")
        assert "result" not in body  # pickled results are only in the history, base64-encoded
        history = client.get("/runs/p-1/history").json()
        assert "result_b64" in history["events"][-1]
        signal = client.post("/runs/p-1/signals/x", json={"value": evil})
        assert signal.status_code == 409
    assert not marker.exists()
