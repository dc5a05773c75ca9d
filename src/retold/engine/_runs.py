"""Runs: each input to a run decided by the state machine, and recorded by the store, in one transaction.

This is the only caller of :mod:`._machine`. Every method here reads what
the machine needs through a :class:`~retold.stores._plan.Tx`, asks the
machine, and applies its plan; the inputs a plan gives other runs (a parent
told its child closed, children asked to cancel) are decided and applied in
the same transaction, so they are never lost between two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConflictError, RunFinishedError, RunNotFoundError, StoreError
from ..history import events as ev
from ..stores._plan import Tx
from ..stores._protocol import ActivityOutcome, ActivityTask, RunRecord, StartRequest, Store
from . import _machine as m
from ._machine import ActivityStep, ActivityTake, Decision, StartStep

__all__ = ["Runs"]

DEFAULT_MAX_PENDING_SIGNALS = 10_000


def _children_taken(tx: Tx, commands: Sequence[ev.Event]) -> set[str]:
    """The ids among the commands' new children that are already in use."""
    return {cmd.workflow_id for cmd in commands
            if type(cmd) is ev.ChildWorkflowStarted and tx.entry(cmd.workflow_id) is not None}


def _open_children(tx: Tx, run_id: str, commands: Sequence[ev.Event]) -> list[str]:
    if any(isinstance(cmd, ev.TERMINAL_TYPES) and type(cmd) is not ev.WorkflowContinuedAsNew for cmd in commands):
        return tx.open_children(run_id)
    return []


