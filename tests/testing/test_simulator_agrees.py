"""The property runner's simulated world and the real engine record the same histories.

Each scenario runs through ``check_scenario`` (the simulator behind
``assert_deterministic``) and through a real engine on ``memory://``, and the
two histories are compared event by event. What only the clock, the ids or a
traceback's file paths make different is left out of the comparison.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import timedelta
from typing import Any, cast

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.testing import Scenario, assert_deterministic, check_scenario

pytestmark = pytest.mark.anyio

FAST_RETRY = retold.RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=10))


@retold.activity(retry=FAST_RETRY)
async def double(n: int) -> int:
    return 2 * n


@retold.activity(retry=FAST_RETRY)
def flaky(n: int) -> int:
    """Fails its first two attempts, then succeeds."""
    if retold.activity_info().attempt < 3:
        raise ValueError(f"attempt {retold.activity_info().attempt} failed")
    return n + 1


@retold.activity(retry=FAST_RETRY)
async def always_fails(n: int) -> int:
    raise ValueError(f"permanent trouble with {n}")


@retold.activity(retry=FAST_RETRY)
async def refuses(n: int) -> int:
    raise retold.ApplicationError(f"{n} is not allowed", type="Refused", non_retryable=True)


@retold.workflow
async def doubles(n: int) -> int:
    return await retold.execute(double, n)


@retold.activity  # the default retry policy: retries without end
async def triple(n: int) -> int:
    return 3 * n


@retold.workflow
async def passes_a_bad_input() -> str:
    """An activity input that cannot be converted to its parameter type: one attempt, failed for good."""
    try:
        await retold.execute(triple, cast(int, "seven"))
    except retold.ActivityError as error:
        return f"failed: {error}"
    return "converted"


@retold.workflow
async def fails_on_bad_input() -> int:
    return await retold.execute(double, cast(int, {"n": 7}))


@retold.workflow
async def retries(n: int) -> int:
    return await retold.execute(flaky, n)


@retold.workflow
async def exhausts_retries(n: int) -> str:
    try:
        await retold.execute(always_fails, n)
    except retold.ActivityError:
        return "gave up"
    return "succeeded"


@retold.workflow
async def refused(n: int) -> int:
    return await retold.execute(refuses, n)


@retold.workflow
async def sleeps_then_waits(n: int) -> int:
    await retold.sleep(0.05)
    value = await retold.wait_signal("go", int)
    assert value is not None  # no timeout: it waits until the signal comes
    first = await retold.execute(double, value + n)
    await retold.sleep(0.02)
    return await retold.execute(flaky, first)


WORKFLOWS: list[retold.Workflow[..., Any]] = [
    doubles, passes_a_bad_input, fails_on_bad_input, retries, exhausts_retries, refused, sleeps_then_waits,
]
ACTIVITIES: list[retold.Activity[..., Any]] = [double, triple, flaky, always_fails, refuses]

SCENARIOS: dict[str, tuple[retold.Workflow[..., Any], Scenario]] = {
    "completes": (doubles, Scenario(args=(21,))),
    "bad-input-caught": (passes_a_bad_input, Scenario()),
    "bad-input-fails-the-run": (fails_on_bad_input, Scenario()),
    "retried-then-completes": (retries, Scenario(args=(1,))),
    "retries-exhausted": (exhausts_retries, Scenario(args=(5,))),
    "non-retryable-error": (refused, Scenario(args=(5,))),
    "timers-and-a-signal": (sleeps_then_waits, Scenario(args=(1,), signals=(("go", 4),))),
}


def comparable(history: list[ev.Event]) -> list[tuple[str, dict[str, Any]]]:
    """Each event's type and fields, without its time, the run's id or tracebacks."""
    result = []
    for event in history:
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name not in ("at",)}
        if isinstance(event, ev.WorkflowStarted):
            fields.pop("workflow_id")
        if isinstance(fields.get("failure"), dict):
            fields["failure"] = without_details(fields["failure"])
        result.append((event.type, fields))
    return result


def without_details(failure: dict[str, Any]) -> dict[str, Any]:
    """A failure without its tracebacks, its causes' included."""
    return {k: without_details(v) if k == "cause" else v for k, v in failure.items() if k != "details"}


async def run_on_engine(workflow: retold.Workflow[..., Any], scenario: Scenario,
                        signal_after: list[int]) -> list[ev.Event]:
    """Run the scenario on a real engine; send signal i once the history has ``signal_after[i]`` events."""
    async with retold.Engine("memory://", workflows=WORKFLOWS, activities=ACTIVITIES, poll_interval=0.05) as engine:
        run = await engine.start(workflow, *scenario.args)
        pending = list(zip(signal_after, scenario.signals, strict=True))
        with anyio.fail_after(120):
            if pending:
                async with run.watch() as stream:
                    async for event in stream:
                        while pending and event.seq == pending[0][0]:
                            name, value = pending.pop(0)[1]
                            await run.signal(name, value)
            with contextlib.suppress(retold.WorkflowFailedError):  # some scenarios end in a failed run
                await run.result()
        return list(await run.history())


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_simulator_and_engine_record_the_same_history(name: str) -> None:
    workflow, scenario = SCENARIOS[name]
    simulated = list(check_scenario(workflow, scenario, activities=ACTIVITIES))
    # The simulator delivers each signal when nothing else can arrive: after the event before it.
    signal_after = [e.seq - 1 for e in simulated if isinstance(e, ev.SignalReceived)]
    real = await run_on_engine(workflow, scenario, signal_after)
    assert isinstance(simulated[-1], ev.TERMINAL_TYPES), simulated[-1]
    sim, eng = comparable(simulated), comparable(real)
    for i, (a, b) in enumerate(zip(sim, eng, strict=False), start=1):
        assert a == b, f"event {i} differs:\n  simulator: {a}\n  engine:    {b}"
    assert len(sim) == len(eng), f"simulator recorded {len(sim)} events, the engine {len(eng)}"


def test_a_bad_activity_input_fails_once_and_for_good_in_the_property_runner() -> None:
    history = check_scenario(passes_a_bad_input, Scenario(), activities=ACTIVITIES)
    failed = [e for e in history if isinstance(e, ev.ActivityFailed)]
    assert len(failed) == 1
    assert failed[0].attempt == 1
    assert failed[0].failure["non_retryable"] is True
    assert failed[0].failure["type"] == "retold.errors.PayloadError"
    assert isinstance(history[-1], ev.WorkflowCompleted)
    # The whole property run agrees: no scenario "waits forever" retrying it.
    assert_deterministic(passes_a_bad_input, activities=ACTIVITIES, max_examples=20, cross_process=False)
