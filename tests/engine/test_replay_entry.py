"""One replay entry point: an activation returns a completion and never raises."""

from __future__ import annotations

import retold
from retold.errors import NondeterminismError
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.runtime._replay import activate, replay


@retold.activity
async def step(n: int) -> int:
    return n


@retold.workflow
async def one_step() -> int:
    return await retold.execute(step, 1)


@retold.workflow
async def changed() -> int:
    await retold.sleep(5)  # the deploy that diverges: a timer where an activity was recorded
    return 0


def history() -> list[ev.Event]:
    return [
        ev.WorkflowStarted(seq=1, at=1.0, workflow="one_step", workflow_id="w", input=b"[]"),
        ev.ActivityScheduled(seq=2, at=1.0, activity="step", input=b"[1]", options={}),
        ev.ActivityCompleted(seq=3, at=2.0, scheduled=2, attempt=1, result=b"1"),
    ]


def test_a_replay_completes_with_the_next_commands() -> None:
    instance, completion = replay(one_step, "r", JsonCodec(), history())
    try:
        assert completion.ok
        assert [e.type for e in completion.unwrap()] == ["WorkflowCompleted"]
        assert completion.commands[0].seq == 4
    finally:
        instance.close()


def test_a_divergence_is_returned_not_raised() -> None:
    instance, completion = replay(changed, "r", JsonCodec(), history())
    try:
        assert not completion.ok
        assert isinstance(completion.error, NondeterminismError)
        assert "event 2" in str(completion.error)
        # Feeding it more still hands the failure back as a value.
        again = activate(instance, [ev.SignalReceived(seq=4, at=3.0, name="x", input=b"1")])
        assert isinstance(again.error, NondeterminismError)
    finally:
        instance.close()
