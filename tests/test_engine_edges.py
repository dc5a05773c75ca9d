"""Engine edge cases: child ids in use, child errors, long workflow tasks, parent close."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import retold
from retold.engine._runs import Runs
from retold.stores import RunRecord
from retold.stores.sql import SqlStore
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.workflow
async def kid() -> str:
    return "kid"


@retold.workflow
async def failing_kid() -> str:
    raise ValueError("boom")


@retold.workflow
async def reuses_child_id() -> str:
    await retold.execute_child(kid.with_options(id="taken"))
    try:
        await retold.execute_child(kid.with_options(id="taken"))
    except retold.ChildWorkflowError as error:
        return f"refused: {error.__cause__}"
    return "started twice"


async def test_child_with_taken_id_fails_the_child_call(make_engine: EngineFactory) -> None:
    async with make_engine([reuses_child_id, kid]) as engine:
        run = await engine.start(reuses_child_id)
        result = await run.result(timeout=10)
    assert result.startswith("refused:")
    assert "already in use" in result


@retold.workflow
async def catches_child_error() -> str:
    try:
        await retold.execute_child(failing_kid.with_options(id="kid-1"))
    except retold.ChildWorkflowError as error:
        return error.workflow_id
    return "no error"


async def test_child_workflow_error_names_the_child(make_engine: EngineFactory) -> None:
    async with make_engine([catches_child_error, failing_kid]) as engine:
        run = await engine.start(catches_child_error)
        assert await run.result(timeout=10) == "kid-1"


@retold.workflow
async def slow_activation() -> str:
    deadline = time.monotonic() + 1.0  # one long activation (a long replay, a slow machine)
    while time.monotonic() < deadline:
        pass
    await asyncio.sleep(0.1)
    return "done"


async def test_workflow_task_longer_than_lease_does_not_crash_the_engine(
    make_engine: EngineFactory,
) -> None:
    async with make_engine([slow_activation], lease=0.3) as engine:
        run = await engine.start(slow_activation)
        assert await run.result(timeout=10) == "done"


@retold.workflow
async def sleepy_child() -> str:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await retold.execute(note, "child cleaned up")
        raise
    return "slept"


@retold.activity
async def note(text: str) -> str:
    return text


@retold.workflow
async def leaves_a_child_behind() -> str:
    handle = retold.start_child(sleepy_child.with_options(id="left-behind"))
    await asyncio.sleep(0.05)
    return handle.workflow_id


async def test_children_are_cancelled_when_their_parent_closes(make_engine: EngineFactory) -> None:
    async with make_engine([leaves_a_child_behind, sleepy_child], [note]) as engine:
        run = await engine.start(leaves_a_child_behind)
        assert await run.result(timeout=10) == "left-behind"
        child = engine.get_handle("left-behind")
        with pytest.raises(retold.WorkflowCancelledError):
            await child.result(timeout=10)
        history = await child.history()
    assert [e.type for e in history][-5:] == [
        "CancelRequested", "TimerCancelled", "ActivityScheduled", "ActivityCompleted", "WorkflowCancelled",
    ]


@retold.workflow
async def simple() -> str:
    return "fine"


def fail_first(engine: retold.Engine, method: str, times: int) -> None:
    """Make the store's (or the runs') ``method`` raise StoreError on its first ``times`` calls."""
    target: Any = engine.store if hasattr(engine.store, method) else engine.runs
    real = getattr(target, method)
    left = [times]

    async def flaky(*args: Any) -> Any:
        if left[0]:
            left[0] -= 1
            raise retold.StoreError("database is locked")
        return await real(*args)

    setattr(target, method, flaky)


async def test_a_failing_store_call_does_not_stop_the_engine(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_engine([simple]) as engine:
        fail_first(engine, "claim_workflow_tasks", 1)
        run = await engine.start(simple)
        assert await run.result(timeout=10) == "fine"
    assert "loop run failed; restarting" in caplog.text


@retold.workflow
async def drains_extras() -> int:
    await retold.wait_signal("go")
    seen = 0
    while await retold.wait_signal("extra", timeout=0) is not None:
        seen += 1
    return seen


async def test_a_run_never_completes_over_a_signal_it_has_not_seen(make_engine: EngineFactory) -> None:
    """Signals racing the completion: each accepted one is seen by the code."""
    async with make_engine([drains_extras]) as engine:
        for round_ in range(5):
            run = await engine.start(drains_extras.with_options(id=f"race-{round_}"))
            accepted = 0

            async def send_extras(run: retold.RunHandle[int]) -> None:
                nonlocal accepted
                for _ in range(30):
                    try:
                        await run.signal("extra", 1)
                    except retold.RunFinishedError:
                        return
                    accepted += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(send_extras, run)
                await anyio.sleep(0.001 * round_)
                await run.signal("go")
            seen = await run.result(timeout=10)
            history = await run.history()
            extras_recorded = sum(1 for e in history if getattr(e, "name", None) == "extra")
            assert history[-1].type == "WorkflowCompleted"
            assert extras_recorded == accepted
            assert seen == accepted, f"round {round_}: {accepted} signals accepted, code saw {seen}"


@retold.activity(retry=retold.RetryPolicy(max_attempts=1))
async def slow_then_fast() -> int:
    if retold.activity_info().attempt == 1 and not RELEASED:
        RELEASED.append(True)
        await anyio.sleep(30)
    return retold.activity_info().attempt


RELEASED: list[bool] = []


@retold.workflow
async def calls_slow() -> int:
    return await retold.execute(slow_then_fast)


async def test_a_stopped_engine_hands_its_work_back_at_once(make_engine: EngineFactory) -> None:
    RELEASED.clear()
    async with make_engine([calls_slow], [slow_then_fast], lease=60) as first:
        run = await first.start(calls_slow.with_options(id="handed-back"))
        with anyio.fail_after(10):
            while not RELEASED:
                await anyio.sleep(0.02)
    async with make_engine([calls_slow], [slow_then_fast], lease=60) as second:
        with anyio.fail_after(20):  # not the 60 s lease
            assert await second.get_handle(run.workflow_id).result() == 1


@retold.workflow
async def nobody_hosts_me() -> str:
    return "never"


async def test_work_hosted_elsewhere_does_not_make_the_engine_spin(make_engine: EngineFactory) -> None:
    async with make_engine([nobody_hosts_me], run_workers=False) as client:
        await client.start(nobody_hosts_me)  # its workflow task stays due, for another engine
    async with make_engine([simple], poll_interval=0.2) as engine:
        calls = 0
        real = engine.store.next_wakeup

        async def counted() -> float | None:
            nonlocal calls
            calls += 1
            return await real()

        engine.store.next_wakeup = counted  # type: ignore[method-assign]
        began = anyio.current_time()
        await anyio.sleep(1.0)
        elapsed = anyio.current_time() - began  # more than 1 s on a loaded machine
    # One poll per 0.2 s interval (about 5 a second), not a busy loop, however long the sleep took.
    assert calls <= 2 * (1 + elapsed / 0.2), f"the timer loop polled {calls} times in {elapsed:.1f} s"


async def test_store_errors_are_not_workflow_task_attempts(make_engine: EngineFactory) -> None:
    async with make_engine([simple], lease=0.5, max_workflow_task_attempts=1) as engine:
        fail_first(engine, "commit_workflow_task", 3)
        run = await engine.start(simple)
        assert await run.result(timeout=10) == "fine"  # one attempt allowed, yet not failed


runs_of_note: list[str] = []


@retold.activity
async def noted(text: str) -> str:
    runs_of_note.append(retold.activity_info().idempotency_key)
    return text


@retold.workflow
async def notes_once() -> str:
    return await retold.execute(noted, "kept")


async def test_an_unrecorded_activity_outcome_runs_again(make_engine: EngineFactory) -> None:
    runs_of_note.clear()
    async with make_engine([notes_once], [noted], lease=0.5) as engine:
        fail_first(engine, "finish_activity", 1)
        run = await engine.start(notes_once)
        assert await run.result(timeout=10) == "kept"
    assert len(runs_of_note) == 2
    assert len(set(runs_of_note)) == 1  # at least once, under one idempotency key


@retold.workflow
async def waits_for_go() -> str:
    return str(await retold.wait_signal("go", str))


class CountedReads:
    """Counts the engine's store's ``get_run`` calls (the real one stays at ``real``)."""

    def __init__(self, engine: retold.Engine) -> None:
        self.count = 0
        self.real = engine.store.get_run
        engine.store.get_run = self._counted  # type: ignore[method-assign]

    async def _counted(self, run_or_workflow_id: str) -> RunRecord:
        self.count += 1
        return await self.real(run_or_workflow_id)


async def test_waiting_on_a_workflow_id_reads_the_run_once_not_in_a_loop(make_engine: EngineFactory) -> None:
    async with make_engine([waits_for_go]) as engine:
        await engine.start(waits_for_go.with_options(id="by-name"))
        reads = CountedReads(engine)
        handle = engine.get_handle("by-name")  # a workflow id: the run id is not known yet
        async with anyio.create_task_group() as tg:
            results: list[str] = []

            async def wait() -> None:
                results.append(await handle.result(timeout=10))

            tg.start_soon(wait)
            with anyio.fail_after(10):  # the read before waiting (however slow the machine)
                while reads.count < 1:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.5)  # then none while it waits
            waiting_reads = reads.count
            await engine.signal("by-name", "go", "went")
        assert results == ["went"]
    # Read the run (by workflow id), register under its run id, which this engine runs:
    # then wait without reading (it used to read in a loop, hundreds of times in those 0.5 s),
    # and take the record its close left here.
    assert waiting_reads == 1
    assert reads.count == 1


async def test_a_result_this_engine_closed_is_handed_over_without_a_read(make_engine: EngineFactory) -> None:
    async with make_engine([two_quick_steps], [quick_step]) as engine:
        reads = CountedReads(engine)
        for i in range(5):
            run = await engine.start(two_quick_steps.with_options(id=f"quick-{i}"))
            assert await run.result() == 3  # waits while the engine runs it, woken with its record
        assert reads.count == 0
        # Once closed, the record kept here answers too, and it is the store's record.
        assert await run.result() == 3
        assert reads.count == 0
        assert run.run_id is not None
        kept = engine.runs.closed[run.run_id]
        stored = await reads.real(run.run_id)
        assert kept == stored  # every field (with search attributes and memo: see the next test)


async def test_a_run_closed_by_its_first_step_is_handed_over_without_a_read(
    make_engine: EngineFactory, store_url: str,
) -> None:
    async with make_engine([simple], url=store_url) as engine:
        reads = CountedReads(engine)
        for i in range(5):
            run = await engine.start(simple.with_options(id=f"at-once-{i}"))  # closes in the start's own step
            assert await run.result() == "fine"
        assert reads.count == 0
        assert run.run_id is not None
        assert engine.runs.closed[run.run_id] == await reads.real(run.run_id)


async def test_many_runs_closing_at_once_hand_their_results_over_without_reads(make_engine: EngineFactory) -> None:
    # More runs close together than Runs.closed keeps (128): each waiter still gets
    # its run's record from the close that woke it, not from a read.
    async with make_engine([two_quick_steps], [quick_step]) as engine:
        reads = CountedReads(engine)
        results: list[int] = []

        async def start_and_wait(i: int) -> None:  # as a request handler would
            run = await engine.start(two_quick_steps.with_options(id=f"many-{i}"))
            results.append(await run.result(timeout=60))

        async with anyio.create_task_group() as tg:
            for i in range(400):
                tg.start_soon(start_and_wait, i)
        assert results == [3] * 400
        assert reads.count == 0


@retold.workflow
async def tagged_close(how: str, again: bool = True) -> int:
    """Changes its search attributes, then closes as ``how`` says, changing them again in the closing step."""
    retold.upsert_search_attributes({"stage": "working", "region": None})
    value = 7
    if how == "activity":
        value = await retold.execute(quick_step, 5)  # its outcome commits the close (the fast path)
    else:
        await retold.sleep(0.01)  # the close is a workflow task's commit (a run's first step is not kept)
    retold.upsert_search_attributes({"stage": f"closing-{how}", "extra": 1})
    if how == "fail":
        raise ValueError("closed by failing")
    if how == "continue" and again:
        retold.continue_as_new(how, False)
    return value


async def test_the_record_kept_for_a_run_this_engine_closed_is_the_stored_record(
    make_engine: EngineFactory, store_url: str,
) -> None:
    """``Runs.closed`` is built by the engine, not read back: it must equal the store's record, every field,
    whatever closes the run (a step, an activity's outcome on the fast path, a failure, continue-as-new)."""
    async with make_engine([tagged_close], [quick_step], url=store_url) as engine:
        for how in ("return", "activity", "fail", "continue"):
            run = await engine.start(tagged_close.with_options(
                id=f"tagged-{how}", search_attributes={"region": "eu", "tier": 3, "stage": "new"},
                memo={"owner": "ann", "notes": [1, "two", {"three": None}]}), how)
            if how == "fail":
                with pytest.raises(retold.WorkflowFailedError):
                    await run.result(timeout=30)
            else:
                assert await run.result(timeout=30) == (5 if how == "activity" else 7)
            first = (await engine.list_runs(id_prefix=f"tagged-{how}"))[-1]  # the oldest: the run started here
            kept = engine.runs.closed.get(first.run_id)
            stored = await engine.store.get_run(first.run_id)
            assert kept is not None, how
            assert stored.search_attributes is not None, how
            assert "extra" in stored.search_attributes, how  # set by the closing step
            assert "region" not in stored.search_attributes, how
            assert stored.memo == {"owner": "ann", "notes": [1, "two", {"three": None}]}, how
            assert kept == stored, how


async def test_a_run_this_engine_holds_but_another_process_terminates_still_ends_the_wait(
    tmp_path: Path, make_engine: EngineFactory,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with make_engine([waits_for_go], url=url) as engine:
        run = await engine.start(waits_for_go.with_options(id="held"))
        async with anyio.create_task_group() as tg:
            outcome: list[BaseException] = []

            async def wait() -> None:
                try:
                    await run.result(timeout=30)
                except retold.WorkflowTerminatedError as exc:
                    outcome.append(exc)

            tg.start_soon(wait)
            async with retold.Client(url) as other:  # another process's client: no host, no shared memory
                await other.get_handle("held").terminate("from elsewhere")
        assert len(outcome) == 1
        assert "from elsewhere" in str(outcome[0])


@retold.workflow
async def two_quick_steps() -> int:
    return await retold.execute(quick_step, 1) + await retold.execute(quick_step, 2)


@retold.activity
async def quick_step(i: int) -> int:
    return i


class ClaimedWhileStepping(SqlStore):
    """Before each fast-path step, records a signal and lets the engine claim the run's task."""

    claims = 0

    async def claim_workflow_tasks(self, *args: Any, **kwargs: Any) -> Any:
        runs = await super().claim_workflow_tasks(*args, **kwargs)
        ClaimedWhileStepping.claims += len(runs)
        return runs



class SignalBeforeStep(Runs):
    """Before each fast-path step, records a signal and waits until the engine claims the run's task."""

    async def finish_activity(self, task: Any, owner: str, outcome: Any, step: Any = None) -> bool:
        if step is not None:
            before = ClaimedWhileStepping.claims
            await self.signal(step.run_id, "poke", b"null")
            with anyio.fail_after(10):  # the engine polls every 0.05 s
                while ClaimedWhileStepping.claims == before:
                    await anyio.sleep(0.01)
        return bool(await super().finish_activity(task, owner, outcome, step))


async def test_a_task_claimed_while_its_run_takes_a_step_is_processed_at_once(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    # The claim comes while the run is being processed (its outcome's step): the task
    # is leased to this engine then, and must not wait for the 60 s lease to run out.
    store = ClaimedWhileStepping(f"sqlite:///{tmp_path / 'stepping.db'}")
    async with make_engine([two_quick_steps], [quick_step], store=store, lease=60) as engine:
        engine.runs = SignalBeforeStep(store)
        run = await engine.start(two_quick_steps)
        assert await run.result(timeout=20) == 3
        history = await run.history()
    assert [e.type for e in history].count("SignalReceived") == 2  # each step met a claimed task


_BLOCK = {"first": True}  # the first engine's attempt never ends; the next one's returns


@retold.activity
async def blocks_in_the_first_engine() -> str:
    if _BLOCK["first"]:
        await anyio.sleep_forever()
    return "ran again"


@retold.workflow
async def waits_on_blocker() -> str:
    return await retold.execute(blocks_in_the_first_engine)


async def test_an_engine_whose_unhold_fails_at_close_still_releases_its_leases(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    _BLOCK["first"] = True
    async with retold.Engine(url, workflows=[waits_on_blocker], activities=[blocks_in_the_first_engine],
                             lease=60.0, poll_interval=0.05) as first:
        run = await first.start(waits_on_blocker)
        with anyio.fail_after(10):
            while not any(worker.running for worker in first.activity_workers):
                await anyio.sleep(0.01)
        fail_first(first, "unhold", 1)
    assert "could not show" in caplog.text  # said, not raised
    _BLOCK["first"] = False
    async with retold.Engine(url, workflows=[waits_on_blocker], activities=[blocks_in_the_first_engine],
                             poll_interval=0.05) as second:
        with anyio.fail_after(30):  # the attempt's lease (60 s) had the first engine not released it
            assert await second.get_handle(str(run.run_id)).result() == "ran again"
