"""Runs: each input to a run decided by the state machine, and recorded by the store, in one transaction.

This is the only caller of :mod:`._machine`. Every method here reads what
the machine needs through a :class:`~retold.stores._plan.Tx`, asks the
machine, and applies its plan; the inputs a plan gives other runs (a parent
told its child closed, children asked to cancel) are decided and applied in
the same transaction, so they are never lost between two.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from ..errors import ConflictError, RunFinishedError, RunNotFoundError, StoreError
from ..history import events as ev
from ..history.attributes import merge
from ..history.failure import Failure
from ..stores._plan import RunState, Tx
from ..stores._protocol import ActivityOutcome, ActivityTask, RunRecord, StartRequest, Store
from . import _machine as m
from ._machine import NO_LOOKUPS, ActivityStep, ActivityTake, Decision, Lookups, StartStep
from ._schedules import fired_schedule, start_buffered_in

__all__ = ["Runs"]

DEFAULT_MAX_PENDING_SIGNALS = 10_000


def _lookups(tx: Tx, run_id: str, commands: Sequence[ev.Event]) -> Lookups:
    """Read what the commands need from other records (see :class:`._machine.Lookups`)."""
    taken: set[str] = set()
    targets: dict[str, RunState | None] = {}
    children: list[str] = []
    for cmd in commands:
        kind = type(cmd)
        if (kind is ev.ChildWorkflowStarted or kind is ev.WorkflowStartRequested) \
                and tx.entry(cmd.workflow_id) is not None:  # type: ignore[attr-defined]
            taken.add(cmd.workflow_id)  # type: ignore[attr-defined]
        elif kind is ev.ExternalSignalRequested:
            wid = cmd.workflow_id  # type: ignore[attr-defined]
            targets[wid] = tx.run(wid)
        elif kind in ev.TERMINAL_TYPES and kind is not ev.WorkflowContinuedAsNew:
            children = tx.open_children(run_id)
    if not (taken or targets or children):
        return NO_LOOKUPS
    return Lookups(frozenset(taken), tuple(children), targets)


def _forget(step: m.ActivityStep | m.StartStep | None, take: ActivityTake | None = None) -> None:
    """Clear what an earlier run of this transaction decided: a store may undo a transaction and run it
    again (NATS, after another process wrote first), and a step or leased tasks that run applied were
    undone with it (the task ids given back, to be handed out again)."""
    if step is not None:
        step.stepped = False
        if isinstance(step, m.ActivityStep):
            step.closed = None
        take = step.take
    if take is not None:
        take.taken = []


_CLOSED_KEPT = 1024  # records of runs closed here, kept for their waiters (see Runs.closed)
_CLOSED_KEPT_BYTES = 8 * 1024 * 1024  # and at most this many bytes of their results
_CLOSED_MAX_RESULT = 64 * 1024  # a bigger result is read back from the store instead


def _closed_record(run: RunState, decision: Decision, now: float) -> RunRecord | None:
    """The run's record as the decision's commit leaves it, if the decision closes it."""
    close = decision.plan.close
    if close is None or decision.refused or (close.result is not None and len(close.result) > _CLOSED_MAX_RESULT):
        return None
    record = run.record
    attributes = merge(record.search_attributes, decision.plan.search_attributes or {}) \
        if decision.plan.search_attributes else record.search_attributes
    return replace(
        record, status=close.status, closed_at=now, last_seq=decision.plan.last_seq or record.last_seq,
        result=close.result, failure=close.failure, next_run_id=close.next_run_id,
        task_attempts=0, task_lapses=0, task_failure=None, search_attributes=attributes or None)


class Runs:
    """Starts runs and feeds them their inputs, through a :class:`~retold.stores.Store`."""

    def __init__(self, store: Store, *, max_pending_signals: int | None = None) -> None:
        self.store = store
        # The records of the last runs this process closed in a step, once
        # committed: a caller waiting for one's result needs no read.
        self.closed: OrderedDict[str, RunRecord] = OrderedDict()
        self._closed_bytes = 0
        if max_pending_signals is None:
            max_pending_signals = getattr(store, "max_pending_signals", DEFAULT_MAX_PENDING_SIGNALS)
        if max_pending_signals < 1:
            raise StoreError(f"max_pending_signals must be at least 1, got {max_pending_signals}")
        self.max_pending_signals = max_pending_signals

    # -- inside a transaction --------------------------------------------------------

    def _apply(self, tx: Tx, decision: Decision, take: ActivityTake | None = None) -> None:
        """Apply a decision and, in turn, the inputs it gives other runs (and a schedule the fire it buffered)."""
        leased = tx.apply(decision.plan)
        if take is not None:
            by_seq = {task.seq: task for task in decision.leased}
            run_id, workflow_id = decision.plan.run_id, decision.workflow_id
            now = tx.now()
            take.taken = [
                ActivityTask(id=task_id, run_id=run_id, workflow_id=workflow_id, seq=seq,
                             activity=by_seq[seq].activity, queue=queue, input=by_seq[seq].input,
                             options=dict(by_seq[seq].options), attempt=1, scheduled_at=now)
                for queue, task_id, seq in leased
            ]
        for later in decision.then:
            tx.apply(later)
        for run_id, event in decision.deliveries:
            if isinstance(event, m.ParentClosed):
                self._parent_closed(tx, run_id, event)
            else:
                Runs._deliver(tx, run_id, event)
        close = decision.plan.close
        if close is not None and close.status != "continued":
            workflow_id = decision.workflow_id
            if not workflow_id:
                closed = tx.run(decision.plan.run_id)
                workflow_id = closed.record.workflow_id if closed is not None else ""
            if fired_schedule(workflow_id) is not None:
                start_buffered_in(tx, self, workflow_id)

    def _parent_closed(self, tx: Tx, run_id: str, closed: m.ParentClosed) -> None:
        """Apply a child's parent-close policy (see :func:`._machine.parent_closed`)."""
        run = tx.run(run_id, inbox=True)
        if run is None or not run.open:
            return
        decision = m.parent_closed(run, closed, tx.now(), open_children=tx.open_children(run_id))
        if decision is not None:
            self._apply(tx, decision)

    @staticmethod
    def _for_input(tx: Tx, ident: str) -> RunState | None:
        """A run as :func:`._machine.deliver` reads it: with its inbox only if the machine looks at it."""
        run = tx.run(ident)
        if m.inbox_needed(run):
            assert run is not None
            run = tx.run(run.run_id, inbox=True)
        return run

    @staticmethod
    def _deliver(tx: Tx, run_id: str, event: ev.Event, max_signals: int | None = None) -> bool:
        """Give a run an input; False if it is closed."""
        plan = m.deliver(Runs._for_input(tx, run_id), event, tx.now(), max_signals=max_signals)
        if plan is None:
            return False
        tx.apply(plan)
        return True

    # -- the transactions (synchronous: any store's transaction, or the simulator's) -----

    def start_in(
        self, tx: Tx, request: StartRequest, step: StartStep | None = None, *, run_id: str | None = None,
        started: list[ev.Event] | None = None, hold: float | None = None,
    ) -> tuple[RunRecord, bool]:
        """The transaction of :meth:`start` (``run_id``: the new run's id, for simulations; default random).

        ``started`` receives a new run's first event as stored, when it has no first step; ``hold``: see
        :func:`._machine.start`.
        """
        # Three times at most: a concurrent start of the same id or key
        # (possible on PostgreSQL) claims the id, or follows its closed run,
        # first; then it is "existing".
        for _ in range(3):
            _forget(step)
            entry = tx.entry(request.workflow_id, request.idempotency_key)
            replaces = None
            if entry is not None:
                current = tx.run(entry.current_run_id) if request.id_reuse_policy is not None else None
                found = m.existing(request, entry, current)
                if found is not None:
                    run = tx.run(found)
                    if run is None:
                        continue  # its runs were purged since (PostgreSQL): the id is free again
                    return run.record, False
                replaces = entry.current_run_id  # the policy lets a new run follow the closed one
            commands = step.commands if step is not None else ()
            decision = m.start(request, tx.now(), step, lookups=_lookups(tx, step.run_id if step else "", commands),
                               run_id=run_id, replaces=replaces, hold=hold)
            try:
                self._apply(tx, decision, step.take if step is not None else None)
            except ConflictError:
                continue
            if step is not None:
                step.stepped = True
            elif started is not None:
                started[:] = decision.plan.runs[0].events[:1]
            run = tx.run(decision.plan.run_id)
            assert run is not None
            return run.record, True
        raise StoreError(f"could not start workflow id {request.workflow_id!r}: its record keeps changing")

    def signal_with_start_in(
        self, tx: Tx, request: StartRequest, name: str, payload: bytes, *, run_id: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """The transaction of :meth:`signal_with_start` (``run_id``: a new run's id, for simulations)."""
        now = tx.now()
        signal = ev.SignalReceived(seq=0, at=now, name=name, input=payload)
        # Twice at most, as a start: a concurrent start of the same id claims it
        # first (PostgreSQL), then this one signals the run it started.
        for _ in range(2):
            entry = tx.entry(request.workflow_id, request.idempotency_key)
            run = tx.run(entry.current_run_id, inbox=True) if entry is not None else None
            try:
                decision, created = m.signal_with_start(request, entry, run, signal, now,
                                                        max_signals=self.max_pending_signals, run_id=run_id)
                self._apply(tx, decision)
            except ConflictError:
                continue
            found = tx.run(decision.plan.run_id)
            assert found is not None
            return found.record, created
        raise StoreError(f"could not signal-with-start workflow id {request.workflow_id!r}: "
                         "its record keeps changing")

    def commit_in(
        self, tx: Tx, run_id: str, owner: str, expected_seq: int, commands: Sequence[ev.Event],
        take: ActivityTake | None = None, closed: list[RunRecord] | None = None,
    ) -> int:
        """The transaction of :meth:`commit_workflow_task` (-1: refused, the inbox was recorded instead).

        ``closed`` receives the run's record if the step closes it.
        """
        _forget(None, take)
        if closed is not None:
            closed.clear()
        run = tx.run(run_id, inbox=True)
        if run is None:
            raise RunNotFoundError(run_id)
        now = tx.now()
        decision = m.commit(run, owner, expected_seq, commands, now, take=take,
                            lookups=_lookups(tx, run_id, commands))
        self._apply(tx, decision, take)
        if closed is not None and decision.closed:
            record = _closed_record(run, decision, now)
            if record is not None:
                closed.append(record)
        last = decision.plan.last_seq
        assert last is not None
        return -1 if decision.refused else last

    def fail_in(
        self, tx: Tx, run_id: str, owner: str, failure: Failure, delay: float, max_attempts: int,
        final: bool = False, block: bool = False, fingerprint: str | None = None,
    ) -> bool:
        """The transaction of :meth:`fail_workflow_task`."""
        run = tx.run(run_id, inbox=True)
        if run is None:
            return False
        decision = m.workflow_task_failed(
            run, owner, failure, delay, max_attempts, tx.now(), final=final, block=block, fingerprint=fingerprint,
            open_children=tx.open_children(run_id) if run.task is not None else ())
        if decision is None:
            return False
        self._apply(tx, decision)
        return decision.closed

    def mark_in(self, tx: Tx, run_id: str, owner: str) -> bool:
        """The transaction of :meth:`mark_stepping`."""
        plan = m.stepping_mark(tx.run(run_id), owner)
        if plan is None:
            return False
        tx.apply(plan)
        return True

    def mark_activity_in(self, tx: Tx, task: ActivityTask, owner: str) -> bool:
        """The transaction of :meth:`mark_activity`."""
        tx.run(task.run_id)  # locks the run before its task, in the order commits take them
        plan = m.activity_stepping_mark(tx.task(task.id), task, owner)
        if plan is None:
            return False
        tx.apply(plan)
        return True

    def quarantine_in(
        self, tx: Tx, run_id: str, owner: str, tolerated: int, delay: float, block: bool, fingerprint: str | None,
    ) -> Literal["blocked", "failed"] | None:
        """The transaction of :meth:`quarantine`."""
        run = tx.run(run_id, inbox=True)
        if run is None:
            return None
        decision = m.workers_died_in_steps(
            run, owner, tolerated, delay, tx.now(), block=block, fingerprint=fingerprint,
            open_children=tx.open_children(run_id) if run.task is not None else ())
        if decision is None:
            return None
        self._apply(tx, decision)
        return "failed" if decision.closed else "blocked"

    def finish_in(
        self, tx: Tx, task: ActivityTask, owner: str, outcome: ActivityOutcome, step: ActivityStep | None = None,
    ) -> bool:
        """The transaction of :meth:`finish_activity`."""
        _forget(step)
        tx.prefetch_task(task.id)  # read with the run (PostgreSQL: one round trip)
        tx.run(task.run_id)  # locks the run before its task, in the order commits take them
        row = tx.task(task.id)
        now = tx.now()
        found = m.activity_outcome(row, task, owner, outcome, now)
        if found is None:
            return False
        plan, event = found
        tx.apply(plan)
        if event is None or row is None:
            return True
        if step is not None and step.run_id == row.run_id and type(event) is type(step.event):
            run = tx.run(row.run_id)
            decision = m.stepped(run, step, row, now, lookups=_lookups(tx, row.run_id, step.commands))
            if decision is not None:
                self._apply(tx, decision, step.take)
                step.stepped = True
                if decision.closed and run is not None:
                    step.closed = _closed_record(run, decision, now)
                return True
        self._deliver(tx, row.run_id, event)
        return True

    def fire_timers_in(self, tx: Tx, limit: int) -> int:
        """The transaction of :meth:`fire_timers`."""
        now = tx.now()
        fired = 0
        for run_id, seq in tx.take_due_timers(limit):
            if seq in m.TIMEOUT_KINDS:  # the run's time limit: it closes
                fired += self.time_out_in(tx, run_id, seq)
                continue
            fired += self._deliver(tx, run_id, ev.TimerFired(seq=0, at=now, started=seq))
        # Activity tasks past their schedule-to-close deadline that nobody is
        # running (a running attempt is cut off by its worker).
        for row in tx.take_overdue_tasks(limit):
            fired += self._deliver(tx, row.run_id, ev.ActivityTimedOut(
                seq=0, at=now, scheduled=row.seq, attempt=row.attempt, kind="schedule_to_close",
                failure=row.last_failure))
        return fired

    def time_out_in(self, tx: Tx, run_id: str, timer: int) -> bool:
        """A run's time-limit timer (``RUN_TIMEOUT_TIMER``, ``EXECUTION_TIMEOUT_TIMER``) fired; False if closed."""
        run = tx.run(run_id, inbox=True)
        open_children = tx.open_children(run_id) if run is not None and run.open else []
        decision = m.timed_out(run, timer, tx.now(), open_children=open_children)
        if decision is None:
            return False
        self._apply(tx, decision)
        return True

    def input_in(self, tx: Tx, ident: str, event: ev.Event, max_signals: int | None = None) -> str:
        """The transaction of :meth:`signal` and :meth:`request_cancel`: ``event`` for the run ``ident``."""
        run = self._for_input(tx, ident)
        if run is None:
            raise RunNotFoundError(ident)
        now = tx.now()
        plan = m.deliver(run, replace(event, at=now), now, max_signals=max_signals)
        if plan is None:
            raise RunFinishedError(run.run_id, run.record.status)
        tx.apply(plan)
        return run.run_id

    def update_in(self, tx: Tx, run_id: str, event: ev.UpdateAccepted, validated_seq: int) -> None:
        """The transaction of :meth:`accept_update`."""
        plan = m.accept_update(self._for_input(tx, run_id), replace(event, at=tx.now()), validated_seq)
        if plan is None:
            run = tx.run(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            raise RunFinishedError(run_id, run.record.status)
        tx.apply(plan)

    def terminate_in(self, tx: Tx, ident: str, reason: str) -> str:
        """The transaction of :meth:`terminate`."""
        run = tx.run(ident, inbox=True)
        if run is None:
            raise RunNotFoundError(ident)
        open_children = tx.open_children(run.run_id) if run.open else []
        decision = m.terminate(run, reason, tx.now(), open_children=open_children)
        if decision is None:
            raise RunFinishedError(run.run_id, run.record.status)
        self._apply(tx, decision)
        return run.run_id

    def release_in(self, tx: Tx, owner: str) -> None:
        """The transaction before :meth:`release_leases` hands ``owner``'s leases back."""
        for run_id in tx.leased_runs(owner):
            run = tx.run(run_id, inbox=True)
            plan = m.release(run) if run is not None else None
            if plan is not None:
                tx.apply(plan)

    # -- the inputs ------------------------------------------------------------------

    async def start(
        self, request: StartRequest, step: StartStep | None = None, started: list[ev.Event] | None = None,
        hold: float | None = None,
    ) -> tuple[RunRecord, bool]:
        """Create a run, or return the run already started with this id or key.

        With ``step``, a new run gets ``step.run_id`` and its first step at
        once (see :class:`~retold.engine._machine.StartStep`); without,
        ``started`` receives the new run's first event as stored, and
        ``hold`` hides its workflow task for that long (see :func:`._machine.start`).
        """
        record, created = await self.store.transact(
            lambda tx: self.start_in(tx, request, step, started=started, hold=hold), outside=True)
        if created and record.status != "running":  # its first step closed it: the record as stored
            self.keep_closed(record)
        return record, created

    async def signal_with_start(self, request: StartRequest, name: str, payload: bytes) -> tuple[RunRecord, bool]:
        """Signal the run of ``request.workflow_id``, starting it first if there is none, in one transaction.

        Returns the run's record and whether it was started. Raises
        IdempotencyError if the id belongs to another workflow,
        RunFinishedError if its run is closed, SignalBufferFullError if it has
        too many unprocessed signals; none of them writes anything.
        """
        return await self.store.transact(lambda tx: self.signal_with_start_in(tx, request, name, payload),
                                         outside=True)

    async def commit_workflow_task(
        self, run_id: str, owner: str, expected_seq: int, commands: Sequence[ev.Event],
        take: ActivityTake | None = None,
    ) -> int:
        """Record a step's commands; return the run's last event number.

        Inputs that reached the run while the task was leased (its inbox)
        follow the commands; the task then stays leased to ``owner`` and the
        number returned is past the commands. Raises ConflictError if the run
        moved, or if the commands would close it while inputs wait (they
        are recorded instead), and LeaseLostError if another owner holds
        the task. With ``take``, its tasks may be leased to its owner at once.
        """
        closed: list[RunRecord] = []
        last = await self.store.transact(
            lambda tx: self.commit_in(tx, run_id, owner, expected_seq, commands, take, closed))
        if last < 0:
            raise ConflictError(run_id, expected_seq)
        for record in closed:
            self.keep_closed(record)
        return last

    async def first_step(self, run_id: str, commands: Sequence[ev.Event], take: ActivityTake | None = None) -> bool:
        """Record a new run's first step, run by the engine that started it; False if the run moved (see
        :func:`._machine.first_step`): nothing is recorded then."""
        closed: list[RunRecord] = []
        applied = await self.store.transact(lambda tx: self.first_step_in(tx, run_id, commands, take, closed))
        for record in closed:
            self.keep_closed(record)
        return applied

    def first_step_in(
        self, tx: Tx, run_id: str, commands: Sequence[ev.Event], take: ActivityTake | None = None,
        closed: list[RunRecord] | None = None,
    ) -> bool:
        """The transaction of :meth:`first_step`."""
        _forget(None, take)
        if closed is not None:
            closed.clear()
        run = tx.run(run_id)
        now = tx.now()
        decision = m.first_step(run, commands, now, take=take, lookups=_lookups(tx, run_id, commands))
        if decision is None:
            return False
        if decision.refused:  # the run moved: its task is shown to claims, nothing else changes
            self._apply(tx, decision)
            return False
        self._apply(tx, decision, take)
        if closed is not None and decision.closed and run is not None:
            record = _closed_record(run, decision, now)
            if record is not None:
                closed.append(record)
        return True

    async def unhold(self, run_ids: Sequence[str]) -> None:
        """Show the held first workflow tasks of these runs to claims at once (see :func:`._machine.unhold`)."""
        if run_ids:
            await self.store.transact(lambda tx: self.unhold_in(tx, run_ids))

    def unhold_in(self, tx: Tx, run_ids: Sequence[str]) -> None:
        """The transaction of :meth:`unhold`."""
        now = tx.now()
        for run_id in run_ids:
            plan = m.unhold(tx.run(run_id), now)
            if plan is not None:
                tx.apply(plan)

    def keep_closed(self, record: RunRecord) -> None:
        """Remember a run this process closed (committed), for callers waiting for it (see :attr:`closed`)."""
        old = self.closed.pop(record.run_id, None)
        if old is not None:
            self._closed_bytes -= len(old.result or b"")
        self.closed[record.run_id] = record
        self._closed_bytes += len(record.result or b"")
        while len(self.closed) > _CLOSED_KEPT or self._closed_bytes > _CLOSED_KEPT_BYTES:
            _, dropped = self.closed.popitem(last=False)
            self._closed_bytes -= len(dropped.result or b"")

    async def fail_workflow_task(
        self, run_id: str, owner: str, failure: Failure, delay: float, max_attempts: int,
        *, final: bool = False, block: bool = False, fingerprint: str | None = None,
    ) -> bool:
        """Back off a failed workflow task, or fail the run (see :func:`._machine.workflow_task_failed`).

        Returns True if the run was failed for good.
        """
        return await self.store.transact(
            lambda tx: self.fail_in(tx, run_id, owner, failure, delay, max_attempts, final, block, fingerprint))

    async def mark_stepping(self, run_id: str, owner: str) -> bool:
        """Set the stepping mark of a suspect task ``owner`` holds (see :func:`._machine.stepping_mark`).

        False if ``owner`` no longer holds it (nothing is written).
        """
        return await self.store.transact(lambda tx: self.mark_in(tx, run_id, owner))

    async def mark_activity(self, task: ActivityTask, owner: str) -> bool:
        """Set the stepping mark of a suspect activity attempt (see :func:`._machine.activity_stepping_mark`).

        False if ``owner`` no longer holds that attempt (nothing is written).
        """
        return await self.store.transact(lambda tx: self.mark_activity_in(tx, task, owner))

    async def quarantine(
        self, run_id: str, owner: str, tolerated: int, delay: float, *, block: bool, fingerprint: str | None = None,
    ) -> Literal["blocked", "failed"] | None:
        """Block or fail a run whose marked steps killed ``tolerated`` workers; None if it need not be.

        See :func:`._machine.workers_died_in_steps`.
        """
        return await self.store.transact(
            lambda tx: self.quarantine_in(tx, run_id, owner, tolerated, delay, block, fingerprint))

    async def finish_activity(
        self, task: ActivityTask, owner: str, outcome: ActivityOutcome, step: ActivityStep | None = None
    ) -> bool:
        """Record an attempt's outcome; False if this owner no longer holds that attempt.

        Fenced on the attempt's identity (task id, run id, event number,
        attempt) and the lease: a stale attempt never lands on another run.
        With ``step`` (a final outcome), the run's next step is committed
        with it if the run has not moved (see :class:`._machine.ActivityStep`).
        """
        finished = await self.store.transact(lambda tx: self.finish_in(tx, task, owner, outcome, step))
        if step is not None and step.closed is not None:
            self.keep_closed(step.closed)
        return finished

    async def fire_timers(self, limit: int) -> int:
        """Fire up to ``limit`` due timers and time out overdue activity tasks; return the events appended.

        What is due is learnt by a read (:meth:`Store.timers_due`): a poll
        that finds nothing due opens no write transaction. When something is,
        one transaction takes what is due then, each timer and task taken
        again under the run's lock, so one fired by another engine, or
        cancelled by its run, since the read is not fired twice.
        """
        timers, tasks = await self.store.timers_due(limit)
        if not (timers or tasks):
            return 0
        return await self.store.transact(lambda tx: self.fire_timers_in(tx, limit))

    async def signal(self, run_or_workflow_id: str, name: str, payload: bytes) -> str:
        """Record a signal for the run, durably; return its run id.

        Raises RunFinishedError if the run is closed, SignalBufferFullError
        if it has too many unprocessed signals; neither writes anything.
        """
        event = ev.SignalReceived(seq=0, at=0.0, name=name, input=payload)
        return await self.store.transact(
            lambda tx: self.input_in(tx, run_or_workflow_id, event, self.max_pending_signals), outside=True)

    async def accept_update(self, run_id: str, event: ev.UpdateAccepted, validated_seq: int) -> None:
        """Record an update whose validator passed on the run's state at ``validated_seq``.

        Raises ConflictError if the run has moved since (validate again),
        RunFinishedError if it closed; neither writes anything.
        """
        await self.store.transact(lambda tx: self.update_in(tx, run_id, event, validated_seq), outside=True)

    async def request_cancel(self, run_or_workflow_id: str, reason: str) -> str:
        """Ask a run to cancel; return its run id (RunFinishedError if it is closed)."""
        event = ev.CancelRequested(seq=0, at=0.0, reason=reason)
        return await self.store.transact(lambda tx: self.input_in(tx, run_or_workflow_id, event), outside=True)

    async def terminate(self, run_or_workflow_id: str, reason: str) -> str:
        """Close a run at once without running its code; return its run id (RunFinishedError if it is closed)."""
        return await self.store.transact(lambda tx: self.terminate_in(tx, run_or_workflow_id, reason), outside=True)

    async def release_leases(self, owner: str) -> None:
        """Hand back every task ``owner`` holds; what waited in its runs' inboxes joins their histories."""
        await self.store.transact(lambda tx: self.release_in(tx, owner))
        await self.store.release_leases(owner)
