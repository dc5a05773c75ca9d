"""What the dashboard needs from the API: list filters, argument schemas, its page and files, served publicly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

import retold
from retold.authoring import args_schema
from tests import shop
from tests.http_api.conftest import Server, ServerFactory
from tests.http_api.test_api import assert_problem, wait_for


def ids(body: dict[str, list[dict[str, str]]]) -> list[str]:
    return [r["workflow_id"] for r in body["runs"]]


def test_runs_filter_by_id_prefix_of_the_workflow_id_or_run_id(server: Server) -> None:
    with server.client() as client:
        for ident in ("team/ada", "team/bob", "Team/cy", "te%m_x", "other"):
            assert client.post("/workflows/greet/runs", json={"args": ["x"], "id": ident}).status_code == 201
        wait_for(client, "/runs?status=completed", lambda b: len(b["runs"]) == 5)
        assert ids(client.get("/runs", params={"id_prefix": "team/"}).json()) == ["team/bob", "team/ada"]
        # Case-sensitive, and "%" or "_" are characters, not wildcards.
        assert ids(client.get("/runs", params={"id_prefix": "Team"}).json()) == ["Team/cy"]
        assert ids(client.get("/runs", params={"id_prefix": "te%"}).json()) == ["te%m_x"]
        assert ids(client.get("/runs", params={"id_prefix": "te_"}).json()) == []
        run_id = client.get("/runs/other").json()["run_id"]
        assert ids(client.get("/runs", params={"id_prefix": run_id[:12]}).json()) == ["other"]
        assert_problem(client.get("/runs", params={"id_prefix": ""}), 400, "id_prefix")


def test_runs_filter_by_start_time(server: Server) -> None:
    with server.client() as client:
        client.post("/workflows/greet/runs", json={"args": ["x"], "id": "early"})
        early = datetime.fromisoformat(client.get("/runs/early").json()["started_at"])
        client.post("/workflows/greet/runs", json={"args": ["x"], "id": "late"})
        late = datetime.fromisoformat(client.get("/runs/late").json()["started_at"])
        assert late > early
        assert ids(client.get("/runs", params={"started_after": late.isoformat()}).json()) == ["late"]
        assert ids(client.get("/runs", params={"started_before": late.isoformat()}).json()) == ["early"]
        window = {"started_after": (early - timedelta(hours=1)).isoformat(),
                  "started_before": (late + timedelta(hours=1)).astimezone(UTC).isoformat().replace("+00:00", "Z")}
        assert ids(client.get("/runs", params=window).json()) == ["late", "early"]
        assert_problem(client.get("/runs", params={"started_after": "yesterday"}), 400, "ISO 8601")
        assert_problem(client.get("/runs", params={"started_after": "2026-11-28T12:00:00"}), 400, "time zone")


@pytest.mark.anyio
async def test_list_runs_refuses_naive_datetimes() -> None:
    async with retold.Engine("memory://", workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES) as engine:
        with pytest.raises(ValueError, match="started_after must be an aware datetime"):
            await engine.list_runs(started_after=datetime(2026, 1, 1))  # naive on purpose
        assert await engine.list_runs(started_before=datetime.now(UTC)) == []


def test_workflows_give_the_json_schema_of_their_arguments(server: Server) -> None:
    with server.client() as client:
        described = {w["name"]: w for w in client.get("/workflows").json()["workflows"]}
    assert described["ticker"]["args_schema"] == args_schema(shop.ticker.fn) == {
        "type": "array", "minItems": 1, "maxItems": 2,
        "prefixItems": [{"type": "integer"}, {"type": "number"}],
    }
    order = described["order"]["args_schema"]["prefixItems"][0]
    assert order["properties"] == {"sku": {"type": "string"}, "quantity": {"type": "integer"}}


def test_the_dashboard_is_served_only_when_asked(make_server: ServerFactory) -> None:
    with make_server() as server, server.client() as client:
        assert client.get("/").status_code == 404
        assert client.get("/dashboard/app.js").status_code == 404


def test_the_dashboard_page_and_files_are_public_the_api_is_not(make_server: ServerFactory) -> None:
    with make_server(tokens=["s3cret"], dashboard=True) as server, server.client() as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # Mounted at /api: the page's relative URLs resolve under the mount point.
        assert '<base href="/api/">' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        scripts = re.findall(r'src="([^"]+)"', page.text)
        assert scripts == ["dashboard/app.js"]
        for name in ("app.js", "api.js", "runs.js", "run.js", "timeline.js", "workflows.js", "schema.js", "sse.js",
                     "dom.js", "style.css"):
            asset = client.get(f"/dashboard/{name}")
            assert asset.status_code == 200, name
            assert asset.headers["content-type"].split(";")[0] in ("text/javascript", "text/css")
            # Reloads are answered 304 while the file is the same.
            again = client.get(f"/dashboard/{name}", headers={"If-None-Match": asset.headers["etag"]})
            assert again.status_code == 304
        assert client.get("/dashboard/index.html").status_code == 404  # only the page route serves it
        assert client.get("/dashboard/nope.js").status_code == 404
        # No data without the token.
        assert client.get("/runs").status_code == 401
        assert client.get("/workflows").status_code == 401


def test_every_file_the_page_imports_is_served(make_server: ServerFactory) -> None:
    with make_server(dashboard=True) as server, server.client() as client:
        pending, seen = ["app.js"], set()
        while pending:
            name = pending.pop()
            seen.add(name)
            source = client.get(f"/dashboard/{name}")
            assert source.status_code == 200, name
            pending += [m for m in re.findall(r'from "\./([\w.]+)"', source.text) if m not in seen]
        assert {"api.js", "dom.js", "runs.js", "run.js", "sse.js", "timeline.js", "workflows.js", "schema.js"} <= seen
