"""What a workflow that stops waiting for an activity does to it: its cancellation type (issue 14, item 7)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import anyio
import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

STARTED: dict[str, anyio.Event] = {}
RELEASE: dict[str, anyio.Event] = {}  # set by the test: the attempt may finish (it waits until told otherwise)
FINISHED: list[str] = []
STOPPED: list[str] = []


@retold.activity
async def slow(tag: str) -> str:
    STARTED.setdefault(tag, anyio.Event()).set()
    try:
        with anyio.fail_after(120):
            await RELEASE.setdefault(tag, anyio.Event()).wait()
    except BaseException:
        STOPPED.append(tag)
        raise
    FINISHED.append(tag)
    return tag


@retold.activity
async def quote(tag: str) -> str:
    await anyio.sleep(0.5)
    return tag


@retold.workflow
async def gives_up(cancellation_type: retold.ActivityCancellationType) -> str:
    task = asyncio.ensure_future(retold.execute(slow.with_options(cancellation_type=cancellation_type),
                                                cancellation_type))
    await retold.wait_signal("give-up", str)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await retold.sleep(0.01)  # a command after the wait ended: where it lands in the history says when
    await retold.wait_signal("close", str)
    return "gave up"


def after_give_up(types: list[str]) -> list[str]:
    """The history's event types from the give-up signal on, signals and step markers left out."""
    tail = types[types.index("SignalReceived"):]
    return [t for t in tail if t not in ("SignalReceived", "WorkflowTaskCompleted")]


async def give_up(
    engine: retold.Engine, cancellation_type: retold.ActivityCancellationType, awaited: str,
) -> retold.RunHandle[str]:
    run = await engine.start(gives_up.with_options(id=f"w-{cancellation_type}"), cancellation_type)
    with anyio.fail_after(30):
        await STARTED.setdefault(cancellation_type, anyio.Event()).wait()
    await run.signal("give-up", "now")
    with anyio.fail_after(30):
        while awaited not in [e.type for e in await run.history()]:
            await anyio.sleep(0.01)
    return run


