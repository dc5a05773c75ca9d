"""Runs started when no workflow slot is free: their first step waits for one in the engine that started them.

Before, such a start was stored with a workflow task for any engine to
claim, and the starting engine itself claimed it, read its history and
replayed it: in W1 (3,000 workflows started at once, 64 slots) 98% of the
runs went that way. Now the start hides that task from claims for a lease
(the *hold*), the engine keeps the run's first event and runs the step
when a slot frees (:func:`retold.engine._machine.first_step`). A run that
moved meanwhile (a signal) has its task shown at once; an engine that
closes shows every held task; an engine that dies holds them for one lease.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import anyio
import pytest

import retold
from retold.engine._ahead import RunAhead
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import StartRequest, open_store
from tests.conftest import count_calls

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite", "postgres", "nats"])
def every_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each kind of store (the rule is the state machine's, applied by each store)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue(f"{request.param}_url"))


@retold.activity
async def double(i: int) -> int:
    return 2 * i


@retold.workflow
async def three(n: int) -> int:
    total = 0
    for i in range(3):
        total += await retold.execute(double, n + i)
    return total


@retold.workflow
async def greet(name: str) -> str:
    return f"hello {name}"


@retold.workflow
async def sleeps() -> None:
    time.sleep(0.001)  # not allowed in workflow code: every attempt of its first step fails


class _Unseen(OrderedDict[str, Any]):
    """Runs waiting for their first step that the engine's loop never sees: no slot ever frees for them."""

    def __len__(self) -> int:
        return 0


