"""The HTTP app served by a ``retold.Client``: a web process that hosts nothing, workers elsewhere."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

import retold
import retold.http
from tests import shop
from tests.http_api.conftest import serve


def wait_closed(http: httpx.Client, ident: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, object] = http.get(f"/runs/{ident}").json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, f"run {ident} did not finish: {body}"
        time.sleep(0.02)


def test_a_client_app_starts_runs_that_an_engine_elsewhere_runs(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    url = f"sqlite:///{db}"
    web = retold.Client(url, workflows=shop.WORKFLOWS, poll_interval=0.05)
    worker = retold.Engine(url, workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES, poll_interval=0.05)
    # Two servers, two event loops: the worker's is only there to host its engine.
    with serve(worker, db), serve(web, db) as server, server.client() as http:
        registry = http.get("/workflows").json()
        workflows = {w["name"]: w for w in registry["workflows"]}
        assert workflows["greet"]["activities"] == ["email"]  # what its code calls, as the engine's app says
        assert {a["name"] for a in registry["activities"]} == {"email", "reserve"}

        started = http.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-1"})
        assert started.status_code == 201, started.text
        assert wait_closed(http, "g-1")["result"] == "hello, ada"

        started = http.post("/workflows/order/runs", json={"args": [{"sku": "tea", "quantity": 1}], "id": "o-1"})
        assert started.status_code == 201, started.text
        deadline = time.monotonic() + 30
        while http.get("/runs/o-1/queries/status").json() != {"result": "waiting"}:  # replayed by the web app
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert http.post("/runs/o-1/signals/approve", json={"value": True}).status_code == 202
        assert wait_closed(http, "o-1")["result"] == "reserved 1 x tea"


def test_create_app_refuses_what_is_neither_a_client_nor_an_engine() -> None:
    with pytest.raises(retold.ConfigurationError, match=r"create_app takes a retold\.Client or retold\.Engine"):
        retold.http.create_app("sqlite:///retold.db")  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres", "nats"])
def any_shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL a worker process and this test's server can open at once."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_server_hosting_nothing_lists_what_a_worker_process_hosts_and_starts_none_of_it(
    any_shared_url: str, tmp_path: Path,
) -> None:
    """The workers' registrations describe their workflows: a client that knows none lists them, starts none."""
    from tests.scaleout._procs import Worker

    web = retold.Client(any_shared_url, poll_interval=0.05)  # no workflows: it knows nothing by itself
    worker = Worker("tests.shop", any_shared_url, tmp_path)
    try:
        worker.wait_ready()
        with serve(web, tmp_path / "unused.db") as server, server.client() as http:
            registry = http.get("/workflows").json()
            workflows = {w["name"]: w for w in registry["workflows"]}
            assert set(workflows) == {wf.name for wf in shop.WORKFLOWS}
            assert workflows["greet"]["activities"] == ["email"]
            assert workflows["greet"]["hosted_by"] == 1
            assert workflows["greet"]["startable"] is False  # no code here to check a start's arguments
            assert workflows["greet"]["args_schema"]["prefixItems"][0] == {"type": "string"}
            assert {a["name"] for a in registry["activities"]} == {"email", "reserve"}

            refused = http.post("/workflows/greet/runs", json={"args": ["ada"], "id": "g-remote"})
            assert refused.status_code == 404, refused.text
            assert "hosted by live engines" in refused.json()["detail"]
            assert http.get("/runs", params={"workflow": "greet"}).json()["runs"] == []  # nothing written
            unknown = http.post("/workflows/nobody-hosts-this/runs", json={"args": []})
            assert unknown.status_code == 404, unknown.text
    finally:
        worker.kill()