@pytest.mark.parametrize(("cancellation_type", "awaited"), [
    ("try_cancel", "ActivityCancelRequested"), ("wait_cancellation_completed", "TimerStarted"),
    ("abandon", "TimerStarted"),
])
async def test_the_cancellation_type_says_what_happens_to_the_activity_and_when_the_wait_ends(
    make_engine: EngineFactory, store_url: str, cancellation_type: retold.ActivityCancellationType, awaited: str,
) -> None:
    for table in (STARTED, RELEASE):
        table.clear()
    FINISHED.clear()
    STOPPED.clear()
    async with make_engine([gives_up], [slow], url=store_url) as engine:
        run = await give_up(engine, cancellation_type, awaited)
        if cancellation_type == "abandon":  # given up and left running: now let it finish
            RELEASE.setdefault("abandon", anyio.Event()).set()
            with anyio.fail_after(30):
                while "ActivityCompleted" not in [e.type for e in await run.history()]:
                    await anyio.sleep(0.01)
        await run.signal("close", "now")
        assert await run.result(timeout=30) == "gave up"
        history = await run.history()
    types = [e.type for e in history]
    if cancellation_type == "try_cancel":
        # Withdrawn, the wait ended at once (the timer in the same step); the attempt was stopped.
        assert after_give_up(types)[:2] == ["ActivityCancelRequested", "TimerStarted"]
        assert "ActivityCompleted" not in types
        assert (FINISHED, STOPPED) == ([], ["try_cancel"])
    elif cancellation_type == "wait_cancellation_completed":
        # Asked; the wait ended only once the attempt had ended and reported, as cancelled.
        assert after_give_up(types)[:3] == ["ActivityCancelRequested", "ActivityFailed", "TimerStarted"]
        failed = next(e for e in history if e.type == "ActivityFailed")
        assert failed.failure.type == "CancelledError"  # type: ignore[attr-defined]
        assert (FINISHED, STOPPED) == ([], ["wait_cancellation_completed"])
    else:
        assert "ActivityCancelRequested" not in types
        assert after_give_up(types)[0] == "TimerStarted"  # the wait ended at once
        assert types.count("ActivityCompleted") == 1
        assert FINISHED == ["abandon"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_attempt_running_in_another_process_is_told_and_the_workflow_waits_for_its_end(
    tmp_path: Path, shared_url: str,
) -> None:
    # Two engines, as two processes would be: one runs the workflow, the other (the only host of the
    # activity) the attempt; it learns of the cancellation beside its lease renewal.
    for table in (STARTED, RELEASE):
        table.clear()
    STOPPED.clear()
    async with retold.Engine(shared_url, workflows=[gives_up], poll_interval=0.05) as workflows, \
            retold.Engine(shared_url, activities=[slow.with_options()], lease=0.6, poll_interval=0.05):
        run = await give_up(workflows, "wait_cancellation_completed", "TimerStarted")
        types = [e.type for e in await run.history()]
        assert after_give_up(types)[:3] == ["ActivityCancelRequested", "ActivityFailed", "TimerStarted"]
        assert STOPPED == ["wait_cancellation_completed"]
        await run.signal("close", "now")
        assert await run.result(timeout=30) == "gave up"


def test_an_unknown_cancellation_type_is_refused_where_it_is_given() -> None:
    with pytest.raises(retold.ConfigurationError, match="cancellation_type must be one of 'try_cancel', "
                                                         "'wait_cancellation_completed', 'abandon'"):
        slow.with_options(cancellation_type="wait")  # type: ignore[arg-type]


@retold.workflow
async def races(cancellation_type: retold.ActivityCancellationType) -> str:
    try:
        return await asyncio.wait_for(
            retold.execute(quote.with_options(cancellation_type=cancellation_type), cancellation_type), 0.2)
    except TimeoutError:
        return "timed out"


@pytest.mark.parametrize("cancellation_type", ["try_cancel", "wait_cancellation_completed", "abandon"])
def test_each_cancellation_type_replays_deterministically(cancellation_type: str) -> None:
    from retold.testing import assert_deterministic

    assert_deterministic(races, args=(cancellation_type,), activities=[quote], max_examples=20, cross_process=False)


# A plain ``def`` activity runs in a thread and learns of a cancellation from ``heartbeat()``
# (or ``ActivityInfo.cancelled``); it runs until told, or until the test releases it.
SYNC_STARTED: dict[str, threading.Event] = {}
SYNC_RELEASE: dict[str, threading.Event] = {}
SYNC_ACK: dict[str, threading.Event] = {}  # a told thread acknowledges (raises) once this is set
SYNC_ENDS: dict[str, str] = {}


@retold.activity
def slow_sync(tag: str) -> str:
    SYNC_STARTED.setdefault(tag, threading.Event()).set()
    release = SYNC_RELEASE.setdefault(tag, threading.Event())
    try:
        while not release.wait(0.01):
            retold.heartbeat()
    except asyncio.CancelledError:
        SYNC_ENDS[tag] = "told"
        SYNC_ACK.setdefault(tag, threading.Event()).wait(60)
        raise
    SYNC_ENDS[tag] = "finished"
    return tag


@retold.workflow
async def gives_up_sync(cancellation_type: retold.ActivityCancellationType) -> str:
    task = asyncio.ensure_future(retold.execute(slow_sync.with_options(cancellation_type=cancellation_type),
                                                cancellation_type))
    await retold.wait_signal("give-up", str)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await retold.sleep(0.01)
    await retold.wait_signal("close", str)
    return "gave up"


async def wait_for_types(run: retold.RunHandle[str], wanted: str) -> list[str]:
    with anyio.fail_after(30):
        while wanted not in (types := [e.type for e in await run.history()]):
            await anyio.sleep(0.01)
    return types


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("cancellation_type", "awaited"), [
    ("try_cancel", "ActivityCancelRequested"), ("wait_cancellation_completed", "TimerStarted"),
    ("abandon", "TimerStarted"),
])
async def test_a_plain_def_activity_follows_its_cancellation_type(
    make_engine: EngineFactory, store_url: str, cancellation_type: retold.ActivityCancellationType, awaited: str,
) -> None:
    for table in (SYNC_STARTED, SYNC_RELEASE, SYNC_ACK, SYNC_ENDS):
        table.clear()
    started = SYNC_STARTED.setdefault(cancellation_type, threading.Event())
    release = SYNC_RELEASE.setdefault(cancellation_type, threading.Event())
    ack = SYNC_ACK.setdefault(cancellation_type, threading.Event())
    if cancellation_type != "wait_cancellation_completed":
        ack.set()  # told threads raise at once
    try:
        async with make_engine([gives_up_sync], [slow_sync], url=store_url) as engine:
            run = await engine.start(gives_up_sync.with_options(id=f"ws-{cancellation_type}"), cancellation_type)
            with anyio.fail_after(30):
                while not started.is_set():
                    await anyio.sleep(0.01)
            await run.signal("give-up", "now")
            if cancellation_type == "wait_cancellation_completed":
                # Told, the thread has not acknowledged yet: the workflow still waits, nothing recorded.
                with anyio.fail_after(30):
                    while cancellation_type not in SYNC_ENDS:
                        await anyio.sleep(0.01)
                types = await wait_for_types(run, "ActivityCancelRequested")
                assert after_give_up(types) == ["ActivityCancelRequested"]
                ack.set()
            types = await wait_for_types(run, awaited)
            if cancellation_type == "try_cancel":
                # Withdrawn and the wait ended at once; the thread is told at its next heartbeat.
                assert after_give_up(types)[:2] == ["ActivityCancelRequested", "TimerStarted"]
                with anyio.fail_after(30):
                    while cancellation_type not in SYNC_ENDS:
                        await anyio.sleep(0.01)
            elif cancellation_type == "wait_cancellation_completed":
                # The wait ended only after the thread acknowledged by raising, recorded first.
                assert after_give_up(types)[:3] == ["ActivityCancelRequested", "ActivityFailed", "TimerStarted"]
            else:
                # The wait ended at once; nothing recorded, the thread not told: it runs to its end.
                assert after_give_up(types)[0] == "TimerStarted"
                assert not {"ActivityCancelRequested", "ActivityCompleted", "ActivityFailed"} & set(types)
                assert cancellation_type not in SYNC_ENDS
                release.set()
                types = await wait_for_types(run, "ActivityCompleted")
            await run.signal("close", "now")
            assert await run.result(timeout=30) == "gave up"
            history = await run.history()
    finally:
        release.set()  # a thread left running would hold the engine's shutdown
        ack.set()
    types = [e.type for e in history]
    if cancellation_type == "abandon":
        assert "ActivityCancelRequested" not in types
        assert after_give_up(types)[0] == "TimerStarted"
        assert types.count("ActivityCompleted") == 1  # after the wait ended (checked above)
        assert SYNC_ENDS == {"abandon": "finished"}
    else:
        assert SYNC_ENDS.get(cancellation_type) == "told"
        assert len(SYNC_ENDS) == 1
        assert "ActivityCompleted" not in types
        failures = [e for e in history if e.type == "ActivityFailed"]
        if cancellation_type == "try_cancel":
            assert failures == []  # its end came after the withdrawal: recorded for no one
        else:
            assert [f.failure.type for f in failures] == ["CancelledError"]  # type: ignore[attr-defined]