async def test_runs_started_with_no_free_slot_take_their_first_step_here_without_claim_or_read(
    every_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(every_url)
    loads = count_calls(store, "load", monkeypatch)
    async with retold.Engine(store=store, workflows=[three], activities=[double], workflow_concurrency=2,
                             poll_interval=0.05) as engine:
        first_steps = count_calls(engine.runs, "first_step", monkeypatch)  # type: ignore[arg-type]
        claimed: list[int] = []
        claim = store.claim_workflow_tasks

        async def counted_claim(*args: Any, **options: Any) -> Any:
            got = await claim(*args, **options)
            claimed.append(len(got))
            return got

        monkeypatch.setattr(store, "claim_workflow_tasks", counted_claim)
        runs: list[retold.RunHandle[int]] = []

        async def start(n: int) -> None:
            runs.append(await engine.start(three, n))

        async with anyio.create_task_group() as tg:  # 30 starts ask for one of 2 slots at once
            for n in range(30):
                tg.start_soon(start, n)
        results = sorted([await run.result(timeout=60) for run in runs])
    assert results == [6 * n + 6 for n in range(30)]
    assert first_steps[0] >= 20  # most found no slot at their start
    assert sum(claimed) == 0, claimed  # none of them was claimed: no workflow task was ever handed out
    assert loads[0] == 0  # and no history was read


async def _start_held(runs: Runs, workflow_id: str, hold: float) -> tuple[str, ev.WorkflowStarted]:
    started: list[ev.Event] = []
    record, created = await runs.start(StartRequest("greet", workflow_id, b'["x"]', "h"), None, started, hold=hold)
    assert created
    assert isinstance(started[0], ev.WorkflowStarted)
    return record.run_id, started[0]


def _completed(result: bytes) -> list[ev.Event]:
    return [ev.WorkflowCompleted(seq=2, at=0.0, result=result)]


async def test_a_held_first_task_is_hidden_from_claims_and_spent_by_the_first_step(every_url: str) -> None:
    store = open_store(every_url)
    await store.open()
    try:
        runs = Runs(store)
        run_id, started = await _start_held(runs, "held", hold=60)
        assert started.seq == 1
        assert started.input == b'["x"]'
        assert await store.claim_workflow_tasks("other", ["greet"], 10, 5.0) == []  # hidden for the hold
        assert await runs.first_step(run_id, _completed(b'"done"'))
        record = await store.get_run(run_id)
        assert record is not None
        assert (record.status, record.result, record.last_seq) == ("completed", b'"done"', 2)
        assert await store.claim_workflow_tasks("other", ["greet"], 10, 5.0) == []  # the task is spent
    finally:
        await store.close()


async def test_a_first_step_never_goes_to_a_run_that_moved_or_was_taken(every_url: str) -> None:
    store = open_store(every_url)
    await store.open()
    try:
        runs = Runs(store)
        # A signal came first: the step (which did not see it) is dropped and the
        # task, still never claimed, is shown to claims at once instead of after the hold.
        moved, _ = await _start_held(runs, "moved", hold=60)
        await runs.signal(moved, "extra", b'"!"')
        assert not await runs.first_step(moved, _completed(b'"stale"'))
        assert await store.claim_workflow_tasks("other", ["greet"], 10, 5.0) == [moved]
        record = await store.get_run(moved)
        assert record is not None
        assert (record.status, record.last_seq) == ("running", 2)
        # Another engine took the task (its hold had ended): nothing is written.
        taken, _ = await _start_held(runs, "taken", hold=0.0)
        assert await store.claim_workflow_tasks("other", ["greet"], 10, 5.0) == [taken]
        assert not await runs.first_step(taken, _completed(b'"stale"'))
        record = await store.get_run(taken)
        assert record is not None
        assert (record.status, record.last_seq) == ("running", 1)
        # A closed run: nothing either.
        closed, _ = await _start_held(runs, "closed", hold=60)
        await runs.terminate(closed, "stop")
        assert not await runs.first_step(closed, _completed(b'"stale"'))
        record = await store.get_run(closed)
        assert record is not None
        assert record.status == "terminated"
    finally:
        await store.close()


async def test_an_engine_that_closes_shows_the_first_tasks_it_held(
    every_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if every_url == "memory://":
        pytest.skip("one engine per in-memory store: nobody else could take the runs")
    monkeypatch.setattr(RunAhead, "_prepare_start", _no_slot)  # every start finds no free slot
    async with retold.Engine(every_url, workflows=[greet], lease=60.0, poll_interval=0.05) as first:
        assert first.workflow_worker is not None
        first.workflow_worker.deferred = _Unseen()
        ids = [str((await first.start(greet, f"n{i}")).run_id) for i in range(5)]
        assert sorted(first.workflow_worker.deferred) == sorted(ids)
    monkeypatch.undo()
    async with retold.Engine(every_url, workflows=[greet], poll_interval=0.05) as second:
        with anyio.fail_after(30):  # held for the lease (60 s) had the first engine not shown them
            results = [await second.get_handle(run_id).result() for run_id in ids]
    assert results == [f"hello n{i}" for i in range(5)]


async def test_a_first_step_that_fails_shows_its_task_at_once(
    every_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RunAhead, "_prepare_start", _no_slot)  # every start finds no free slot
    async with retold.Engine(every_url, workflows=[sleeps], lease=60.0, poll_interval=0.05) as engine:
        run = await engine.start(sleeps)
        with anyio.fail_after(30):  # held for the lease (60 s) had the failed step not shown it
            while (record := await engine.store.get_run(str(run.run_id))) is None or record.task_failure is None:
                await anyio.sleep(0.05)
    assert "time.sleep" in record.task_failure.failure.message


async def _no_slot(self: RunAhead, definition: Any, request: Any) -> None:
    return None


_STARTER = textwrap.dedent("""
    import sys
    from collections import OrderedDict

    import anyio
    import retold
    from retold.engine._ahead import RunAhead

    @retold.workflow
    async def greet(name: str) -> str:
        return f"hello {name}"

    class Unseen(OrderedDict):
        def __len__(self):
            return 0  # no first step runs here before the kill

    async def no_slot(self, definition, request):
        return None  # every start finds no free slot

    RunAhead._prepare_start = no_slot

    async def main():
        async with retold.Engine(sys.argv[1], workflows=[greet], lease=2.0, poll_interval=0.05) as engine:
            engine.workflow_worker.deferred = Unseen()
            ids = [(await engine.start(greet, f"n{i}")).run_id for i in range(5)]
            print(" ".join(ids), flush=True)
            await anyio.sleep_forever()

    anyio.run(main)
""")


async def test_runs_held_by_an_engine_killed_with_sigkill_are_claimed_after_the_hold(
    shared_url: str, tmp_path: Path,
) -> None:
    script = tmp_path / "starter.py"
    script.write_text(_STARTER)
    with subprocess.Popen([sys.executable, str(script), shared_url], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    ids = line.split()
    assert len(ids) == 5, line
    async with retold.Engine(shared_url, workflows=[greet], poll_interval=0.05) as engine:
        with anyio.fail_after(60):  # hidden for the dead engine's lease (2 s), then claimed
            results = [await engine.get_handle(run_id).result() for run_id in ids]
    assert results == [f"hello n{i}" for i in range(5)]
