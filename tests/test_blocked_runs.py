"""A bad deploy blocks runs instead of failing them; a rollback or a fix resumes them with nothing lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

import retold
from retold.history import events as ev
from retold.stores.memory import MemoryStore
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.activity
async def step(name: str) -> str:
    return f"did {name}"


@retold.activity
async def other_step(name: str) -> str:
    return name


@retold.workflow(name="deployable")
async def v1() -> str:
    await retold.execute(step, "a")
    await retold.wait_signal("go")
    return await retold.execute(step, "b")


@retold.workflow(name="deployable")
async def v2_breaks_replay() -> str:
    await retold.execute(other_step, "a")  # was step: runs past this point no longer replay
    await retold.wait_signal("go")
    return await retold.execute(step, "b")


@retold.workflow(name="deployable")
async def v2_patched() -> str:
    if retold.patched("other-step"):
        await retold.execute(other_step, "a")
    else:
        await retold.execute(step, "a")
    await retold.wait_signal("go")
    return await retold.execute(step, "b")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)


async def parked(make_engine: EngineFactory, workflow_id: str, **options: object) -> None:
    """A run of v1 past its first activity, waiting for "go"."""
    async with make_engine([v1], [step], **options) as engine:
        run = await engine.start(v1.with_options(id=workflow_id))

        async def waiting() -> bool:
            return "ActivityCompleted" in [e.type for e in await run.history()]

        await eventually(waiting)


async def blocked(handle: retold.RunHandle[object]) -> retold.RunDescription:
    async def is_blocked() -> bool:
        return (await handle.describe()).status == "blocked"

    await eventually(is_blocked)
    return await handle.describe()


async def test_a_bad_deploy_blocks_the_run_and_a_rollback_resumes_it_at_once(
    make_engine: EngineFactory, shared_url: str
) -> None:
    await parked(make_engine, "deployed", url=shared_url)
    # The bad deploy: its retries are 30 s apart, longer than this test waits for the rollback.
    async with make_engine([v2_breaks_replay], [step, other_step], workflow_task_retry_delay=30,
                           url=shared_url) as bad:
        handle = bad.get_handle("deployed")
        await handle.signal("go")
        described = await blocked(handle)
        before = [e.type for e in await handle.history()]
        listed = [r.run_id for r in await bad.list_runs(status="blocked")]
        running = [r.run_id for r in await bad.list_runs(status="running")]
        fingerprint = bad.fingerprint
    failure = described.blocked
    assert failure is not None
    assert failure.type == "retold.errors.NondeterminismError"
    assert failure.seq == 2  # the diverging event
    assert "recorded ActivityScheduled(activity='step'" in failure.message
    assert "requested ActivityScheduled(activity='other_step'" in failure.message
    assert failure.attempts == 1
    assert failure.fingerprint == fingerprint
    assert failure.retry_at > failure.since
    assert (described.open, described.closed_at) == (True, None)
    assert before[-1] == "SignalReceived"  # nothing was written but the signal
    assert "WorkflowFailed" not in before
    assert (listed, running) == ([described.run_id], [])
    # The rollback: other code than the one that failed takes the task at once.
    async with make_engine([v1], [step], url=shared_url) as rolled_back:
        assert rolled_back.fingerprint != fingerprint
        handle = rolled_back.get_handle("deployed")
        with anyio.fail_after(15):
            assert await handle.result() == "did b"
        after = await handle.describe()
        history = [e.type for e in await handle.history()]
    assert (after.status, after.blocked) == ("completed", None)
    assert history[: len(before)] == before
    assert "WorkflowFailed" not in history


async def test_the_patched_fix_resumes_a_blocked_run(make_engine: EngineFactory) -> None:
    await parked(make_engine, "to-fix")
    async with make_engine([v2_breaks_replay], [step, other_step], workflow_task_retry_delay=30) as bad:
        await bad.get_handle("to-fix").signal("go")
        await blocked(bad.get_handle("to-fix"))
    async with make_engine([v2_patched], [step, other_step]) as fixed:
        handle = fixed.get_handle("to-fix")
        with anyio.fail_after(15):
            assert await handle.result() == "did b"
        fresh = await fixed.start(v2_patched.with_options(id="after-the-fix"))
        await fresh.signal("go")
        assert await fresh.result(timeout=15) == "did b"
        history = await fresh.history()
    assert [e.activity for e in history if isinstance(e, ev.ActivityScheduled)] == ["other_step", "step"]


async def test_the_same_code_retries_a_blocked_run_with_backoff_and_keeps_it_open(make_engine: EngineFactory) -> None:
    await parked(make_engine, "stuck")
    async with make_engine([v2_breaks_replay], [step, other_step], workflow_task_retry_delay=0.05,
                           max_workflow_task_attempts=2) as bad:
        handle = bad.get_handle("stuck")
        await handle.signal("go")
        first = (await blocked(handle)).blocked
        assert first is not None

        async def retried() -> bool:
            now = (await handle.describe()).blocked
            return now is not None and now.attempts >= 4  # past max_workflow_task_attempts: still open

        await eventually(retried)
        later = await handle.describe()
    assert later.status == "blocked"
    assert later.blocked is not None
    assert later.blocked.since == first.since
    assert later.blocked.retry_at > first.retry_at


async def test_failing_the_run_instead_stays_available(make_engine: EngineFactory) -> None:
    await parked(make_engine, "fail-it")
    async with make_engine([v2_breaks_replay], [step, other_step], on_workflow_task_failure="fail",
                           max_workflow_task_attempts=2, workflow_task_retry_delay=0.05) as engine:
        handle = engine.get_handle("fail-it")
        await handle.signal("go")
        with pytest.raises(retold.WorkflowFailedError, match="workflow task failed 2 times"):
            await handle.result(timeout=20)
        assert (await handle.describe()).status == "failed"


async def test_a_bad_option_is_refused() -> None:
    with pytest.raises(retold.ConfigurationError, match="on_workflow_task_failure must be 'block' or 'fail'"):
        retold.Engine("memory://", on_workflow_task_failure="retry")  # type: ignore[arg-type]


async def test_a_terminated_blocked_run_is_closed(make_engine: EngineFactory) -> None:
    await parked(make_engine, "give-up")
    async with make_engine([v2_breaks_replay], [step, other_step], workflow_task_retry_delay=30) as bad:
        handle = bad.get_handle("give-up")
        await handle.signal("go")
        await blocked(handle)
        await handle.terminate("the old code is gone")
        with pytest.raises(retold.WorkflowTerminatedError, match="was terminated: the old code is gone"):
            await handle.result(timeout=5)
        described = await handle.describe()
    assert (described.status, described.blocked) == ("terminated", None)


async def test_blocked_runs_and_terminate_on_the_memory_store(make_engine: EngineFactory) -> None:
    store = MemoryStore()  # shared by the three "deploys", as a database would be
    await parked(make_engine, "in-memory", store=store)
    await parked(make_engine, "to-end", store=store)
    async with make_engine([v2_breaks_replay], [step, other_step], workflow_task_retry_delay=30,
                           store=store) as bad:
        for workflow_id in ("in-memory", "to-end"):
            await bad.get_handle(workflow_id).signal("go")
            described = await blocked(bad.get_handle(workflow_id))
            assert described.blocked is not None
            assert described.blocked.seq == 2
        assert {r.workflow_id for r in await bad.list_runs(status="blocked")} == {"in-memory", "to-end"}
        assert await bad.list_runs(status="running") == []
        await bad.get_handle("to-end").terminate("not worth it")
    async with make_engine([v1], [step], store=store) as rolled_back:
        with anyio.fail_after(15):
            assert await rolled_back.get_handle("in-memory").result() == "did b"
        with pytest.raises(retold.WorkflowTerminatedError, match="not worth it"):
            await rolled_back.get_handle("to-end").result(timeout=5)
        statuses = {r.workflow_id: r.status for r in await rolled_back.list_runs()}
    assert statuses == {"in-memory": "completed", "to-end": "terminated"}