@retold.activity(cancellation_type="wait_cancellation_completed")
def stubborn() -> str:
    """Told to stop, it returns its result anyway (``heartbeat()`` not called: it polls ``cancelled``)."""
    SYNC_STARTED.setdefault("stubborn", threading.Event()).set()
    info = retold.activity_info()
    while not info.cancelled:
        SYNC_RELEASE.setdefault("stubborn", threading.Event()).wait(0.01)
    SYNC_ENDS["stubborn"] = "told"
    SYNC_ACK.setdefault("stubborn", threading.Event()).wait(60)
    return "done anyway"


@retold.workflow
async def gives_up_on_stubborn() -> str:
    task = asyncio.ensure_future(retold.execute(stubborn))
    await retold.wait_signal("give-up", str)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "not cancelled"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_thread_that_returns_anyway_has_its_result_recorded_and_the_wait_still_cancelled(
    make_engine: EngineFactory, store_url: str,
) -> None:
    for table in (SYNC_STARTED, SYNC_RELEASE, SYNC_ACK, SYNC_ENDS):
        table.clear()
    started = SYNC_STARTED.setdefault("stubborn", threading.Event())
    ack = SYNC_ACK.setdefault("stubborn", threading.Event())
    try:
        async with make_engine([gives_up_on_stubborn], [stubborn], url=store_url) as engine:
            run = await engine.start(gives_up_on_stubborn.with_options(id="stubborn"))
            with anyio.fail_after(30):
                while not started.is_set():
                    await anyio.sleep(0.01)
            await run.signal("give-up", "now")
            with anyio.fail_after(30):
                while "stubborn" not in SYNC_ENDS:
                    await anyio.sleep(0.01)
            assert after_give_up(await wait_for_types(run, "ActivityCancelRequested")) == ["ActivityCancelRequested"]
            ack.set()
            assert await run.result(timeout=30) == "cancelled"
            types = [e.type for e in await run.history()]
    finally:
        ack.set()
    assert after_give_up(types)[:2] == ["ActivityCancelRequested", "ActivityCompleted"]
