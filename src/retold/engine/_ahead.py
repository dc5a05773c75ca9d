"""The fast path: an engine that hosts a run and holds a slot computes its next step at once.

One component owns it. :meth:`RunAhead.start` (called once by a start) and
:meth:`RunAhead.finish_activity` (called once by the activity worker) run
the workflow code ahead on the input they are about to record (the
``WorkflowStarted``, the activity's outcome), and hand the commands to
:class:`~._runs.Runs` with the input: the state machine decides whether
the step still applies (the run has not moved, nobody holds its task), and
the store records both in one transaction. The activities the step
schedules that this engine hosts come leased to it (slots reserved here).
Nothing of this is in the store protocol: it sees a start, or an outcome,
with a step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from .._ids import uuid4_str
from ..authoring import Workflow
from ..errors import StoreError, WorkflowDeadlockError
from ..history import events as ev
from ..runtime import WorkflowInstance, activate
from ..stores import ActivityOutcome, ActivityTask, RunRecord, StartRequest
from . import _machine as m
from ._machine import ActivityStep, ActivityTake, StartStep
from ._schedules import wakes_others

if TYPE_CHECKING:
    from ._activity_worker import ActivityWorker, Handoff
    from ._engine import Engine
    from ._workflow_worker import WorkflowWorker

__all__ = ["RunAhead"]

log = logging.getLogger("retold.engine")


_S = TypeVar("_S", ActivityStep, StartStep)
_SLOT_WAIT = 0.5  # seconds an outcome waits for a workflow slot to go with its run's next step, at most


@dataclass(slots=True)
class PendingStep(Generic[_S]):
    """A run advanced past its start or an activity outcome, waiting for the store to commit both."""

    step: _S
    instance: WorkflowInstance
    reserved: list[tuple[ActivityWorker, list[object]]]
    slot: object
    began: int = 0  # time.time_ns() when the step began (its span's start)
    handoff: Handoff | None = None  # the attempt whose outcome this step goes with (see start_taken)


class RunAhead:
    """Slot reservation and running ahead, for the engine's starts and activity outcomes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def _worker(self) -> WorkflowWorker:
        worker = self._engine.workflow_worker
        assert worker is not None
        return worker

    async def start(self, definition: Workflow[..., Any] | None, request: StartRequest) -> tuple[RunRecord, bool]:
        """Store a start; a run this engine hosts gets its first step with it when a slot is free."""
        engine = self._engine
        hosting = engine.workflow_worker is not None and definition is not None
        pending = await self._prepare_start(definition, request) if hosting and definition is not None else None
        created = False
        # No slot free: the first step waits for one here, its task hidden from claims meanwhile.
        defer = hosting and pending is None and not request.start_delay and self._worker.reserve_deferred(request)
        started: list[ev.Event] = []  # the first event as stored, of a run started without its first step
        try:
            record, created = await engine.runs.start(
                request, pending.step if pending else None, started, hold=engine.lease if defer else None)
        finally:
            if pending is not None:
                self._finish_step(pending, created)
            if defer:
                first = started[0] if created and started else None
                if isinstance(first, ev.WorkflowStarted):
                    self._worker.end_reserved(request, (record.run_id, first))
                else:
                    self._worker.end_reserved(request, None)
        if created and (pending is None or not pending.step.stepped):
            if hosting:
                self._worker.started_unstepped(record.run_id)
            engine.wake_workflows.set()
        return record, created

    async def first_step(self, started: ev.WorkflowStarted, run_id: str, slot: object) -> None:
        """Run and record the first step of a run this engine started without one (no slot was free then).

        ``slot`` is a workflow slot already held for it. Recorded only if
        nothing touched the run since its start (see :func:`._machine.first_step`);
        otherwise, or if the code raised, the run's workflow task, still in
        the store, takes its usual course: claimed, loaded, run again.
        """
        engine = self._engine
        definition = engine.workflows.get(started.workflow)
        if definition is None:
            self._worker.release(run_id, slot)
            return
        began = time.time_ns()
        instance = WorkflowInstance(definition, run_id, engine.codec)
        ahead = await self._run_ahead(instance, started, slot)
        if ahead is None:  # the code raised: the run's workflow task meets that again, at once
            try:
                await engine.runs.unhold([run_id])
            except StoreError as exc:
                log.warning("first workflow task of run %s stays hidden until its hold ends: %s", run_id, exc)
            engine.wake_workflows.set()
            return
        commands, take, reserved, slot = ahead
        pending = PendingStep(StartStep(run_id, started, commands, take), instance, reserved, slot, began)
        applied = False
        try:
            applied = await engine.runs.first_step(run_id, commands, take)
        except StoreError as exc:
            log.warning("first step of run %s not recorded: %s", run_id, exc)
        finally:
            pending.step.stepped = applied
            self._finish_step(pending, applied)
        if applied:
            self._worker.queued.pop(run_id, None)  # stepped: its waiters hear of its close from here
        else:
            engine.wake_workflows.set()  # its workflow task waits in the store

    async def finish_activity(
        self, task: ActivityTask, outcome: ActivityOutcome, handoff: Handoff | None = None,
    ) -> tuple[bool, bool]:
        """Record an attempt's outcome, with the run's next step if it is cached here.

        ``handoff``: the attempt's, which may run an activity the step leases to its worker.

        Returns (recorded, stepped): whether the outcome was recorded (False:
        this worker no longer holds the attempt), and whether the step went
        with it. Raises StoreError if the store failed (nothing recorded).
        """
        engine = self._engine
        pending = await self._prepare_step(task, outcome) if engine.workflow_worker is not None else None
        if pending is not None:
            pending.handoff = handoff
        recorded = False
        try:
            recorded = await engine.runs.finish_activity(
                task, engine.worker_id, outcome, pending.step if pending is not None else None)
        finally:
            if pending is not None:
                self._finish_step(pending, recorded)
        return recorded, pending is not None and pending.step.stepped

    async def _prepare_step(self, task: ActivityTask, outcome: ActivityOutcome) -> PendingStep[ActivityStep] | None:
        """Advance a cached run past a final activity outcome, before it is recorded.

        The activity worker hands the result to :meth:`Store.finish_activity`,
        which commits the outcome and these commands together, or, if the run
        moved meanwhile, records the outcome alone. Returns None when the run
        is not cached here, is being processed, or no workflow slot is free.
        """
        engine = self._engine
        run_id = task.run_id
        if not self._may_step(run_id, outcome):
            return None
        slot = await self._slot()
        if slot is None:
            return None
        if not self._may_step(run_id, outcome):  # (it may have waited for the slot)
            self._worker.release_slot(slot)
            return None
        began = time.time_ns()
        instance = engine.cache.take(run_id)
        assert instance is not None
        expected = instance.last_seq
        event = outcome.event(seq=expected + 1, at=engine.store.now(), scheduled=task.seq, attempt=task.attempt)
        ahead = await self._run_ahead(instance, event, slot)
        if ahead is None:
            return None
        commands, take, reserved, slot = ahead
        return PendingStep(ActivityStep(run_id, expected, event, commands, take), instance, reserved, slot, began)

    def _may_step(self, run_id: str, outcome: ActivityOutcome) -> bool:
        """Whether an outcome may go with its run's next step, run here (slots aside)."""
        engine = self._engine
        return outcome.final and not engine.draining and not self._worker.suspects \
            and run_id not in self._worker.processing and run_id in engine.cache

    async def _slot(self) -> object | None:
        """A workflow slot for a run's next step: a free one, or one freed soon; None if none frees in time.

        A step that waits its turn here commits with the outcome that caused
        it; one that gave up would cost the run a transaction of its own, a
        claim and a read. The wait is short beside the lease, which the
        attempt's task is not renewed for meanwhile.
        """
        limit = self._worker.limit
        slot = object()
        if limit.available_tokens >= 1:
            limit.acquire_on_behalf_of_nowait(slot)
            return slot
        with anyio.move_on_after(min(_SLOT_WAIT, self._engine.lease / 4)):
            await limit.acquire_on_behalf_of(slot)
            return slot
        return None

    async def _prepare_start(
        self, definition: Workflow[..., Any], request: StartRequest
    ) -> PendingStep[StartStep] | None:
        """Run a new run's first workflow task before the start is stored.

        :meth:`Store.start` stores the commands with the run (see
        :class:`StartStep`). Returns None when no workflow slot is free.
        """
        engine = self._engine
        if engine.draining or self._worker.suspects or self._worker.limit.available_tokens < 1:
            return None
        began = time.time_ns()
        run_id = uuid4_str()
        instance = WorkflowInstance(definition, run_id, engine.codec)
        started = ev.WorkflowStarted(seq=1, at=engine.store.now(), workflow=request.workflow,
                                     workflow_id=request.workflow_id, input=request.input,
                                     headers=request.headers, search_attributes=request.search_attributes or None,
                                     memo=request.memo or None)
        started = replace(started, timeouts=m.start_timeouts(request, started.at))
        ahead = await self._run_ahead(instance, started)
        if ahead is None:
            return None
        commands, take, reserved, slot = ahead
        return PendingStep(StartStep(run_id, started, commands, take), instance, reserved, slot, began)

    async def _run_ahead(
        self, instance: WorkflowInstance, event: ev.Event, slot: object | None = None,
    ) -> tuple[list[ev.Event], ActivityTake | None, list[tuple[ActivityWorker, list[object]]], object] | None:
        """Feed ``event`` to ``instance`` in a workflow slot (``slot``, or a free one) held until :meth:`finish_step`.

        Returns the commands, the activity slots reserved for them and the
        held slot; None (the slot given back, the instance dropped) if the
        code raised: the workflow task will meet that again and deal with it.
        """
        if slot is None:
            slot = object()
            self._worker.limit.acquire_on_behalf_of_nowait(slot)
        self._worker.processing.add(instance.run_id)
        try:
            commands = (await self._engine.steps.run(instance.run_id, lambda: activate(instance, [event]))).unwrap()
        except BaseException as exc:
            if not isinstance(exc, WorkflowDeadlockError):
                instance.close()
            self._worker.release(instance.run_id, slot)
            if not isinstance(exc, Exception):
                raise
            return None
        take, reserved = self.reserve(commands)
        return commands, take, reserved, slot

    def _finish_step(self, pending: PendingStep[Any], recorded: bool) -> None:
        """Keep the run's new state if the store committed the step; forget it otherwise."""
        step, instance = pending.step, pending.instance
        try:
            if recorded and step.stepped:
                instance.committed(step.last_seq)
                self._engine.telemetry.workflow_task(instance, pending.began, step.commands)
                if instance.finished:
                    instance.close()
                else:
                    self._engine.cache.put(instance)
                self.start_taken(step.take, pending.reserved, pending.handoff)
                self._worker.after_commit(step.run_id, step.commands,
                                   taken=len(step.take.taken) if step.take else 0,
                                   relatives=wakes_others(instance.has_relatives, instance.workflow_id))
            else:
                instance.close()  # it saw an outcome that was not committed as its input
        finally:
            for worker, tokens in pending.reserved:
                worker.unreserve(tokens)
            self._worker.release(step.run_id, pending.slot)

    def reserve(
        self, commands: list[ev.Event]
    ) -> tuple[ActivityTake | None, list[tuple[ActivityWorker, list[object]]]]:
        """Slots for the hosted activities these commands schedule (the same-process fast path)."""
        engine = self._engine
        wanted: dict[str, int] = {}
        for cmd in commands:
            if isinstance(cmd, ev.ActivityScheduled) and cmd.activity in engine.activities:
                queue = cmd.options.get("task_queue", "default")
                wanted[queue] = wanted.get(queue, 0) + 1
        if not wanted or self._worker.suspects or self._worker.checking:
            # While a suspect task is processed here, attempts go to the queue:
            # if the suspect kills this process, they are not lost with it.
            return None, []
        reserved: list[tuple[ActivityWorker, list[object]]] = []
        slots: dict[str, int] = {}
        for worker in engine.activity_workers:
            if worker.queue in wanted:
                tokens = worker.reserve(wanted[worker.queue])
                if tokens:
                    reserved.append((worker, tokens))
                    slots[worker.queue] = len(tokens)
        if not slots:
            return None, reserved
        return ActivityTake(engine.worker_id, engine.lease, frozenset(engine.activities), slots), reserved

    @staticmethod
    def start_taken(
        take: ActivityTake | None, reserved: list[tuple[ActivityWorker, list[object]]],
        handoff: Handoff | None = None,
    ) -> None:
        if take is None:
            return
        tokens_of = {worker.queue: (worker, tokens) for worker, tokens in reserved}
        for task in take.taken:
            worker, tokens = tokens_of[task.queue]
            worker.start_taken(task, tokens, handoff)

