"""Recorded failures are typed (retold.Failure) and read, write back and replay exactly as before.

``fixtures/failures-v1.db`` was written by the version before the type
(``python -m tests.fixtures.make_failures_db``): every shape of failure it
recorded must read, re-encode to the same JSON and rebuild the same errors.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import retold
from retold.errors import ActivityError, ChildWorkflowError, exception_from_failure, failure_from_exception
from retold.history import events as ev
from retold.history.failure import BlockedTask, FailedActivity, Failure
from retold.testing import replay
from tests.fixtures import failure_workflows as fw

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "failures-v1.db"

# The order today's writers give the keys; objects in this order must come back byte for byte.
ORDER = ("type", "message", "details", "non_retryable", "activity", "child", "cause", "seq", "workflow_task")


def _rows(sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql))


def _canonical(data: dict[str, Any]) -> bool:
    keys = [k for k in data if k in ORDER]
    return keys == sorted(keys, key=ORDER.index) and all(
        _canonical(data["cause"]) for _ in [0] if isinstance(data.get("cause"), dict))


def test_the_fixture_holds_every_shape_of_failure() -> None:
    types = {t for (t,) in _rows("SELECT type FROM retold_events")}
    assert {"ActivityFailed", "ActivityTimedOut", "ChildWorkflowFailed", "WorkflowFailed",
            "ExternalSignalResolved"} <= types
    statuses = {s for (s,) in _rows("SELECT status FROM retold_runs")}
    assert {"failed", "cancelled", "terminated", "timed_out", "running"} <= statuses
    assert _rows("SELECT count(*) FROM retold_workflow_tasks WHERE failure IS NOT NULL") == [(1,)]


def test_every_recorded_event_decodes_and_encodes_back_to_the_same_json() -> None:
    rows = _rows("SELECT seq, at, type, meta, payload FROM retold_events ORDER BY run_id, seq")
    failures = 0
    for seq, at, type_name, meta, payload in rows:
        event = ev.decode_event(seq, at, type_name, meta, payload)
        name, again, _ = ev.encode_event(event)
        assert name == type_name
        recorded = orjson.loads(meta)
        assert orjson.loads(again) == recorded
        if isinstance(recorded.get("failure"), dict):
            failures += 1
            assert isinstance(event.failure, Failure)  # type: ignore[attr-defined]
            if _canonical(recorded["failure"]):
                assert again == meta  # byte for byte
    assert failures >= 10


def test_every_recorded_run_and_task_failure_reads_back_unchanged() -> None:
    for (data,) in _rows("SELECT failure FROM retold_runs WHERE failure IS NOT NULL"):
        failure = Failure.from_json(orjson.loads(data))
        assert orjson.dumps(failure.to_json()) == data
    [(data,)] = _rows("SELECT failure FROM retold_workflow_tasks WHERE failure IS NOT NULL")
    blocked = BlockedTask.from_json(orjson.loads(data))
    assert orjson.dumps(blocked.to_json()) == data
    assert (blocked.attempts, blocked.failure.type) == (1, "retold.errors.WorkflowSandboxError")
    assert blocked.fingerprint
    assert blocked.retry_at > blocked.since


@pytest.mark.anyio
async def test_runs_written_by_the_previous_version_replay_and_fail_as_before(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    async with retold.Client(f"sqlite:///{db}", workflows=fw.WORKFLOWS, poll_interval=0.05) as client:
        for workflow in (fw.charge_order, fw.wraps_failure, fw.parent_of_failure, fw.declined, fw.slow,
                         fw.signals_nobody):
            history = await client.get_handle(f"v1-{workflow.name}").history()
            replay(workflow, history)
        with pytest.raises(retold.WorkflowFailedError) as failed:
            await client.get_handle("v1-parent_of_failure").result(timeout=10)
        child = failed.value.cause
        assert isinstance(child, ChildWorkflowError)
        assert (child.workflow, child.workflow_id, child.status) == ("charge_order", "o-1-child", "failed")
        activity = child.cause
        assert isinstance(activity, ActivityError)
        assert (activity.activity, activity.seq) == ("always_fails", 2)
        assert isinstance(activity.cause, retold.ApplicationError)
        assert (activity.cause.type, activity.cause.message) == ("ValueError", "permanent trouble with o-1")
        with pytest.raises(retold.WorkflowFailedError) as failed:
            await client.get_handle("v1-slow").result(timeout=10)
        assert isinstance(failed.value.cause, ActivityError)
        assert failed.value.cause.timed_out
        with pytest.raises(retold.WorkflowFailedError, match=r"shop\.CardDeclined: card o-1 declined"):
            await client.get_handle("v1-declined").result(timeout=10)
        with pytest.raises(retold.WorkflowCancelledError):
            await client.get_handle("v1-cancelled").result(timeout=10)
        with pytest.raises(retold.WorkflowTerminatedError, match="was terminated: by hand"):
            await client.get_handle("v1-terminated").result(timeout=10)
        with pytest.raises(retold.WorkflowTimedOutError, match="timed out: its run timeout passed"):
            await client.get_handle("v1-timed-out").result(timeout=10)
        with pytest.raises(retold.WorkflowFailedError, match="workflow task failed 2 times"):
            await client.get_handle("v1-task-failed").result(timeout=10)
        last = (await client.get_handle("v1-task-failed").history())[-1]
        assert isinstance(last, ev.WorkflowFailed)
        assert last.failure.workflow_task
        assert last.failure["workflow_task"] is True  # read as the recorded JSON, as before
        resolved = [e for e in await client.get_handle("v1-signals_nobody").history()
                    if isinstance(e, ev.ExternalSignalResolved)]
        assert resolved[0].failure is not None
        assert resolved[0].failure.type == "retold.RunNotFoundError"
        blocked = (await client.get_handle("v1-blocked").describe()).blocked
        assert blocked is not None
        assert (blocked.type, blocked.attempts) == ("retold.errors.WorkflowSandboxError", 1)
        assert blocked.fingerprint


# -- every shape a failure's JSON takes, generated ------------------------------------------

_text = st.text(max_size=20)


def _shape(cause: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    # Built in order (the keys' order is part of the bytes).
    activity = st.builds(lambda n, s, t: {"name": n, "seq": s, "timed_out": t},
                         _text, st.integers(0, 10**9), st.booleans())
    child = st.builds(lambda w, i, s: {"workflow": w, "workflow_id": i, "status": s},
                      _text, _text, st.sampled_from(["failed", "cancelled", "terminated", "timed out"]))
    optional = {"activity": activity, "child": child, "cause": cause, "seq": st.integers(1, 10**9),
                "workflow_task": st.just(True)}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = {"type": draw(_text), "message": draw(_text), "details": draw(_text),
               "non_retryable": draw(st.booleans())}
        keys = draw(st.sets(st.sampled_from(sorted(optional))))
        if "activity" in keys and "child" in keys:
            keys.discard("child")
        for key in ORDER:
            if key in keys:
                out[key] = draw(optional[key])
        return out

    return build()


FAILURES = st.recursive(_shape(st.nothing()), _shape, max_leaves=4)


@given(FAILURES)
def test_a_failure_comes_back_as_the_same_json(data: dict[str, Any]) -> None:
    failure = Failure.from_json(data)
    assert orjson.dumps(failure.to_json()) == orjson.dumps(data)
    assert Failure.from_json(failure.to_json()) == failure


@given(FAILURES, st.integers(1, 1000), st.floats(0, 2e9), st.floats(0, 60), st.none() | _text)
def test_a_blocked_task_comes_back_as_the_same_json(
    data: dict[str, Any], attempts: int, since: float, backoff: float, fingerprint: str | None,
) -> None:
    data = {**data, "attempts": attempts, "since": since, "retry_at": since + backoff}
    if fingerprint is not None:
        data["fingerprint"] = fingerprint
    assert orjson.dumps(BlockedTask.from_json(data).to_json()) == orjson.dumps(data)


def test_keys_a_later_version_adds_are_kept() -> None:
    data = {"type": "E", "message": "m", "details": "", "non_retryable": False, "hint": {"retry": "never"}}
    failure = Failure.from_json(data)
    assert failure.extra == {"hint": {"retry": "never"}}
    assert failure.to_json() == data


def test_a_failure_reads_like_the_json_it_records() -> None:
    failure = Failure(type="E", message="m", activity=FailedActivity("charge", 2))
    assert (failure["type"], failure["message"], failure["non_retryable"]) == ("E", "m", False)
    assert failure["activity"] == {"name": "charge", "seq": 2, "timed_out": False}
    assert "cause" not in failure
    assert "activity" in failure
    assert failure.get("seq") is None
    assert failure.get("seq", 0) == 0
    with pytest.raises(KeyError):
        failure["cause"]


def test_errors_keep_their_module_in_recorded_type_names() -> None:
    # The errors live in private modules of the retold.errors package; histories name them as before.
    cause = retold.ApplicationError("declined", type="shop.CardDeclined")
    failure = failure_from_exception(ActivityError("charge", 2, cause=cause))
    assert failure.type == "retold.errors.ActivityError"
    assert failure.activity == FailedActivity("charge", 2, False)
    assert failure.cause is not None
    assert failure.cause.type == "shop.CardDeclined"
    assert failure_from_exception(retold.NondeterminismError("w", "r", 3, "a", "b")).type == (
        "retold.errors.NondeterminismError")
    rebuilt = exception_from_failure(failure)
    assert isinstance(rebuilt, ActivityError)
    assert str(rebuilt) == str(ActivityError("charge", 2, cause=cause))
