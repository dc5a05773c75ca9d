"""What only the NATS store has: copies that agree, URLs, a log others can read."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from retold.engine._runs import Runs
from retold.errors import ConfigurationError, ConflictError, LeaseLostError
from retold.history import events as ev
from retold.stores import StartRequest
from retold.stores.nats import NatsStore
from retold.stores.nats._url import parse_url
from retold.testing.store_contract import ManualClock

pytestmark = pytest.mark.anyio


async def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (checked every 20 ms), failing after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


def state(store: NatsStore) -> dict[str, Any]:
    """A process's copy of the state, in an order of its own (not the dicts')."""
    view = store._view
    return {
        "runs": sorted((r.run_id, r.status, r.last_seq, r.result, r.closed_at) for r in view.runs.values()),
        "events": sorted((run_id, tuple(ev.encode_event(e) for e in events))
                         for run_id, events in view.events.items()),
        "wfts": sorted((w.run_id, w.owner, w.expires, w.attempts, w.signals, w.visible_at)
                       for w in view.wfts.values()),
        "inbox": sorted((run_id, tuple((i, ev.encode_event(e)) for i, e in items))
                        for run_id, items in view.inbox.items()),
        "tasks": sorted((t.id, t.run_id, t.seq, t.queue, t.attempt, t.owner, t.input) for t in view.tasks.values()),
        "queues": sorted((q, sorted(tasks)) for q, tasks in view.queues.items()),
        "timers": sorted((run_id, sorted(timers.items())) for run_id, timers in view.timers.items()),
        "entries": sorted((e.workflow_id, e.current_run_id, e.input_hash) for e in view.workflows.values()),
        "ids": (view.next_task_id, view.next_inbox_id),
    }


async def _busy(store: NatsStore, runs: int, signals: int) -> list[str]:
    """Start ``runs`` runs, give each a timer and an activity, and send ``signals`` signals to each."""
    from retold.stores._plan import NewActivity, Plan

    ids = [(await Runs(store).start(StartRequest("wf", f"w{i}-{uuid.uuid4().hex[:6]}", b"[]", "h")))[0].run_id
           for i in range(runs)]
    for run_id in ids:
        now = store.now()
        await store.transact(lambda tx, r=run_id, t=now: tx.apply(Plan(  # type: ignore[misc]
            run_id=r, timers=[(7, t + 3600)],
            activities=[NewActivity(seq=8, activity="act", queue="q", input=b"[1]", options={}, deadline=None)])))
        for n in range(signals):
            await Runs(store).signal(run_id, "s", str(n).encode())
    return ids


async def _stream_first_seq(store: NatsStore) -> int:
    return await store._client.call(store._c_first_seq)  # type: ignore[union-attr]


async def test_a_snapshot_replaces_the_log_before_it(nats_url: str) -> None:
    # Every 25 messages the writer of the 25th saves the state and deletes the log before it; a
    # process opening afterwards starts from the snapshot and holds the same state as the writer.
    writer = NatsStore(nats_url, snapshot_every=25)
    await writer.open()
    try:
        await _busy(writer, runs=6, signals=8)  # 6 starts + 6 plans + 48 signals: 60 messages
        await wait_for(lambda: writer.snapshot_seq >= 50)
        first = await _stream_first_seq(writer)
        assert first == writer.snapshot_seq + 1  # the log before the snapshot is gone
        reader = NatsStore(nats_url, snapshot_every=25)
        await reader.open()
        try:
            assert reader.snapshot_seq == writer.snapshot_seq  # it began from the snapshot
            await writer.get_run(writer._view.runs.__iter__().__next__())
            assert state(reader) == state(writer)
            # Both go on from there: the reader's writes reach the writer and the other way round.
            run_id = next(iter(reader._view.runs))
            await Runs(reader).signal(run_id, "late", b"1")
            await Runs(writer).signal(run_id, "later", b"2")
            await reader.get_run(run_id)
            await writer.get_run(run_id)
            assert state(reader) == state(writer)
        finally:
            await reader.close()
    finally:
        await writer.close()


async def test_a_process_behind_the_deleted_log_catches_up_from_the_snapshot(nats_url: str) -> None:
    # A process that stopped following the log (a long disconnection) while others snapshotted and
    # deleted what it had not read yet finds the gap when it follows again, and loads the snapshot.
    writer = NatsStore(nats_url, snapshot_every=20)
    behind = NatsStore(nats_url, snapshot_every=20)
    await writer.open()
    await behind.open()
    try:
        await _busy(writer, runs=2, signals=1)
        await behind.get_run(next(iter(writer._view.runs)))
        position = behind._seq
        await behind._client.call(behind._sub.unsubscribe)  # type: ignore[union-attr]
        await _busy(writer, runs=5, signals=8)
        await wait_for(lambda: writer.snapshot_seq > position + 1)
        assert await _stream_first_seq(writer) > position + 1  # what it would read next is gone
        assert behind._seq == position
        await behind._client.call(behind._c_subscribe)  # type: ignore[union-attr]
        await behind.get_run(next(iter(writer._view.runs)))  # caught up
        assert behind.snapshot_seq == writer.snapshot_seq
        assert state(behind) == state(writer)
    finally:
        await behind.close()
        await writer.close()


async def test_without_snapshots_the_log_is_kept_whole(nats_url: str) -> None:
    store = NatsStore(f"{nats_url}&snapshot_every=0")
    await store.open()
    try:
        await _busy(store, runs=3, signals=10)
        assert await _stream_first_seq(store) == 1
        assert store.snapshot_seq == 0
    finally:
        await store.close()


async def test_copies_agree_after_writers_conflict(nats_url: str) -> None:
    # Two processes claim, finish and wake 12 runs at once, all due at the same instant (the clock
    # stands still): their operations collide, and each refused one is undone in that copy (which
    # moves the keys it removed to the end of their dicts). Every copy must still decide the same.
    clock = ManualClock()
    stores = [NatsStore(nats_url, clock=clock, lease_clock=clock) for _ in range(2)]
    for store in stores:
        await store.open()
    try:
        runs = [(await Runs(stores[0]).start(StartRequest("wf", f"w{i}", b"[]", "h")))[0].run_id
                for i in range(12)]

        async def work(store: NatsStore, owner: str) -> None:
            for _ in range(30):
                for run_id in await store.claim_workflow_tasks(owner, ["wf"], 2, 60.0):
                    run = await store.get_run(run_id)
                    with contextlib.suppress(ConflictError, LeaseLostError):
                        await Runs(store).commit_workflow_task(run_id, owner, run.last_seq, [])
                    await Runs(store).signal(run_id, "again", b"1")

        async with anyio.create_task_group() as tg:
            for i, store in enumerate(stores):
                tg.start_soon(work, store, f"owner-{i}")
        # A third process folds the whole log from the start.
        third = NatsStore(nats_url, clock=clock, lease_clock=clock)
        await third.open()
        stores.append(third)
        for store in stores:
            await store.get_run(runs[0])  # caught up with the stream
        first = state(stores[0])
        assert len(first["runs"]) == 12
        assert sum(e[0] == "SignalReceived" for _, events in first["events"] for e in events) >= 30
        assert state(stores[1]) == first
        assert state(third) == first
    finally:
        for store in stores:
            await store.close()


async def test_a_refused_operation_undone_leaves_the_same_choices() -> None:
    # Undoing a refused operation puts the rows it removed back at the end of their dicts; the
    # copy must still choose as a copy that never saw it (the same claim, the same due timers).
    from retold.stores._plan import Plan, TaskChange, Tx
    from retold.stores.nats._view import View as _View

    clock = ManualClock()
    views = [_View(clock, clock), _View(clock, clock)]
    for view in views:
        for i in range(3):
            def start(tx: Tx, view: _View = view, i: int = i) -> None:
                Runs(view).start_in(tx, StartRequest("wf", f"w{i}", b"[]", "h"), run_id=f"r{i}")
                tx.apply(Plan(run_id=f"r{i}", timers=[(9, clock.now)]))

            view.transact_sync(start)
        view.take_journals()
    for table in ("wfts", "timers"):
        assert list(getattr(views[0], table)) == ["r0", "r1", "r2"]
    views[0].transact_sync(lambda tx: tx.apply(Plan(run_id="r0", task=TaskChange("done"), drop_timers=[9])))
    for journal in reversed(views[0].take_journals()):
        journal.rollback()
    assert list(views[0].wfts) == ["r1", "r2", "r0"]  # the undone removal moved r0
    claims = [await view.claim_workflow_tasks("o", ["wf"], 1, 5.0) for view in views]
    assert claims == [["r0"], ["r0"]]
    due = [view.transact_sync(lambda tx: tx.take_due_timers(1)) for view in views]
    assert due == [[("r0", 9)], [("r0", 9)]]
    assert [view.transact_sync(lambda tx: tx.leased_runs("o")) for view in views] == [["r0"], ["r0"]]


def test_urls() -> None:
    assert parse_url("nats://127.0.0.1:4222") == (["nats://127.0.0.1:4222"], "retold", 1, 10_000)
    assert parse_url("nats://a:1,b:2?prefix=shop&replicas=3&snapshot_every=0") == (
        ["nats://a:1", "nats://b:2"], "shop", 3, 0)
    with pytest.raises(ConfigurationError, match="invalid snapshot_every"):
        parse_url("nats://a:1?snapshot_every=-5")
    with pytest.raises(ConfigurationError, match="invalid NATS store URL"):
        parse_url("nats://")
    with pytest.raises(ConfigurationError, match="unknown option"):
        parse_url("nats://a:1?replica=3")
    with pytest.raises(ConfigurationError, match="invalid prefix"):
        parse_url("nats://a:1?prefix=a.b")
    with pytest.raises(ConfigurationError, match="invalid replicas"):
        parse_url("nats://a:1?replicas=7")


async def test_an_activity_step_refused_at_publish_is_not_taken_for_stored(nats_url: str) -> None:
    """An activity outcome with the run's next step, whose publish another process beat with a signal to
    that run: the transaction runs again on the caught-up copy and records the outcome alone. The engine
    must not be told the step (and the activity it leased at once, with an id given back) was stored."""
    from retold.engine import ActivityStep, ActivityTake
    from retold.stores import ActivityOutcome, ActivityTask, Tx

    clock = ManualClock()
    store = NatsStore(nats_url, clock=clock, lease_clock=clock)
    await store.open()
    try:
        run_id = (await Runs(store).start(StartRequest("wf", "w", b"[]", "h")))[0].run_id
        assert await store.claim_workflow_tasks("setup", ["wf"], 10, 60.0) == [run_id]
        await Runs(store).commit_workflow_task(run_id, "setup", 1, [
            ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={"task_queue": "q"})])
        [task] = await store.claim_activity_tasks("me", "q", ["a"], 10, 60.0)

        def other_process_signals() -> None:
            async def signal() -> None:
                other = NatsStore(nats_url, clock=clock, lease_clock=clock)
                await other.open()
                try:
                    await Runs(other).signal(run_id, "go", b"1")
                finally:
                    await other.close()

            anyio.run(signal)

        runs_seen: list[bool] = []

        class SignalledMeanwhile(Runs):
            def finish_in(self, tx: Tx, task: ActivityTask, owner: str, outcome: ActivityOutcome,
                          step: ActivityStep | None = None) -> bool:
                recorded = super().finish_in(tx, task, owner, outcome, step)
                runs_seen.append(step is not None and step.stepped)
                if len(runs_seen) == 1:  # before this copy publishes, another process writes first
                    thread = threading.Thread(target=other_process_signals)
                    thread.start()
                    thread.join(30)
                return recorded

        outcome = ActivityOutcome("completed", result=b"7")
        take = ActivityTake("me", 60.0, frozenset({"a"}), {"q": 1})
        step = ActivityStep(run_id, 2, outcome.event(seq=3, at=0, scheduled=task.seq, attempt=task.attempt),
                            [ev.ActivityScheduled(seq=4, at=0, activity="a", input=b"[]",
                                                  options={"task_queue": "q"})], take)
        assert await SignalledMeanwhile(store).finish_activity(task, "me", outcome, step)
        assert runs_seen == [True, False]  # the publish was refused, and the rerun found the run moved
        assert not step.stepped
        assert take.taken == []
        _, history = await store.load(run_id, 0)
        assert [e.type for e in history] == [
            "WorkflowStarted", "ActivityScheduled", "SignalReceived", "ActivityCompleted"]
        assert store._view.tasks == {}  # no task: the one the undone step leased was never stored
    finally:
        await store.close()
