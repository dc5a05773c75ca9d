"""Property: whatever the interleaving of cancels, retries, lease expiries and new runs,
every recorded activity result lands on the run, event and attempt that produced it."""

from __future__ import annotations

import anyio
import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retold.engine import ActivityStep, ActivityTake
from retold.engine._runs import Runs
from retold.errors import ConflictError, RunNotFoundError
from retold.history import events as ev
from retold.history.failure import Failure
from retold.stores import ActivityOutcome, ActivityTask, StartRequest, Store
from tests.conftest import Clock, postgres_base_url, postgres_schema, store_for

# One step of the schedule: (operation, which item, which owner).
_OPS = st.lists(
    st.tuples(st.sampled_from(["start", "claim", "complete", "retry", "cancel", "expire", "step", "purge"]),
              st.integers(0, 7), st.sampled_from(["w1", "w2"])),
    min_size=1, max_size=40,
)


async def _play(store: Store, clock: Clock, ops: list[tuple[str, int, str]]) -> None:
    runs: list[str] = []
    gone: set[str] = set()  # purged
    held: list[tuple[ActivityTask, str]] = []
    for op, index, owner in ops:
        if op == "start":
            record, _ = await Runs(store).start(StartRequest("wf", f"w{len(runs) + len(gone)}", b"[]", "h"))
            assert await store.claim_workflow_tasks("setup", ["wf"], 100, 5.0)
            await Runs(store).commit_workflow_task(record.run_id, "setup", 1, [
                ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={"task_queue": "q"})])
            runs.append(record.run_id)
        elif op == "claim":
            held += [(task, owner) for task in await store.claim_activity_tasks(owner, "q", ["a"], 2, 5.0)]
        elif op in ("complete", "retry") and held:
            task, holder = held.pop(index % len(held))
            tag = orjson.dumps([task.run_id, task.seq, task.attempt])
            outcome = (ActivityOutcome("completed", result=tag) if op == "complete" else
                       ActivityOutcome("failed", failure=Failure(type="E", message=tag.decode()), retry_delay=0.0))
            await Runs(store).finish_activity(task, holder, outcome)
        elif op == "step" and held:
            # The fast path: the outcome with the run's next step, which schedules another activity
            # leased at once to the same owner (in the transaction that records the outcome).
            task, holder = held.pop(index % len(held))
            tag = orjson.dumps([task.run_id, task.seq, task.attempt])
            outcome = ActivityOutcome("completed", result=tag)
            try:
                last = (await store.get_run(task.run_id)).last_seq
            except RunNotFoundError:
                last = 0
            take = ActivityTake(holder, 5.0, frozenset({"a"}), {"q": 1})
            step = ActivityStep(task.run_id, last, outcome.event(seq=last + 1, at=0, scheduled=task.seq,
                                                                  attempt=task.attempt),
                                [ev.ActivityScheduled(seq=last + 2, at=0, activity="a", input=b"[]",
                                                      options={"task_queue": "q"})], take)
            if await Runs(store).finish_activity(task, holder, outcome, step) and step.stepped:
                held += [(taken, holder) for taken in take.taken]
            else:
                assert take.taken == []
        elif op == "purge":
            clock.now += 1.0
            await store.purge(clock.now, statuses=None, workflow=None, batch_size=10, dry_run=False)
            for run_id in list(runs):
                try:
                    await store.get_run(run_id)
                except RunNotFoundError:
                    runs.remove(run_id)
                    gone.add(run_id)
        elif op == "cancel" and runs:
            run_id = runs[index % len(runs)]
            record = await store.get_run(run_id)
            if record.status == "running":
                await Runs(store).request_cancel(run_id, "test")
                claimed = await store.claim_workflow_tasks("closer", ["wf"], 100, 5.0)
                if run_id in claimed:
                    for _ in range(3):  # as an engine does: inputs that waited in the inbox come first
                        last = (await store.get_run(run_id)).last_seq
                        try:
                            await Runs(store).commit_workflow_task(
                                run_id, "closer", last, [ev.WorkflowCancelled(seq=last + 1, at=0)])
                            break
                        except ConflictError:
                            continue
                for other in claimed:  # hand the others back
                    if other != run_id:
                        await Runs(store).release_leases("closer")
        elif op == "expire":
            clock.now += 6.0  # every lease runs out: the next claim is a new attempt
        # The property, after every step: each recorded result is its own attempt's.
        for run_id in runs:
            _, history = await store.load(run_id, 0)
            for event in history:
                if isinstance(event, ev.ActivityCompleted):
                    assert orjson.loads(event.result) == [run_id, event.scheduled, event.attempt]


def _check(url: str, ops: list[tuple[str, int, str]]) -> None:
    async def main() -> None:
        clock = Clock()
        store = store_for(url, clock)
        await store.open()
        try:
            await _play(store, clock, ops)
        finally:
            await store.close()

    anyio.run(main)


# The two ways a stale attempt was taken for another: its task deleted and the
# id reused by a new run's task, and its lease run out and the task claimed again.
_REUSED_ID = [("start", 0, "w1"), ("claim", 0, "w1"), ("cancel", 0, "w1"), ("start", 0, "w1"),
              ("claim", 0, "w1"), ("complete", 0, "w1")]
# A run whose workflow task another owner left leased: the cancel waits in its inbox.
_INBOX_AT_CLOSE = [("start", 0, "w1"), ("claim", 0, "w1"), ("complete", 0, "w1"), ("start", 0, "w1"),
                   ("expire", 0, "w1"), ("cancel", 0, "w1")]
# The fast path: an outcome recorded with the run's next step, whose activity is leased at once; then
# that run is cancelled and purged while the new attempt runs, and another run's task is claimed.
_STEPPED = [("start", 0, "w1"), ("claim", 0, "w1"), ("step", 0, "w1"), ("cancel", 0, "w1"), ("purge", 0, "w1"),
            ("start", 0, "w2"), ("claim", 0, "w2"), ("complete", 0, "w1"), ("complete", 0, "w2")]
_RECLAIMED = [("start", 0, "w1"), ("claim", 0, "w1"), ("expire", 0, "w1"), ("claim", 0, "w1"),
              ("complete", 0, "w1")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
@example(ops=_REUSED_ID)
@example(ops=_RECLAIMED)
@example(ops=_INBOX_AT_CLOSE)
@example(ops=_STEPPED)
def test_results_land_on_their_own_attempt_sqlite(ops: list[tuple[str, int, str]]) -> None:
    _check("sqlite://", ops)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
@example(ops=_REUSED_ID)
@example(ops=_RECLAIMED)
@example(ops=_INBOX_AT_CLOSE)
@example(ops=_STEPPED)
def test_results_land_on_their_own_attempt_memory(ops: list[tuple[str, int, str]]) -> None:
    _check("memory://", ops)


def test_results_land_on_their_own_attempt_postgres() -> None:
    postgres_base_url()  # skips, saying why, without a server

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=_OPS)
    @example(ops=_REUSED_ID)
    @example(ops=_RECLAIMED)
    @example(ops=_INBOX_AT_CLOSE)
    @example(ops=_STEPPED)
    def check(ops: list[tuple[str, int, str]]) -> None:
        with postgres_schema() as url:
            _check(url, ops)

    check()


