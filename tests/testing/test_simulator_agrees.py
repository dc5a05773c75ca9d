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
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import retold
from retold.history import events as ev
from retold.history.failure import Failure
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
]  # and plays, below
ACTIVITIES: list[retold.Activity[..., Any]] = [double, triple, flaky, always_fails, refuses]

SCENARIOS: dict[str, tuple[retold.Workflow[..., Any], Scenario]] = {
    "completes": (doubles, Scenario(args=(21,))),
    "bad-input-caught": (passes_a_bad_input, Scenario()),
    "bad-input-fails-the-run": (fails_on_bad_input, Scenario()),
    "retried-then-completes": (retries, Scenario(args=(1,))),
    "retries-exhausted": (exhausts_retries, Scenario(args=(5,))),
    "non-retryable-error": (refused, Scenario(args=(5,))),
    "timers-and-a-signal": (sleeps_then_waits, Scenario(args=(1,), signals=(("go", 4),))),
    "signal-with-start": (sleeps_then_waits, Scenario(args=(1,), signals=(("go", 4),), signal_with_start=True)),
}


def comparable(history: list[ev.Event]) -> list[tuple[str, dict[str, Any]]]:
    """Each event's type and fields, without its time, the run's id or tracebacks."""
    result = []
    for event in history:
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name not in ("at",)}
        if isinstance(event, ev.WorkflowStarted):
            fields.pop("workflow_id")
        if isinstance(fields.get("failure"), Failure):
            fields["failure"] = without_details(fields["failure"])
        result.append((event.type, fields))
    return result


def without_details(failure: Failure) -> Failure:
    """A failure without its tracebacks, its causes' included."""
    cause = None if failure.cause is None else without_details(failure.cause)
    return dataclasses.replace(failure, details="", cause=cause)


async def run_on_engine(workflow: retold.Workflow[..., Any], scenario: Scenario,
                        signal_after: list[int]) -> list[ev.Event]:
    """Run the scenario on a real engine; send signal i once the history has ``signal_after[i]`` events."""
    async with retold.Engine("memory://", workflows=[*WORKFLOWS, plays], activities=ACTIVITIES,
                             poll_interval=0.05) as engine:
        pending = list(zip(signal_after, scenario.signals, strict=True))
        if scenario.signal_with_start:
            name, value = pending.pop(0)[1]
            run = await engine.signal_with_start(workflow.with_options(id="sws"), name, value, *scenario.args)
        else:
            run = await engine.start(workflow, *scenario.args)
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


# -- the same, over scenarios hypothesis makes up ---------------------------------------------------

@retold.workflow
async def plays(ops: list[str], n: int) -> int:
    """Do ``ops`` in order: activities, a retried one, one that gives up, timers, a signal, a child."""
    for op in ops:
        if op == "double":
            n = await retold.execute(double, n)
        elif op == "flaky":
            n = await retold.execute(flaky, n)
        elif op == "gives-up":
            try:
                await retold.execute(always_fails, n)
            except retold.ActivityError:
                n += 1
        elif op == "sleep":
            await retold.sleep(0.01)
        elif op == "wait":
            value = await retold.wait_signal("go", int)
            n += value or 0
        elif op == "child":
            n = await retold.execute_child(doubles, n)
    return n


OPS = ["double", "flaky", "gives-up", "sleep", "wait", "child"]


def without_ids(history: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """``comparable`` output without the ids a run derives from its own run id (children's)."""
    return [(kind, {k: v for k, v in fields.items() if not (kind == "ChildWorkflowStarted" and k.endswith("_id"))})
            for kind, fields in history]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.sampled_from(OPS), max_size=5), n=st.integers(-50, 50),
       values=st.lists(st.integers(-9, 9), min_size=5, max_size=5))
# A child's activity at the parent's seq, attempt and input once took the parent's cached outcome.
@example(ops=["flaky", "double", "wait", "child"], n=0, values=[-2, 0, 0, 0, 0])
def test_simulator_and_engine_agree_on_generated_scenarios(ops: list[str], n: int, values: list[int]) -> None:
    signals = tuple(("go", v) for v in values[:ops.count("wait")])
    scenario = Scenario(args=(ops, n), signals=signals)
    simulated = list(check_scenario(plays, scenario, activities=ACTIVITIES, cross_process=None))
    signal_after = [e.seq - 1 for e in simulated if isinstance(e, ev.SignalReceived)]

    async def on_engine() -> list[ev.Event]:
        return await run_on_engine(plays, scenario, signal_after)

    real = anyio.run(on_engine)
    sim, eng = without_ids(comparable(simulated)), without_ids(comparable(real))
    for i, (a, b) in enumerate(zip(sim, eng, strict=False), start=1):
        assert a == b, f"event {i} differs:\n  simulator: {a}\n  engine:    {b}"
    assert len(sim) == len(eng), f"simulator recorded {len(sim)} events, the engine {len(eng)}"
