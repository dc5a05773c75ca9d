"""A run's history exports to the documented JSON form and loads back unchanged."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

import retold
from retold.history import events as ev

from .conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity
async def greet(name: str) -> dict[str, Any]:
    return {"greeting": f"hello {name}", "n": 1.5}


@retold.workflow
async def greeter(name: str) -> str:
    first = await retold.execute(greet, name)
    token = retold.side_effect(lambda: "tok-1")
    extra = await retold.wait_signal("extra", str, timeout=0.01)
    return f"{first['greeting']}:{token}:{extra}"


async def test_run_history_round_trips_through_json(make_engine: EngineFactory) -> None:
    async with make_engine([greeter], [greet]) as engine:
        run = await engine.start(greeter.with_options(id="g-1"), "ada")
        assert await run.result(timeout=10) == "hello ada:tok-1:None"
        history = await run.history()
    assert isinstance(history, retold.History)
    assert (history.workflow, history.workflow_id) == ("greeter", "g-1")
    assert history.run_id == run.run_id
    document = orjson.loads(history.to_json())
    assert document["format"] == "retold-history"
    assert document["version"] == 1
    first = document["events"][0]
    # JSON payloads are embedded as JSON, readable in a diff.
    assert first == {
        "seq": 1, "at": first["at"], "type": "WorkflowStarted", "workflow": "greeter", "workflow_id": "g-1",
        "input": ["ada"], "parent_run_id": None, "parent_seq": None, "continued_from": None,
    }
    completed = next(e for e in document["events"] if e["type"] == "ActivityCompleted")
    assert completed["result"] == {"greeting": "hello ada", "n": 1.5}
    loaded = retold.History.from_json(history.to_json(indent=True))
    assert loaded == history
    assert [e.describe() for e in loaded] == [e.describe() for e in history]


async def test_pickled_payloads_use_base64(make_engine: EngineFactory) -> None:
    async with make_engine([greeter], [greet], codec=retold.PickleCodec()) as engine:
        run = await engine.start(greeter, "bob")
        await run.result(timeout=10)
        history = await run.history()
    document = orjson.loads(history.to_json())
    started = document["events"][0]
    assert "input" not in started
    assert base64.b64decode(started["input_b64"]) == history[0].input  # type: ignore[attr-defined]
    assert retold.History.from_json(history.to_json()) == history


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "retold-history", "version": 1, "workflow": "w", "workflow_id": "id", "run_id": "r",
        "events": [
            {"seq": 1, "at": 1.0, "type": "WorkflowStarted", "workflow": "w", "workflow_id": "id", "input": []},
            {"seq": 2, "at": 2.0, "type": "WorkflowCompleted", "result": None},
        ],
    }
    doc.update(overrides)
    return doc


def test_a_hand_written_document_loads_with_defaults() -> None:
    history = retold.History.from_dict(_doc())
    assert len(history) == 2
    started = history[0]
    assert isinstance(started, ev.WorkflowStarted)
    assert started.input == b"[]"
    assert started.parent_run_id is None
    assert history[1] == ev.WorkflowCompleted(seq=2, at=2.0, result=b"null")
    assert history[1:] == [history[1]]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "not valid JSON"),
        (orjson.dumps({"events": []}), "not a retold history"),
        (orjson.dumps(_doc(version=99)), "version 99 is newer"),
        (orjson.dumps(_doc(events=[])), "non-empty list"),
        (orjson.dumps(_doc(events=[{"seq": 1, "at": 1, "type": "Nope"}])), "unknown event type 'Nope'"),
        (orjson.dumps(_doc(events=[{"seq": 1, "at": 1, "type": "WorkflowStarted"}])), "missing field 'workflow'"),
        (
            orjson.dumps(_doc(events=[
                {"seq": 1, "at": 1, "type": "WorkflowStarted", "workflow": "w", "workflow_id": "i", "input": 1},
                {"seq": 3, "at": 1, "type": "WorkflowCancelled"},
            ])),
            "expected seq 2, got 3",
        ),
        (orjson.dumps(_doc(events=[{"seq": 1, "at": 1, "type": "WorkflowCancelled"}])), "begins with WorkflowStarted"),
        (
            orjson.dumps(_doc(events=[
                {"seq": 1, "at": 1, "type": "WorkflowStarted", "workflow": "w", "workflow_id": "i", "input_b64": "!"},
            ])),
            "not base64",
        ),
    ],
)
def test_bad_documents_are_refused_with_the_reason(document: bytes, message: str) -> None:
    with pytest.raises(retold.HistoryFormatError, match=message):
        retold.History.from_json(document)
