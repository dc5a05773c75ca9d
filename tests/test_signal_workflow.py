"""Signalling another workflow from workflow code (``retold.signal_workflow``).

The command that shows the run state machine's point: it touched the events,
the instance, the authoring API and the state machine only.
"""

from __future__ import annotations

import pytest

import retold
from retold.history import events as ev
from retold.testing import replay
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.workflow
async def receiver() -> str:
    value = await retold.wait_signal("greeting", str)
    return f"got {value}"


@retold.workflow
async def sender(target: str) -> str:
    await retold.signal_workflow(target, "greeting", "hello")
    return "sent"


@retold.workflow
async def careful_sender(target: str) -> str:
    try:
        await retold.signal_workflow(target, "greeting", "hello")
    except retold.ApplicationError as exc:
        return str(exc)
    return "sent"


@retold.workflow
async def narcissist() -> str:
    try:
        await retold.signal_workflow(retold.info().workflow_id, "me", 1)
    except retold.RetoldError as exc:
        return str(exc)
    return "sent"


async def test_a_workflow_signals_another_and_its_await_returns_once_recorded(make_engine: EngineFactory) -> None:
    async with make_engine([receiver, sender]) as engine:
        target = await engine.start(receiver.with_options(id="receiver-1"))
        run = await engine.start(sender, "receiver-1")
        assert await run.result(timeout=20) == "sent"
        assert await target.result(timeout=20) == "got hello"
        history = await run.history()
        target_history = await target.history()
    types = [e.type for e in history]
    assert types == ["WorkflowStarted", "ExternalSignalRequested", "ExternalSignalResolved", "WorkflowCompleted"]
    resolved = history[2]
    assert isinstance(resolved, ev.ExternalSignalResolved)
    assert resolved.failure is None
    assert resolved.requested == 2
    assert [e.type for e in target_history].count("SignalReceived") == 1
    assert replay(sender, history).finished  # the sender's history replays as recorded
    assert replay(receiver, target_history).finished


async def test_a_signal_to_an_unknown_or_closed_workflow_raises_in_the_sender(make_engine: EngineFactory) -> None:
    async with make_engine([receiver, careful_sender, sender]) as engine:
        unknown = await engine.start(careful_sender, "nobody-here")
        assert await unknown.result(timeout=20) == (
            "retold.RunNotFoundError: no run found for workflow id 'nobody-here'")
        target = await engine.start(receiver.with_options(id="receiver-2"))
        await engine.signal("receiver-2", "greeting", "first")
        assert await target.result(timeout=20) == "got first"
        closed = await engine.start(careful_sender, "receiver-2")
        message = await closed.result(timeout=20)
        assert message.startswith("retold.RunFinishedError: run ")
        assert "is completed" in message
        # Nothing reached the closed run.
        assert [e.type for e in await target.history()].count("SignalReceived") == 1


async def test_a_workflow_cannot_signal_itself(make_engine: EngineFactory) -> None:
    async with make_engine([narcissist]) as engine:
        run = await engine.start(narcissist.with_options(id="me"))
        assert await run.result(timeout=20) == "workflow 'me' cannot signal itself: wait on its own state instead"


@retold.workflow
async def patient_sender(target: str) -> str:
    await retold.signal_workflow(target, "greeting", "hello")
    await retold.wait_signal("go")
    return "sent"


async def test_a_signal_sent_before_a_restart_is_not_sent_again(make_engine: EngineFactory) -> None:
    # A new engine on the same file replays the sender (its cache is empty):
    # the recorded command is matched, not sent a second time.
    async with make_engine([receiver, patient_sender]) as engine:
        run = await engine.start(patient_sender, "receiver-3")  # the target starts later: refused
        target = await engine.start(receiver.with_options(id="receiver-3"))
        second = await engine.start(patient_sender, "receiver-3")
        assert await target.result(timeout=20) == "got hello"
    first_id, second_id = run.run_id, second.run_id
    assert first_id is not None
    assert second_id is not None
    async with make_engine([receiver, patient_sender]) as engine:
        await engine.signal(second_id, "go", None)
        assert await engine.get_handle(second_id).result(timeout=20) == "sent"
        assert [e.type for e in await engine.get_handle("receiver-3").history()].count("SignalReceived") == 1
        first = await engine.get_handle(first_id).history()
    refused = [e for e in first if isinstance(e, ev.ExternalSignalResolved)]
    assert len(refused) == 1
    assert refused[0].failure is not None
