"""Proof that retold.testing catches real nondeterminism bugs, and only those.

Each buggy workflow below is a mistake users make. ``assert_deterministic``
(or the replayer, for code changed by a deploy) must report it with a
message that names the problem; every example in examples/ must pass.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

import retold
from retold.testing import NondeterminismFound, Scenario, Step, assert_deterministic, check_scenario, replay

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))  # importable by name, also in the replay process

import onboarding  # noqa: E402
import parallel  # noqa: E402
import saga  # noqa: E402


@retold.activity
async def notify(channel: str, user: str) -> str:
    return f"{channel}:{user}"


@retold.activity
def record(decision: str) -> str:
    return decision


# (a) the wall clock


@retold.workflow
async def office_hours_by_clock(user: str) -> str:
    if time.time() % 86400 < 12 * 3600:
        return await retold.execute(notify, "morning", user)
    return await retold.execute(notify, "evening", user)


@retold.workflow
async def office_hours_by_datetime(user: str) -> str:
    if datetime.datetime.now().hour < 12:
        return await retold.execute(notify, "morning", user)
    return await retold.execute(notify, "evening", user)


# (b) unseeded randomness


@retold.workflow
async def ab_test_with_random(user: str) -> str:
    channel = "email" if random.random() < 0.5 else "sms"
    return await retold.execute(notify, channel, user)


@retold.workflow
async def ticket_with_uuid4(user: str) -> str:
    return await retold.execute(notify, f"ticket-{uuid.uuid4()}", user)


# (c) iterating a set of strings: the order depends on the process's hash seed


@retold.workflow
async def notify_every_channel(user: str) -> list[str]:
    channels = {"email", "sms", "push", "slack", "webhook", "pager", "fax", "letter"}
    return [await retold.execute(notify, channel, user) for channel in channels]


# (f) which of two signals "came first" when both arrive together: asyncio.wait
# returns sets of tasks, which iterate in creation order on the workflow loop
# (with asyncio's identity hash they followed memory addresses).


@retold.workflow
async def first_answer_wins() -> str:
    approve = asyncio.ensure_future(retold.wait_signal("approve", str))
    reject = asyncio.ensure_future(retold.wait_signal("reject", str))
    done, pending = await asyncio.wait({approve, reject}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    winner = next(iter(done))
    return await retold.execute(record, "approved" if winner is approve else "rejected")


@retold.workflow
async def first_answer_fixed() -> str:
    """A rule for the tie, written in the code."""
    approve = asyncio.ensure_future(retold.wait_signal("approve", str))
    reject = asyncio.ensure_future(retold.wait_signal("reject", str))
    done, pending = await asyncio.wait({approve, reject}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return await retold.execute(record, "approved" if approve in done else "rejected")


def failure_of(workflow: retold.Workflow[..., Any], **kwargs: Any) -> str:
    kwargs.setdefault("activities", [notify, record])
    kwargs.setdefault("max_examples", 60)
    with pytest.raises(NondeterminismFound) as caught:
        assert_deterministic(workflow, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    ("workflow", "call", "remedy"),
    [
        (office_hours_by_clock, "time.time()", "retold.now()"),
        (office_hours_by_datetime, "datetime.now()", "retold.now()"),
        (ab_test_with_random, "random.random()", "retold.random()"),
        (ticket_with_uuid4, "uuid.uuid4()", "retold.uuid4()"),
    ],
)
def test_clock_and_randomness_are_caught_with_the_call_and_the_remedy(
    workflow: retold.Workflow[..., Any], call: str, remedy: str
) -> None:
    message = failure_of(workflow, args=("ada",))
    assert f"workflow {workflow.name!r} is not deterministic" in message
    assert call in message
    assert remedy in message
    assert "test_determinism_proofs.py:" in message  # the line in the workflow that did it


def test_iterating_a_set_of_strings_is_caught_by_a_replay_in_another_process() -> None:
    message = failure_of(notify_every_channel, args=("ada",), max_examples=5)
    assert "replay in another process (another string-hash seed)" in message
    assert "NondeterminismError" in message
    assert "recorded ActivityScheduled(activity='notify'" in message
    # In one process the order is stable, so only the second process can see it.
    assert_deterministic(notify_every_channel, args=("ada",), activities=[notify], max_examples=5,
                         cross_process=False)


def test_the_sets_asyncio_wait_returns_replay_in_the_same_order() -> None:
    signals = [("approve", "yes"), ("reject", "no")]
    assert_deterministic(first_answer_wins, signals=signals, activities=[record], max_examples=100)
    assert_deterministic(first_answer_fixed, signals=signals, activities=[record], max_examples=100)


def test_failing_scenarios_shrink_to_a_readable_report() -> None:
    message = failure_of(office_hours_by_clock, args=("ada",))
    # Shrunk: no failures injected, no crash, nothing but the start.
    assert "input: args=('ada',), signals=[]" in message
    assert "what happened:\n    run starts with args ('ada',)" in message
    assert "failed check: the live run" in message


# (d) and (e): code changed by a deploy, checked against histories recorded before it.


@retold.workflow(name="signup")
async def signup_v1(user: str) -> list[str]:
    return [await retold.execute(notify, "email", user), await retold.execute(notify, "sms", user)]


@retold.workflow(name="signup")
async def signup_reordered(user: str) -> list[str]:
    return [await retold.execute(notify, "sms", user), await retold.execute(notify, "email", user)]


@retold.workflow(name="signup")
async def signup_added_step(user: str) -> list[str]:
    out = [await retold.execute(notify, "email", user)]
    out.append(await retold.execute(notify, "push", user))
    out.append(await retold.execute(notify, "sms", user))
    return out


@retold.workflow(name="signup")
async def signup_added_step_patched(user: str) -> list[str]:
    out = [await retold.execute(notify, "email", user)]
    if retold.patched("push-step"):
        out.append(await retold.execute(notify, "push", user))
    out.append(await retold.execute(notify, "sms", user))
    return out


def test_a_deploy_that_reorders_or_adds_activities_is_caught_against_old_histories() -> None:
    old = check_scenario(signup_v1, Scenario(args=("ada",)), activities=[notify])
    assert replay(signup_v1, old).finished
    with pytest.raises(retold.NondeterminismError) as reordered:
        replay(signup_reordered, old)
    assert "event 2: recorded ActivityScheduled(activity='notify', input='[\"email\",\"ada\"]')" in str(
        reordered.value
    )
    assert "the code requested ActivityScheduled(activity='notify', input='[\"sms\",\"ada\"]')" in str(
        reordered.value
    )
    with pytest.raises(retold.NondeterminismError, match="event 4"):
        replay(signup_added_step, old)
    assert replay(signup_added_step_patched, old).finished
    # A history stopped halfway (a run in flight at the deploy) is checked too.
    assert not replay(signup_added_step_patched, old[:3]).finished


# Correct workflows pass: every example in examples/.


def test_onboarding_example_is_deterministic() -> None:
    assert_deterministic(
        onboarding.onboard,
        args=st.tuples(st.emails(), st.floats(min_value=1, max_value=86_400)),
        signals=st.lists(st.tuples(st.just("email_confirmed"), st.booleans()), max_size=2).map(tuple),
        activities=[onboarding.create_account, onboarding.send_email],
        queries=["status"],
        max_examples=100,
        cancel=True,
    )


def test_parallel_example_is_deterministic() -> None:
    assert_deterministic(
        parallel.survey,
        args=st.tuples(st.integers(min_value=0, max_value=6)),
        activities=[parallel.measure],
        fakes={parallel.measure: lambda shard: shard * shard},  # the real one sleeps
        max_examples=60,
    )


def test_saga_example_is_deterministic() -> None:
    trips = st.builds(
        saga.Trip, traveller=st.just("ada"), destination=st.sampled_from(["Lisbon", "Oslo"]),
        fail_at=st.sampled_from([None, "flight", "hotel", "car"]),
    )
    assert_deterministic(
        saga.book_trip,
        args=st.tuples(trips),
        activities=[saga.book_flight, saga.book_hotel, saga.book_car,
                    saga.cancel_flight, saga.cancel_hotel, saga.cancel_car],
        max_examples=60,
    )


def test_check_scenario_runs_one_scenario_for_your_own_given_tests() -> None:
    scenario = Scenario(
        args=("ada@example.com", 30.0), signals=(("email_confirmed", True),),
        steps=(Step(0), Step(0, outcome="retry"), Step(1), Step(0)), crash_after=frozenset({2}),
    )
    history = check_scenario(
        onboarding.onboard, scenario, activities=[onboarding.create_account, onboarding.send_email],
        queries=["status"],
    )
    types = [e.type for e in history]
    assert types[0] == "WorkflowStarted"
    assert types[-1] == "WorkflowCompleted"
    assert "SignalReceived" in types
    assert "TimerFired" in types


# Module-level state that survives between runs in one process.

_seen: list[str] = []


@retold.workflow
async def remembers_across_runs(user: str) -> str:
    _seen.append(user)
    channel = "welcome" if len(_seen) == 1 else "welcome-back"
    return await retold.execute(notify, channel, user)


def test_module_level_state_is_caught_by_replays_in_the_same_process() -> None:
    _seen.clear()
    message = failure_of(remembers_across_runs, args=("ada",), max_examples=10, cross_process=False)
    assert "welcome-back" in message


@retold.workflow
async def collects(n: int) -> list[int]:
    got = []
    for _ in range(n):
        value = await retold.wait_signal("go", int)
        assert value is not None
        got.append(value)
    return got


def test_scenarios_start_some_runs_with_their_first_signal() -> None:
    """Signal-with-start is an input of its own: the history begins WorkflowStarted, SignalReceived."""
    from hypothesis import find

    from retold.history import events as ev
    from retold.testing.strategies import scenarios

    history = check_scenario(collects, Scenario(args=(2,), signals=(("go", 1), ("go", 2)), signal_with_start=True))
    assert [type(e) for e in list(history)[:2]] == [ev.WorkflowStarted, ev.SignalReceived]
    assert list(history)[-1].result == b"[1,2]"  # type: ignore[attr-defined]
    found = find(scenarios(args=(2,), signals=(("go", 1), ("go", 2))), lambda s: s.signal_with_start)
    assert found.signal_with_start
    assert_deterministic(collects, args=(2,), signals=[("go", 1), ("go", 2)], max_examples=20, cross_process=False)


def test_scenarios_may_time_the_run_out() -> None:
    """A run's time limit is an input of its own: the history ends WorkflowTimedOut, and replays."""
    from hypothesis import find

    from retold.history import events as ev
    from retold.testing.strategies import scenarios

    history = check_scenario(collects, Scenario(args=(3,), signals=(("go", 1), ("go", 2)), timeout_at=2))
    assert isinstance(list(history)[-1], ev.WorkflowTimedOut)
    replay(collects, history)
    assert find(scenarios(args=(2,), timeout=True), lambda s: s.timeout_at is not None).timeout_at is not None
    assert_deterministic(collects, args=(3,), signals=[("go", 1), ("go", 2)], timeout=True, max_examples=20,
                         cross_process=False)