class Runs:
    """Starts runs and feeds them their inputs, through a :class:`~retold.stores.Store`."""

    def __init__(self, store: Store, *, max_pending_signals: int | None = None) -> None:
        self.store = store
        if max_pending_signals is None:
            max_pending_signals = getattr(store, "max_pending_signals", DEFAULT_MAX_PENDING_SIGNALS)
        if max_pending_signals < 1:
            raise StoreError(f"max_pending_signals must be at least 1, got {max_pending_signals}")
        self.max_pending_signals = max_pending_signals

    # -- inside a transaction --------------------------------------------------------

    @staticmethod
    def _apply(tx: Tx, decision: Decision, take: ActivityTake | None = None) -> None:
        """Apply a decision and, in turn, the inputs it gives other runs."""
        leased = tx.apply(decision.plan)
        if take is not None:
            by_seq = {task.seq: task for task in decision.leased}
            run_id = decision.plan.run_id
            workflow_id = ""
            for new in decision.plan.runs:
                if new.run_id == run_id:
                    workflow_id = new.workflow_id
            if leased and not workflow_id:
                state = tx.run(run_id)
                workflow_id = state.record.workflow_id if state is not None else ""
            now = tx.now()
            take.taken = [
                ActivityTask(id=task_id, run_id=run_id, workflow_id=workflow_id, seq=seq,
                             activity=by_seq[seq].activity, queue=queue, input=by_seq[seq].input,
                             options=dict(by_seq[seq].options), attempt=1, scheduled_at=now)
                for queue, task_id, seq in leased
            ]
        for run_id, event in decision.deliveries:
            Runs._deliver(tx, run_id, event)

    @staticmethod
    def _deliver(tx: Tx, run_id: str, event: ev.Event, max_signals: int | None = None) -> bool:
        """Give a run an input; False if it is closed."""
        plan = m.deliver(tx.run(run_id, inbox=True), event, tx.now(), max_signals=max_signals)
        if plan is None:
            return False
        tx.apply(plan)
        return True

    # -- the inputs ------------------------------------------------------------------

    async def start(self, request: StartRequest, step: StartStep | None = None) -> tuple[RunRecord, bool]:
        """Create a run, or return the run already started with this id or key.

        With ``step``, a new run gets ``step.run_id`` and its first step at
        once (see :class:`~retold.engine._machine.StartStep`).
        """

        def body(tx: Tx) -> tuple[RunRecord, bool]:
            # Twice at most: a concurrent start of the same id or key
            # (possible on PostgreSQL) claims the id first; then it is "existing".
            for _ in range(2):
                entry = tx.entry(request.workflow_id, request.idempotency_key)
                if entry is not None:
                    run = tx.run(m.existing(request, entry))
                    if run is None:
                        raise RunNotFoundError(entry.first_run_id)
                    return run.record, False
                commands = step.commands if step is not None else ()
                decision = m.start(request, tx.now(), step, taken_ids=_children_taken(tx, commands))
                try:
                    self._apply(tx, decision, step.take if step is not None else None)
                except ConflictError:
                    continue
                if step is not None:
                    step.stepped = True
                run = tx.run(decision.plan.run_id)
                assert run is not None
                return run.record, True
            raise StoreError(f"could not start workflow id {request.workflow_id!r}: its record keeps changing")

        return await self.store.transact(body, outside=True)

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

        def body(tx: Tx) -> int:
            run = tx.run(run_id, inbox=True)
            if run is None:
                raise RunNotFoundError(run_id)
            decision = m.commit(run, owner, expected_seq, commands, tx.now(), take=take,
                                taken_ids=_children_taken(tx, commands),
                                open_children=_open_children(tx, run_id, commands))
            self._apply(tx, decision, take)
            last = decision.plan.last_seq
            assert last is not None
            return -1 if decision.refused else last

        last = await self.store.transact(body)
        if last < 0:
            raise ConflictError(run_id, expected_seq)
        return last

    async def fail_workflow_task(
        self, run_id: str, owner: str, failure: dict[str, Any], delay: float, max_attempts: int,
        *, final: bool = False,
    ) -> bool:
        """Back off a failed workflow task, or fail the run (see :func:`._machine.workflow_task_failed`).

        Returns True if the run was failed for good.
        """

        def body(tx: Tx) -> bool:
            run = tx.run(run_id, inbox=True)
            if run is None:
                return False
            decision = m.workflow_task_failed(
                run, owner, failure, delay, max_attempts, tx.now(), final=final,
                open_children=tx.open_children(run_id) if run.task is not None else ())
            if decision is None:
                return False
            self._apply(tx, decision)
            return decision.closed

        return await self.store.transact(body)

    async def finish_activity(
        self, task: ActivityTask, owner: str, outcome: ActivityOutcome, step: ActivityStep | None = None
    ) -> bool:
        """Record an attempt's outcome; False if this owner no longer holds that attempt.

        Fenced on the attempt's identity (task id, run id, event number,
        attempt) and the lease: a stale attempt never lands on another run.
        With ``step`` (a final outcome), the run's next step is committed
        with it if the run has not moved (see :class:`._machine.ActivityStep`).
        """

        def body(tx: Tx) -> bool:
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
                run = tx.run(row.run_id, inbox=False)
                decision = m.stepped(run, step, row, now, taken_ids=_children_taken(tx, step.commands),
                                     open_children=_open_children(tx, row.run_id, step.commands))
                if decision is not None:
                    self._apply(tx, decision, step.take)
                    step.stepped = True
                    return True
            self._deliver(tx, row.run_id, event)
            return True

        return await self.store.transact(body)

    async def fire_timers(self, limit: int) -> int:
        """Fire up to ``limit`` due timers and time out overdue activity tasks; return the events appended."""

        def body(tx: Tx) -> int:
            now = tx.now()
            fired = 0
            for run_id, seq in tx.take_due_timers(limit):
                fired += self._deliver(tx, run_id, ev.TimerFired(seq=0, at=now, started=seq))
            # Activity tasks past their schedule-to-close deadline that nobody
            # is running (a running attempt is cut off by its worker).
            for row in tx.take_overdue_tasks(limit):
                fired += self._deliver(tx, row.run_id, ev.ActivityTimedOut(
                    seq=0, at=now, scheduled=row.seq, attempt=row.attempt, kind="schedule_to_close",
                    failure=row.last_failure))
            return fired

        return await self.store.transact(body)

    async def _input(self, ident: str, event: ev.Event, max_signals: int | None = None) -> str:
        def body(tx: Tx) -> str:
            run = tx.run(ident, inbox=True)
            if run is None:
                raise RunNotFoundError(ident)
            now = tx.now()
            plan = m.deliver(run, replace(event, at=now), now, max_signals=max_signals)
            if plan is None:
                raise RunFinishedError(run.run_id, run.record.status)
            tx.apply(plan)
            return run.run_id

        return await self.store.transact(body, outside=True)

    async def signal(self, run_or_workflow_id: str, name: str, payload: bytes) -> str:
        """Record a signal for the run, durably; return its run id.

        Raises RunFinishedError if the run is closed, SignalBufferFullError
        if it has too many unprocessed signals; neither writes anything.
        """
        return await self._input(run_or_workflow_id, ev.SignalReceived(seq=0, at=0.0, name=name, input=payload),
                                 self.max_pending_signals)

    async def request_cancel(self, run_or_workflow_id: str, reason: str) -> str:
        """Ask a run to cancel; return its run id (RunFinishedError if it is closed)."""
        return await self._input(run_or_workflow_id, ev.CancelRequested(seq=0, at=0.0, reason=reason))

    async def release_leases(self, owner: str) -> None:
        """Hand back every task ``owner`` holds; what waited in its runs' inboxes joins their histories."""

        def body(tx: Tx) -> None:
            for run_id in tx.leased_runs(owner):
                run = tx.run(run_id, inbox=True)
                plan = m.release(run) if run is not None else None
                if plan is not None:
                    tx.apply(plan)

        await self.store.transact(body)
        await self.store.release_leases(owner)
