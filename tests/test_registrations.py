"""Each engine's registration describes what it hosts, for processes that host nothing."""

from __future__ import annotations

import pytest

import retold
from retold.stores import Hosting
from tests import shop

pytestmark = pytest.mark.anyio


def test_a_registration_written_before_descriptions_reads_as_describing_nothing() -> None:
    old = b'{"workflows":["greet"],"queues":["default"],"activities":["email"]}'
    hosting = Hosting.from_json(old)
    assert hosting.workflows == ("greet",)
    assert hosting.definitions == {}
    assert Hosting.from_json(hosting.to_json()) == hosting
    assert b"definitions" not in hosting.to_json()  # nothing added to a registration that describes nothing


def test_descriptions_round_trip_through_the_stored_json() -> None:
    described = {"workflows": [{"name": "greet", "parameters": [], "returns": "str"}], "activities": []}
    hosting = Hosting(("greet",), (), (), definitions=described)
    assert Hosting.from_json(hosting.to_json()).definitions == described


async def test_an_engine_records_its_workflows_description_in_its_registration() -> None:
    async with retold.Engine("memory://", workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES) as engine:
        (worker,) = await engine.store.live_workers()
        described = {w["name"]: w for w in worker.hosting.definitions["workflows"]}
        assert set(described) == {wf.name for wf in shop.WORKFLOWS}
        assert described["greet"]["activities"] == ["email"]
        assert {a["name"] for a in worker.hosting.definitions["activities"]} == {"email", "reserve"}
