"""Finding runs over HTTP: search attributes and memos at start, attr.NAME filters, cursor pages, bad filters."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.http_api.conftest import Server
from tests.http_api.test_api import assert_problem


def test_start_with_attributes_and_memo_then_find_the_run_by_them(server: Server) -> None:
    with server.client() as client:
        started = client.post("/workflows/greet/runs", json={
            "args": ["ada"], "id": "g-ada", "memo": {"note": "vip", "tags": ["a"]},
            "search_attributes": {"customer": "acme", "priority": 3, "ratio": 0.5, "vip": True,
                                  "due": "datetime:2026-03-01T09:30:00Z", "code": "str:int:7"}})
        assert started.status_code == 201, started.text
        client.post("/workflows/greet/runs", json={"args": ["bob"], "id": "g-bob",
                                                   "search_attributes": {"customer": "bob", "priority": "int:4"}})
        run = client.get("/runs/g-ada").json()
        assert run["search_attributes"] == {"code": "int:7", "customer": "acme", "due": "2026-03-01T09:30:00+00:00",
                                            "priority": 3, "ratio": 0.5, "vip": True}
        assert run["memo"] == {"note": "vip", "tags": ["a"]}

        def found(**params: str) -> list[str]:
            response = client.get("/runs", params=params)
            assert response.status_code == 200, response.text
            return [r["workflow_id"] for r in response.json()["runs"]]

        assert found(**{"attr.customer": "acme"}) == ["g-ada"]
        assert found(**{"attr.priority": "int:3"}) == ["g-ada"]
        assert found(**{"attr.priority": "3"}) == []  # the text "3" is not the int 3
        assert found(**{"attr.priority": "int:4", "attr.customer": "bob"}) == ["g-bob"]
        assert found(**{"attr.vip": "bool:true", "attr.ratio": "float:0.5"}) == ["g-ada"]
        assert found(**{"attr.due": "datetime:2026-03-01T10:30:00+01:00"}) == ["g-ada"]  # the same instant
        assert found(**{"attr.code": "str:int:7"}) == ["g-ada"]
        assert found(closed_before="2000-01-01T00:00:00Z") == []
        assert set(found(closed_after="2000-01-01T00:00:00Z")) <= {"g-ada", "g-bob"}


def test_bad_filters_and_attributes_are_problems_and_write_nothing(server: Server) -> None:
    with server.client() as client:
        assert_problem(client.get("/runs", params={"attr.bad name": "x"}), 400, "'bad name' is not valid")
        assert_problem(client.get("/runs", params={"attr.n": "int:seven"}), 400, "is not a int")
        assert_problem(client.get("/runs", params={"attr.d": "datetime:2026-01-01T00:00:00"}), 400,
                       "needs a time zone")
        assert_problem(client.get("/runs", params={"cursor": "nonsense"}), 400, "is not a cursor")
        assert_problem(client.get("/runs", params={"closed_after": "yesterday"}), 400, "closed_after must be")
        for attributes, detail in (({"bad name": 1}, "is not valid"), ({"x": [1]}, "must be a string, a number"),
                                   ({"x": "int:x"}, "is not a int")):
            response = client.post("/workflows/greet/runs", json={"args": ["x"], "id": "never",
                                                                  "search_attributes": attributes})
            assert_problem(response, 422, detail)
        assert_problem(client.post("/workflows/greet/runs", json={"args": ["x"], "search_attributes": "acme"}),
                       422, "search_attributes")
        assert client.get("/runs").json()["runs"] == []


def test_cursor_pages_follow_the_link_with_starts_between_pages(server: Server) -> None:
    with server.client() as client:
        for i in range(5):
            client.post("/workflows/greet/runs", json={"args": [f"n{i}"], "id": f"g-{i}",
                                                       "search_attributes": {"batch": "b"}})
        everything = [r["workflow_id"] for r in client.get("/runs", params={"attr.batch": "b"}).json()["runs"]]
        page = client.get("/runs", params={"attr.batch": "b", "limit": 2})
        body = page.json()
        seen = [r["workflow_id"] for r in body["runs"]]
        links = 0
        while body["next"]:
            assert page.headers["link"] == f'<{body["next"]}>; rel="next"'
            assert parse_qs(urlsplit(body["next"]).query)["cursor"] == [body["next_cursor"]]
            client.post("/workflows/greet/runs", json={"args": ["late"], "id": f"late-{links}",
                                                       "search_attributes": {"batch": "b"}})
            page = client.get(body["next"])
            body = page.json()
            seen += [r["workflow_id"] for r in body["runs"]]
            links += 1
        assert seen == everything
        assert links == 2
        assert "link" not in page.headers
