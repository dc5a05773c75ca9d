"""Schedules over HTTP: create, list, describe, pause, resume, trigger, delete; bad input as problem details."""

from __future__ import annotations

import time

from tests.http_api.conftest import Server


def test_a_schedule_through_its_routes(server: Server) -> None:
    with server.client() as http:
        created = http.post("/schedules", json={"id": "nightly", "workflow": "greet", "args": ["ann"],
                                                "cron": "0 2 * * *", "timezone": "Europe/Paris", "paused": True})
        assert created.status_code == 201, created.text
        assert created.headers["location"].endswith("/schedules/nightly")
        body = created.json()
        assert (body["cron"], body["timezone"], body["paused"], body["overlap"]) == (
            "0 2 * * *", "Europe/Paris", True, "skip")
        again = http.post("/schedules", json={"id": "nightly", "workflow": "greet", "args": ["bob"], "every": 5})
        assert again.status_code == 409
        assert "exists already" in again.json()["detail"]
        described = http.get("/schedules/nightly", params={"next": 4}).json()
        assert len(described["next_fires"]) == 4
        assert all("T02:00:00" in fire for fire in described["next_fires"])
        assert [s["id"] for s in http.get("/schedules").json()["schedules"]] == ["nightly"]
        triggered = http.post("/schedules/nightly/trigger")
        assert triggered.status_code == 202
        workflow_id = triggered.json()["workflow_id"]
        assert workflow_id.startswith("nightly@")
        deadline = time.monotonic() + 30
        while http.get(f"/runs/{workflow_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the triggered run did not finish"
            time.sleep(0.05)
        assert http.post("/schedules/nightly/resume").json()["paused"] is False
        assert http.post("/schedules/nightly/pause").json()["paused"] is True
        assert http.delete("/schedules/nightly").status_code == 204
        missing = http.get("/schedules/nightly")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["detail"] == "no schedule with id 'nightly'"


def test_bad_schedules_are_problem_details_and_write_nothing(server: Server) -> None:
    with server.client() as http:
        for body, status, detail in [
            ({"id": "s", "workflow": "greet", "args": ["a"], "cron": "61 * * * *"}, 422,
             "cron expression '61 * * * *' is not valid"),
            ({"id": "s", "workflow": "greet", "args": ["a"], "cron": "0 2 * * *", "timezone": "Mars/Base"}, 422,
             "time zone 'Mars/Base' is not a known IANA time zone"),
            ({"id": "s", "workflow": "greet", "args": ["a"]}, 422, "needs exactly one of cron= and every="),
            ({"id": "s", "workflow": "greet", "args": [1], "every": 5}, 422, "name"),
            ({"id": "s", "workflow": "nope", "every": 5}, 404, "nope"),
            ({"workflow": "greet", "every": 5}, 422, "field 'id' is required"),
        ]:
            answer = http.post("/schedules", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert detail in answer.json()["detail"], answer.json()
        assert http.get("/schedules").json() == {"schedules": []}


def test_a_schedule_is_changed_in_place_with_patch(server: Server) -> None:
    with server.client() as http:
        created = http.post("/schedules", json={"id": "edit", "workflow": "greet", "args": ["ann"], "every": 3600,
                                               "paused": True})
        assert created.status_code == 201, created.text
        triggered = http.post("/schedules/edit/trigger").json()["workflow_id"]
        changed = http.patch("/schedules/edit", json={"cron": "0 3 * * *", "timezone": "Europe/Paris",
                                                      "args": ["bob"], "overlap": "allow_all", "jitter": 2})
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert (body["id"], body["cron"], body["every"], body["timezone"], body["overlap"], body["jitter"]) == (
            "edit", "0 3 * * *", None, "Europe/Paris", "allow_all", 2.0)
        assert (body["fires"], body["last_workflow_id"], body["paused"]) == (1, triggered, True)
        assert all("T03:00:00" in fire for fire in body["next_fires"])
        second = http.post("/schedules/edit/trigger").json()["workflow_id"]  # runs with the new arguments
        deadline = time.monotonic() + 30
        while (run := http.get(f"/runs/{second}").json())["status"] != "completed":
            assert time.monotonic() < deadline, "the triggered run did not finish"
            time.sleep(0.05)
        assert run["result"] == http.get(f"/runs/{triggered}").json()["result"].replace("ann", "bob")
        back = http.patch("/schedules/edit", json={"every": 60, "jitter": None, "paused": False}).json()
        assert (back["cron"], back["every"], back["jitter"], back["paused"]) == (None, 60.0, None, False)
        for patch, status, detail in [
            ({"cron": "61 * * * *"}, 422, "cron expression '61 * * * *' is not valid"),
            ({"every": None}, 422, "needs exactly one of cron= and every="),
            ({"colour": "red"}, 422, "unknown field 'colour'"),
            ({}, 422, "names no field"),
            ({"args": [1]}, 422, "name"),
            ({"workflow": "nope"}, 404, "nope"),
        ]:
            answer = http.patch("/schedules/edit", json=patch)
            assert answer.status_code == status, (patch, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert detail in answer.json()["detail"], answer.json()
        assert http.get("/schedules/edit").json()["every"] == 60.0  # unchanged by the refused ones
        assert http.patch("/schedules/gone", json={"paused": True}).status_code == 404
