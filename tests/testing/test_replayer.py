"""retold.testing.replay / Replayer: stored histories against changed code."""

from __future__ import annotations

import datetime
import logging
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import retold
from retold.history import events as ev
from retold.testing import Replayer, ReplayFailedError, history_files, replay
from tests.conftest import EngineFactory
from tests.test_replay import pipeline_patched as pipeline_added_patched
from tests.test_replay import pipeline_swapped, pipeline_v1, step
from tests.test_replay import pipeline_unpatched_addition as pipeline_added_unpatched


@pytest.fixture
async def recorded(make_engine: EngineFactory, tmp_path: Path) -> Path:
    """A finished run of pipeline_v1, exported to a JSON file."""
    async with make_engine([pipeline_v1], [step]) as engine:
        run = await engine.start(pipeline_v1.with_options(id="p-1"))
        await run.result(timeout=10)
        history = await run.history()
    folder = tmp_path / "histories"
    folder.mkdir()
    path = folder / "p-1.json"
    path.write_bytes(history.to_json(indent=True))
    return path


@pytest.mark.anyio
async def test_same_code_replays_from_the_file(recorded: Path) -> None:
    result = replay(pipeline_v1, recorded)
    assert result.finished
    assert result.events == 6
    assert result.next_commands == ()


@pytest.mark.anyio
async def test_a_deploy_that_swaps_two_activities_is_caught(recorded: Path) -> None:
    with pytest.raises(retold.NondeterminismError) as caught:
        replay(pipeline_swapped, recorded)
    assert caught.value.seq == 2
    assert "recorded ActivityScheduled(activity='step', input='[\"a\"]')" in str(caught.value)
    assert "requested ActivityScheduled(activity='step', input='[\"b\"]')" in str(caught.value)


@pytest.mark.anyio
async def test_adding_an_activity_needs_patched(recorded: Path) -> None:
    with pytest.raises(retold.NondeterminismError, match="event 4"):
        replay(pipeline_added_unpatched, recorded)
    assert replay(pipeline_added_patched, recorded).finished


@pytest.mark.anyio
async def test_replayer_checks_a_folder_and_lists_every_failure(recorded: Path) -> None:
    folder = recorded.parent
    good = Replayer([pipeline_v1]).check_folder(folder)
    assert [r.run_id for r in good] == [retold.History.from_json(recorded.read_bytes()).run_id]
    (folder / "broken.json").write_text('{"format": "retold-history"}')
    with pytest.raises(ReplayFailedError) as caught:
        Replayer([pipeline_swapped]).check_folder(folder)
    message = str(caught.value)
    assert message.startswith("2 of 2 histories do not replay")
    assert "broken.json: " in message
    assert "p-1.json: workflow 'pipeline'" in message
    assert history_files(folder) == [folder / "broken.json", recorded]


def test_unknown_workflow_and_missing_folder(tmp_path: Path) -> None:
    started = ev.WorkflowStarted(seq=1, at=0.0, workflow="other", workflow_id="w", input=b"[]")
    with pytest.raises(retold.NotRegisteredError, match="'other' is not registered with this Replayer"):
        Replayer([pipeline_v1]).replay([started])
    with pytest.raises(retold.HistoryFormatError, match="does not exist"):
        history_files(tmp_path / "nope")
    with pytest.raises(retold.HistoryFormatError, match="no history files"):
        Replayer([pipeline_v1]).check_folder(tmp_path)


def test_a_history_that_stops_mid_run_gives_the_next_commands() -> None:
    started = ev.WorkflowStarted(seq=1, at=0.0, workflow="pipeline", workflow_id="w", input=b"[]")
    result = replay(pipeline_v1, [started])
    assert not result.finished
    assert [c.describe() for c in result.next_commands] == ["ActivityScheduled(activity='step', input='[\"a\"]')"]


# -- strict replay: wall clock and unseeded randomness ---------------------------------


@retold.workflow
async def reads_the_clock() -> str:
    if time.time() > 0:
        return await retold.execute(step, "late")
    return "early"


@retold.workflow
async def reads_datetime() -> str:
    return await retold.execute(step, datetime.datetime.now().isoformat())


@retold.workflow
async def uses_random() -> str:
    return await retold.execute(step, str(random.randint(1, 6)))


@retold.workflow
async def uses_uuid4() -> str:
    return await retold.execute(step, str(uuid.uuid4()))


@retold.workflow
async def logs_and_uses_retold_apis() -> str:
    logging.getLogger("tests.replayer").info("logging reads the clock itself: allowed")
    return await retold.execute(step, f"{retold.now().year}-{retold.random():.3f}-{retold.uuid4()}")


def only_started(workflow: retold.Workflow[..., Any]) -> list[ev.Event]:
    return [ev.WorkflowStarted(seq=1, at=0.0, workflow=workflow.name, workflow_id="w", input=b"[]")]


@pytest.mark.parametrize(
    ("workflow", "call", "hint"),
    [
        (reads_the_clock, "time.time()", "retold.now()"),
        (reads_datetime, "datetime.now()", "retold.now()"),
        (uses_random, "random.randint()", "retold.random()"),
        (uses_uuid4, "uuid.uuid4()", "retold.uuid4()"),
    ],
)
def test_strict_replay_names_the_nondeterministic_call(
    workflow: retold.Workflow[..., Any], call: str, hint: str
) -> None:
    with pytest.raises(retold.WorkflowSandboxError) as caught:
        replay(workflow, only_started(workflow))
    message = str(caught.value)
    assert call in message
    assert hint in message
    assert "test_replayer.py:" in message  # where the workflow made the call
    # Non-strict replay does not look.
    assert not replay(workflow, only_started(workflow), strict=False).finished


def test_strict_replay_allows_libraries_and_retold_apis() -> None:
    assert len(replay(logs_and_uses_retold_apis, only_started(logs_and_uses_retold_apis)).next_commands) == 1
