"""Claims workflow tasks, advances runs on their deterministic loops, commits."""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from .._logging import bind_run
from ..errors import (
    ConflictError,
    LeaseLostError,
    NondeterminismError,
    NotRegisteredError,
    RetoldError,
    StoreError,
    WorkflowDeadlockError,
)
from ..history import events as ev
from ..runtime._instance import WorkflowInstance, failure_from_exception
from ..runtime._replay import activate, replay
from ..stores import SUSPECT_LAPSES, StartRequest
from ._machine import ActivityTake
from ._schedules import wakes_others

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["WorkflowWorker"]

log = logging.getLogger("retold.engine")

_QUEUED_KEPT = 10_000  # runs started here waiting for a claim, remembered for their waiters
# Runs started here without their first step, kept to be stepped here without a claim or a read:
# at most this many, with at most this many bytes of input (past either, they wait for a claim).
_DEFERRED_KEPT = 4096
_DEFERRED_KEPT_BYTES = 16 * 2**20

_STEP = "retold workflow task"  # the tasks' name (given: anyio would work one out per task)


class WorkflowWorker:
    """The loop that runs workflow tasks for one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.limit = anyio.CapacityLimiter(engine.workflow_concurrency)
        self._names = sorted(engine.workflows)
        self.processing: set[str] = set()
        self._claimed_again: set[str] = set()  # claimed while being processed here
        # Runs whose task's last attempt ended without a result (a worker died
        # holding it): claimed one at a time, so that a task that kills its
        # worker takes as few other tasks down with it as possible.
        self.suspects: set[str] = set()
        self._activities_since: float | None = None  # activity attempts running here since (monotonic)
        # Runs claimed by a claim that may have taken a suspect, until their
        # task is loaded (and known to be a suspect or not); and the lock that
        # keeps activity claims from racing such a claim in this process.
        self.checking: set[str] = set()
        # Runs this engine started without their first step (no slot was free),
        # until a claim takes them: known running, so their waiters need no read.
        self.queued: OrderedDict[str, None] = OrderedDict()
        # Of those, the ones whose first step this engine runs when a slot frees (their first
        # event as stored), before it claims anything: no claim, no read (see RunAhead.first_step).
        self.deferred: OrderedDict[str, ev.WorkflowStarted] = OrderedDict()
        self._deferred_bytes = 0
        self._reserved = 0  # room made in ``deferred`` for starts being stored
        self.claim_lock = anyio.Lock()
        # Suspect steps and attempts run one at a time (each alone in the process).
        self.suspect_lock = anyio.Lock()
        # Suspect runs waiting for their turn (another suspect is processed
        # here): not running yet, so not waited for by the one that runs.
        self.waiting: set[str] = set()

    async def run(self) -> None:
        """Claim and process workflow tasks until cancelled."""
        engine = self._engine
        async with anyio.create_task_group() as tg:
            while True:
                # While a suspect is processed here, nothing else is taken on:
                # if it kills this process, it takes no other task down with it.
                want = 0 if engine.draining or self.suspects else min(int(self.limit.available_tokens), 256)
                # First, the first steps of runs started here when no slot was free:
                # no claim, no read. Only free slots: the next steps of runs under
                # way wait for slots ahead of them (see RunAhead._slot).
                while want > 0 and self.deferred:
                    run_id, started = self._take_deferred()
                    if run_id in self.processing:
                        continue  # claimed meanwhile: that claim's processing goes on
                    self.processing.add(run_id)
                    slot = object()
                    self.limit.acquire_on_behalf_of_nowait(slot)
                    tg.start_soon(engine.ahead.first_step, started, run_id, slot, name=_STEP)
                    want -= 1
                claimed: list[str] = []
                if want > 0:
                    async with self.claim_lock:
                        may = self._may_take_a_suspect()
                        claimed = await engine.store.claim_workflow_tasks(
                            engine.worker_id, self._names, want, engine.lease,
                            suspects=1 if may else 0, fingerprint=engine.fingerprint,
                        )
                        if may:
                            self.checking.update(claimed)
                for run_id in claimed:
                    if run_id in self.processing:
                        self.checking.discard(run_id)
                        # Our own lease lapsed mid-task, or a fast-path step is being
                        # committed: the task is leased to us now, so it is processed
                        # again when that ends (not left until the lease runs out).
                        self._claimed_again.add(run_id)
                        continue
                    self.processing.add(run_id)
                    slot = object()
                    await self.limit.acquire_on_behalf_of(slot)
                    tg.start_soon(self._process_and_release, run_id, slot, name=_STEP)
                if want == 0 or len(claimed) < want:
                    # Everything ready is taken (or no slot is free): new work,
                    # or a freed slot, sets the wake-up.
                    await engine.wake_workflows.wait(engine.poll_interval)

    def started_unstepped(self, run_id: str) -> None:
        """Note a run started here whose first step waits for a claim, or for a slot here (see :attr:`queued`)."""
        self.queued[run_id] = None
        while len(self.queued) > _QUEUED_KEPT:  # taken by other engines: forgotten in time
            self.queued.popitem(last=False)

    def reserve_deferred(self, request: StartRequest) -> bool:
        """Make room in :attr:`deferred` for a run about to be started without its first step; False if full.

        Every True is followed by :meth:`end_reserved`, once the start is stored or failed.
        """
        size = len(request.input)
        if len(self.deferred) + self._reserved >= _DEFERRED_KEPT or self._deferred_bytes + size > _DEFERRED_KEPT_BYTES:
            return False
        self._reserved += 1
        self._deferred_bytes += size
        return True

    def end_reserved(self, request: StartRequest, run: tuple[str, ev.WorkflowStarted] | None) -> None:
        """Fill the room made for a start: with its run (id, first event as stored), or nothing (not created)."""
        self._reserved -= 1
        if run is None:
            self._deferred_bytes -= len(request.input)
            return
        run_id, started = run
        self.deferred[run_id] = started
        self._engine.wake_workflows.set()

    def _take_deferred(self) -> tuple[str, ev.WorkflowStarted]:
        run_id, started = self.deferred.popitem(last=False)
        self._deferred_bytes -= len(started.input)
        return run_id, started

    def _forget_deferred(self, run_id: str) -> None:
        started = self.deferred.pop(run_id, None)
        if started is not None:
            self._deferred_bytes -= len(started.input)

    def _may_take_a_suspect(self) -> bool:
        """Whether a claim may take a task whose last worker died.

        Not while another suspect is processed here, nor while a task taken
        by an earlier claim that may have taken one is not loaded yet: only
        its load tells whether it is a suspect, and a second suspect taken
        meanwhile would only wait here for its turn (see :meth:`_alone`),
        holding its task, which another engine could be running. Nor while an
        activity attempt runs here: if that attempt kills this process (an
        activity that calls ``os._exit``), the death would be counted against
        the suspect, and a healthy run beside a deadly activity could be
        quarantined. Activities running for longer than a few leases do not
        keep suspects waiting forever: after that, one is taken anyway.
        """
        if self.suspects or self.checking:
            return False
        engine = self._engine
        if not any(worker.held for worker in engine.activity_workers):
            self._activities_since = None
            return True
        now = time.monotonic()
        if self._activities_since is None:
            self._activities_since = now
        return now - self._activities_since > max(4 * engine.lease, 20.0)

    async def _process_and_release(self, run_id: str, slot: object) -> None:
        try:
            await self.process(run_id)
        finally:
            self.checking.discard(run_id)
            self.suspects.discard(run_id)
            self.release(run_id, slot)

    async def process(self, run_id: str) -> None:
        """Advance one run with every event it has not seen, retrying conflicts.

        Inputs that reach the run while a step is computed wait in its inbox
        and follow the step's commands in the same commit; the task stays
        ours, and the next step, with the cached instance, folds them in. So
        a run makes progress at any signal rate, without replaying.
        """
        engine = self._engine
        conflicts = 0
        marked = False
        self.queued.pop(run_id, None)
        self._forget_deferred(run_id)  # claimed before its turn here: stepped by this claim
        instance = engine.cache.take(run_id)
        while True:
            commands: list[ev.Event] = []
            take: ActivityTake | None = None
            began = time.time_ns()
            try:
                run, events = await engine.store.load(run_id, instance.last_seq if instance else 0)
                bind_run(run.workflow, run.workflow_id, run_id)
                if run.status != "running":
                    if instance is not None:
                        instance.close()
                    return
                if run.task_attempts >= engine.max_workflow_task_attempts and await self._quarantined(run_id):
                    if instance is not None:
                        instance.close()
                    return
                self.checking.discard(run_id)
                if run.task_lapses >= SUSPECT_LAPSES and not marked:
                    # Its last holders died (or stalled) twice in a row: the step runs
                    # alone here, under the stepping mark, so a death counts against it alone.
                    await self._alone(run_id)
                    if not await engine.runs.mark_stepping(run_id, engine.worker_id):
                        raise LeaseLostError(run_id, engine.worker_id, None)
                    marked = True
                if instance is None:
                    definition = engine.workflows.get(run.workflow)
                    if definition is None:
                        raise NotRegisteredError("workflow", run.workflow)
                    engine.cache.replays += 1
                    fresh, completion = await engine.steps.run(
                        run_id, functools.partial(replay, definition, run_id, engine.codec, events))
                    instance = fresh
                else:
                    completion = await engine.steps.run(run_id, functools.partial(activate, instance, events))
                commands = completion.unwrap()
                take, reserved = engine.ahead.reserve(commands)
                try:
                    last = await engine.runs.commit_workflow_task(
                        run_id, engine.worker_id, instance.last_seq, commands, take
                    )
                    engine.ahead.start_taken(take, reserved)
                finally:
                    for worker, tokens in reserved:
                        worker.unreserve(tokens)
            except LeaseLostError as exc:
                # We stalled past the lease and another worker owns the task:
                # its work stands, ours is dropped.
                if instance is not None:
                    instance.close()
                log.warning("workflow task refused: %s", exc)
                engine.telemetry.lease_lost("workflow")
                return
            except ConflictError:
                if instance is not None:
                    instance.close()
                    instance = None
                conflicts += 1
                if conflicts >= 20:
                    log.warning("run %s kept conflicting; its workflow task will be retried", run_id)
                    return
                continue
            except StoreError as exc:
                # The database, not the workflow, failed: this is not one of the
                # task's attempts. The lease lapses and the task comes back.
                if instance is not None:
                    instance.close()
                log.warning("workflow task for run %s hit a store error: %s", run_id, exc)
                return
            except Exception as exc:  # noqa: BLE001 - any failure is the task's failure
                if instance is not None and not isinstance(exc, WorkflowDeadlockError):
                    instance.close()  # (a deadlocked one is still in its abandoned thread: dropped)
                await self._fail(run_id, exc, instance, began)
                return
            # The instance has seen up to its own last command.
            seen = instance.last_seq + len(commands)
            instance.committed(seen)
            engine.telemetry.workflow_task(instance, began, commands)
            self.after_commit(run_id, commands, taken=len(take.taken) if take else 0,
                               relatives=wakes_others(instance.has_relatives, instance.workflow_id))
            if instance.finished:
                instance.close()
                return
            if last > seen and not engine.draining:
                continue  # inputs came in during the step: the task is still ours, go on
            engine.cache.put(instance)
            if last > seen:
                engine.wake_workflows.set()
            return

    def release_slot(self, slot: object) -> None:
        """Give back a workflow slot taken for no run yet."""
        self.limit.release_on_behalf_of(slot)
        if self.limit.available_tokens == 1:
            self._engine.wake_workflows.set()  # the loop may be waiting for a slot

    def release(self, run_id: str, slot: object) -> None:
        """Give back a workflow slot held for ``run_id`` (processed again at once if it was claimed meanwhile)."""
        if run_id in self._claimed_again:
            self._claimed_again.discard(run_id)
            if not self._engine.draining:
                self._engine.spawn(self._process_and_release, run_id, slot)  # same slot, still processing
                return
        self.processing.discard(run_id)
        self.limit.release_on_behalf_of(slot)
        if self.limit.available_tokens == 1:
            self._engine.wake_workflows.set()  # the loop may be waiting for a slot

    async def _alone(self, run_id: str) -> None:
        """Wait for this suspect's turn, then (a while at most) until no other step and no attempt is in flight here.

        Suspects take turns: one found while another suspect's step or
        attempt is processed here waits until that one ends, and is not
        waited for by it (two suspects waiting for each other would both
        wait out the time limit, then run together). Then the suspect's step
        runs alone: if it kills this process, no other run's step is running
        (and counted as a death of that run's), and no other suspect's.
        """
        engine = self._engine
        self.waiting.add(run_id)
        try:
            while self.suspects:
                await anyio.sleep(0.01)
        finally:
            self.waiting.discard(run_id)
        self.suspects.add(run_id)  # (no await since the loop above saw none: one suspect at a time)
        with anyio.move_on_after(max(2 * engine.lease, 10.0)):
            while self.processing - self.waiting - {run_id} or any(
                worker.held - worker.waiting for worker in engine.activity_workers
            ):
                await anyio.sleep(0.01)

    async def _quarantined(self, run_id: str) -> bool:
        """Block (or fail) a run whose workflow task keeps killing its workers; True if it was.

        A death counts when the task is claimed after its holder's lease ran
        out while a marked step of it was running (the worker died:
        ``os._exit``, an OOM kill, a crash in a C extension), so a task that
        kills every worker that runs it stops after
        ``max_workflow_task_attempts`` of them instead of taking workers down
        forever, and a healthy task that happened to be held by a dying worker
        never counts one.
        """
        engine = self._engine
        block = engine.on_workflow_task_failure == "block"
        outcome = await engine.runs.quarantine(
            run_id, engine.worker_id, engine.max_workflow_task_attempts, engine.workflow_task_retry_delay,
            block=block, fingerprint=engine.fingerprint)
        if outcome is None:
            return False
        message = "workers died while running this workflow task"
        log.error("run %s quarantined (%s): %s", run_id, outcome, message)
        engine.feeds.notify(run_id)
        engine.telemetry.workflow_task_failed(run_id, None, time.time_ns(), RuntimeError(message), outcome == "failed")
        if outcome == "failed":
            engine.notify_closed(run_id)
            engine.wake_workflows.set()  # a parent, children, or a schedule's buffered fire have work
        else:
            engine.wake_timers.set()
        return True

    async def _fail(self, run_id: str, exc: Exception, instance: WorkflowInstance | None, began: int) -> None:
        engine = self._engine
        block = engine.on_workflow_task_failure == "block"
        what = "is blocked" if block else "failed"
        if not isinstance(exc, RetoldError):
            log.exception("workflow task for run %s %s (code %s)", run_id, what, engine.fingerprint, exc_info=exc)
        else:
            log.warning("workflow task for run %s %s (code %s): %s", run_id, what, engine.fingerprint, exc)
        failure = failure_from_exception(exc, non_retryable=True)
        if isinstance(exc, NondeterminismError):
            failure = replace(failure, seq=exc.seq)  # the diverging event
        failed = await engine.runs.fail_workflow_task(
            run_id, engine.worker_id, failure,
            delay=engine.workflow_task_retry_delay, max_attempts=engine.max_workflow_task_attempts,
            block=block, fingerprint=engine.fingerprint,
        )
        engine.telemetry.workflow_task_failed(run_id, instance, began, exc, failed)
        engine.feeds.notify(run_id)
        if failed:
            engine.notify_closed(run_id)
            engine.wake_workflows.set()  # a parent, children, or a schedule's buffered fire have work
        engine.wake_timers.set()

    def after_commit(
        self, run_id: str, commands: Sequence[ev.Event], *, taken: int, relatives: bool
    ) -> None:
        engine = self._engine
        engine.feeds.notify(run_id)
        scheduled = sum(1 for cmd in commands if type(cmd) is ev.ActivityScheduled)
        if scheduled > taken:  # some may be for activities no running engine hosts
            engine.hosting.scheduled(run_id, commands)
        for cmd in commands:
            kind: Any = type(cmd)
            if kind is ev.ActivityScheduled:
                if scheduled > taken:  # some are left for a claim
                    engine.wake_activities.set()
            elif kind is ev.TimerStarted:
                engine.wake_timers.set()
            elif isinstance(cmd, ev.ActivityCancelRequested):
                # An attempt running here learns of it now (elsewhere: at its lease renewal).
                for worker in engine.activity_workers:
                    worker.stop_scheduled(run_id, cmd.scheduled, report=cmd.wait)
            elif kind is ev.ChildWorkflowStarted or kind is ev.ExternalSignalRequested \
                    or kind is ev.WorkflowStartRequested:
                engine.wake_workflows.set()  # a new run, or a signalled one, has work
            elif kind in ev.TERMINAL_TYPES:
                engine.notify_closed(run_id)
                if relatives or kind is ev.WorkflowContinuedAsNew:
                    engine.wake_workflows.set()  # a parent, children or the new run have work
