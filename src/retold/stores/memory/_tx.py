"""One memory transaction as a :class:`~retold.stores._plan.Tx`: reads, then plans applied.

The same semantics as the SQL store's ``SqlTx`` (the reference): what is
read, what each part of a plan writes, which precondition raises what. Every
write goes through the transaction's :class:`~._data.Journal`, so a body that
raises leaves nothing behind.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import orjson

from ...errors import ConflictError, LeaseLostError, StoreError
from ...history import events as ev
from ...history.attributes import merge
from ...history.failure import BlockedTask, Failure
from .._plan import (
    InboxItem,
    NewRun,
    Plan,
    RunState,
    ScheduleRow,
    TaskChange,
    TaskState,
    WorkflowEntry,
    WorkflowTaskState,
)
from ._data import ActTask, Journal, Run, WfTask, copy_event, json_copy

if TYPE_CHECKING:
    from ._store import MemoryStore

__all__ = ["ACTIVITY", "CLOSED", "WORKFLOW", "MemoryTx", "task_state"]

WORKFLOW, ACTIVITY, CLOSED = "workflow", "activity", "closed"

# A lease that ends further than this in the future is over (as in the SQL store).
LEASE_HORIZON = 86_400.0


def task_state(task: ActTask, owner: str | None) -> TaskState:
    return TaskState(
        id=task.id, run_id=task.run_id, workflow_id=task.workflow_id, seq=task.seq, activity=task.activity,
        queue=task.queue, input=task.input, options=orjson.loads(task.options), attempt=task.attempt,
        scheduled_at=task.scheduled_at, deadline=task.deadline, owner=owner,
        last_failure=Failure.from_json(orjson.loads(task.last_failure)) if task.last_failure is not None else None,
        cancel_requested=task.cancel_requested,
    )


class MemoryTx:
    """The reads and writes of one transaction on a :class:`~._store.MemoryStore`."""

    __slots__ = ("_lease", "_now", "_s", "j")

    def __init__(self, store: MemoryStore, journal: Journal) -> None:
        self._s = store
        self.j = journal
        self._now: float | None = None
        self._lease: float | None = None

    def now(self) -> float:
        if self._now is None:
            self._now = self._s.now()
        return self._now

    def lease_now(self) -> float:
        if self._lease is None:
            self._lease = self._s.lease_now()
        return self._lease

    def free(self, owner: str | None, expires: float | None) -> bool:
        """Whether a task's lease is free: nobody holds it, or it ran out (or is from another clock's era)."""
        if owner is None:
            return True
        lease_now = self.lease_now()
        return expires is None or expires < lease_now or expires > lease_now + LEASE_HORIZON

    def live(self, expires: float | None) -> bool:
        lease_now = self.lease_now()
        return expires is not None and lease_now <= expires <= lease_now + LEASE_HORIZON

    # -- reads ---------------------------------------------------------------------

    def find(self, run_or_workflow_id: str) -> Run | None:
        s = self._s
        run = s.runs.get(run_or_workflow_id)
        if run is None:
            entry = s.workflows.get(run_or_workflow_id)
            if entry is not None:
                run = s.runs.get(entry.current_run_id)
        return run

    def run(self, run_or_workflow_id: str, *, inbox: bool = False) -> RunState | None:
        row = self.find(run_or_workflow_id)
        if row is None:
            return None
        wft = self._s.wfts.get(row.run_id)
        task = None if wft is None else WorkflowTaskState(
            wft.owner, self.live(wft.expires), wft.attempts, wft.signals,
            None if wft.failure is None else BlockedTask.from_json(orjson.loads(wft.failure)), wft.failed_by,
            wft.lapses)
        items: tuple[InboxItem, ...] | None = None
        if inbox:
            items = tuple(InboxItem(i, e) for i, e in self._s.inbox.get(row.run_id, ()))
        return RunState(row.record(), row.parent_seq, task, items)

    def entry(self, workflow_id: str, idempotency_key: str | None = None) -> WorkflowEntry | None:
        s = self._s
        found = None
        if idempotency_key is not None:
            by_key = s.keys.get(idempotency_key)
            found = None if by_key is None else s.workflows.get(by_key)
        return found if found is not None else s.workflows.get(workflow_id)

    def prefetch_task(self, task_id: int) -> None:
        """Nothing to read ahead here."""

    def task(self, task_id: int) -> TaskState | None:
        task = self._s.tasks.get(task_id)
        return None if task is None else task_state(task, task.owner)

    def open_children(self, run_id: str) -> list[str]:
        runs = self._s.runs
        return [c for c in self._s.children.get(run_id, ()) if runs[c].status == "running"]

    def leased_runs(self, owner: str) -> list[str]:
        return sorted(w.run_id for w in self._s.wfts.values() if w.owner == owner)

    def take_due_timers(self, limit: int) -> list[tuple[str, int]]:
        now = self.now()
        due = heapq.nsmallest(limit, ((at, run_id, seq) for run_id, timers in self._s.timers.items()
                                      for seq, at in timers.items() if at <= now))
        for _, run_id, seq in due:
            self._drop_timer(run_id, seq)
        return [(run_id, seq) for _, run_id, seq in due]

    def schedule(self, schedule_id: str, *, skip_locked: bool = False) -> ScheduleRow | None:
        return self._s.schedules.get(schedule_id)

    def schedules(self) -> list[ScheduleRow]:
        return [self._s.schedules[k] for k in sorted(self._s.schedules)]

    def put_schedule(self, row: ScheduleRow) -> None:
        self.j.put(self._s.schedules, row.schedule_id, row)

    def delete_schedule(self, schedule_id: str) -> bool:
        return self.j.pop(self._s.schedules, schedule_id) is not None

    def take_overdue_tasks(self, limit: int) -> list[TaskState]:
        now = self.now()
        tasks = self._s.tasks
        overdue = heapq.nsmallest(limit, (t.id for t in tasks.values() if t.deadline is not None
                                          and t.deadline <= now and self.free(t.owner, t.expires)))
        taken: list[TaskState] = []
        for task_id in overdue:
            task = tasks[task_id]
            self.drop_task(task_id)
            taken.append(task_state(task, None))
        return taken

    # -- writes --------------------------------------------------------------------

    def apply(self, plan: Plan) -> list[tuple[str, int, int]]:
        s, j = self._s, self.j
        now = self.now()
        run_id = plan.run_id
        if plan.expect_owner is not None:
            wft = s.wfts.get(run_id)
            holder = None if wft is None else wft.owner
            if holder != plan.expect_owner:
                raise LeaseLostError(run_id, plan.expect_owner, holder)
        for new in plan.runs:
            self._create(new, now)
        run = s.runs.get(run_id)
        if plan.events:
            if plan.expect_seq is None:
                raise StoreError(f"a plan for run {run_id} appends events without an expected last event number")
            # The fence: the run has not moved, and is open.
            if run is None or run.last_seq != plan.expect_seq or run.status != "running":
                raise ConflictError(run_id, plan.expect_seq)
            j.set(run, "last_seq", plan.expect_seq + len(plan.events))
            self._append(run_id, plan.expect_seq + 1, plan.events, now, keep_first_at=plan.keep_first_at)
        if plan.inbox:
            items = s.inbox.get(run_id)
            if items is None:
                items = []
                j.put(s.inbox, run_id, items)
            added = []
            for event in plan.inbox:
                s_id = s.next_inbox_id
                j.set(s, "next_inbox_id", s_id + 1)
                added.append((s_id, copy_event(event, 0, 0.0)))
            j.extend(items, added)
        if plan.inbox_taken is not None and run_id in s.inbox:
            left = [item for item in s.inbox[run_id] if item[0] > plan.inbox_taken]
            if left:
                j.put(s.inbox, run_id, left)
            else:
                j.pop(s.inbox, run_id)
        leased: list[tuple[str, int, int]] = []
        if plan.activities:
            if run is None:
                raise StoreError(f"a plan schedules activities for run {run_id}, which does not exist")
            leased = self._add_activities(run, plan, now)
        if plan.retry is not None:
            r = plan.retry
            task = s.tasks.get(r.task_id)
            if task is not None:
                j.set(task, "attempt", r.attempt)
                j.set(task, "visible_at", r.visible_at)
                j.set(task, "owner", None)
                j.set(task, "expires", None)
                j.set(task, "last_failure", None if r.failure is None else json_copy(r.failure.to_json()))
                j.set(task, "started_at", None)
                j.set(task, "stepping", False)
                j.set(task, "lapses", 0)
        if plan.stepping_task is not None:
            task = s.tasks.get(plan.stepping_task)
            if task is not None:
                j.set(task, "stepping", True)
        for task_id in plan.drop_tasks:
            self.drop_task(task_id)
        for seq in plan.drop_activities:
            scheduled = s.run_tasks.get(run_id, {}).get(seq)
            if scheduled is not None:
                self.drop_task(scheduled)
        for seq in plan.cancel_activities:
            scheduled = s.run_tasks.get(run_id, {}).get(seq)
            task = s.tasks.get(scheduled) if scheduled is not None else None
            if task is not None:
                j.set(task, "cancel_requested", True)
                j.set(task, "visible_at", min(task.visible_at, now))
        for seq, fire_at in plan.timers:
            timers = s.timers.get(run_id)
            if timers is None:
                timers = {}
                j.put(s.timers, run_id, timers)
            if seq in timers:
                raise StoreError(f"run {run_id} already has a timer started by event {seq}")
            j.put(timers, seq, fire_at)
        for seq in plan.drop_timers:
            self._drop_timer(run_id, seq)
        if plan.search_attributes and run is not None:
            j.set(run, "attributes", merge(run.attributes, plan.search_attributes) or None)
        if plan.close is not None and run is not None:
            c = plan.close
            j.set(run, "status", c.status)
            j.set(run, "closed_at", now)
            j.set(run, "result", c.result)
            j.set(run, "failure", None if c.failure is None else json_copy(c.failure.to_json()))
            j.set(run, "next_run_id", c.next_run_id)
            j.kinds.add(CLOSED)
            for task_id in list(s.run_tasks.get(run_id, {}).values()):
                self.drop_task(task_id)
            if run_id in s.timers:
                j.pop(s.timers, run_id)
        if plan.task is not None:
            self._task(run_id, plan.task, now)
        return leased

    def _task(self, run_id: str, change: TaskChange, now: float) -> None:
        s, j = self._s, self.j
        kind = change.kind
        if kind == "wake":
            self.wake(run_id, now)
        elif kind == "done":
            j.pop(s.wfts, run_id)
        elif kind == "keep":
            wft = s.wfts.get(run_id)
            if wft is not None:
                j.set(wft, "signals", change.signals)
                j.set(wft, "attempts", 0)
                j.set(wft, "lapses", 0)
                j.set(wft, "stepping", False)
                j.set(wft, "failure", None)
                j.set(wft, "failed_by", ())
        elif kind == "stepping":
            wft = s.wfts.get(run_id)
            if wft is not None:
                j.set(wft, "stepping", True)
        elif kind == "backoff":
            wft = s.wfts.get(run_id)
            if wft is not None:
                j.set(wft, "stepping", False)
                if change.attempts is not None:
                    j.set(wft, "attempts", change.attempts)
                j.set(wft, "failure", None if change.failure is None else orjson.dumps(change.failure.to_json()))
                j.set(wft, "failed_by", change.failed_by)
                j.set(wft, "visible_at", change.visible_at)
                j.set(wft, "owner", None)
                j.set(wft, "expires", None)
        if change.add_signals:
            wft = s.wfts.get(run_id)
            if wft is not None:
                j.set(wft, "signals", wft.signals + change.add_signals)

    def wake(self, run_id: str, now: float) -> None:
        """Give the run a workflow task, unless it has one (leased or not: it will see the new events)."""
        s = self._s
        if run_id not in s.wfts:
            self.j.put(s.wfts, run_id, WfTask(run_id, s.runs[run_id].workflow, now))
        self.j.kinds.add(WORKFLOW)

    def _append(self, run_id: str, first: int, items: list[ev.Event], now: float, *, keep_first_at: bool) -> None:
        copies = []
        for i, event in enumerate(items):
            if event.seq != first + i:
                raise StoreError(f"event {event.type} of run {run_id} numbered {event.seq}, expected {first + i}")
            copies.append(copy_event(event, first + i, event.at if keep_first_at and i == 0 else now))
        if copies:
            self.j.extend(self._s.events[run_id], copies)

    def _add_activities(self, run: Run, plan: Plan, now: float) -> list[tuple[str, int, int]]:
        s, j = self._s, self.j
        run_id = run.run_id
        by_seq = s.run_tasks.get(run_id)
        if by_seq is None:
            by_seq = {}
            j.put(s.run_tasks, run_id, by_seq)
        leased: list[tuple[str, int, int]] = []
        for new in plan.activities:
            if new.seq in by_seq:
                raise StoreError(f"run {run_id} already has an activity task for event {new.seq}")
            task_id = s.next_task_id
            j.set(s, "next_task_id", task_id + 1)
            task = ActTask(task_id, run_id, run.workflow_id, new.seq, new.activity, new.queue, new.input,
                           json_copy(new.options), now, new.deadline)
            if new.owner is not None:
                task.owner, task.expires = new.owner, self.lease_now() + new.lease
                task.started_at = now
                leased.append((new.queue, task_id, new.seq))
            else:
                j.kinds.add(ACTIVITY)
            j.put(s.tasks, task_id, task)
            j.put(by_seq, new.seq, task_id)
            queue = s.queues.get(new.queue)
            if queue is None:
                queue = {}
                j.put(s.queues, new.queue, queue)
            j.put(queue, task_id, task)
        return leased

    def drop_task(self, task_id: int) -> None:
        s, j = self._s, self.j
        task = j.pop(s.tasks, task_id)
        if task is None:
            return
        j.pop(s.queues[task.queue], task_id)
        j.pop(s.run_tasks[task.run_id], task.seq)

    def _drop_timer(self, run_id: str, seq: int) -> None:
        timers = self._s.timers.get(run_id)
        if timers is not None and seq in timers:
            self.j.pop(timers, seq)

    def _create(self, new: NewRun, now: float) -> None:
        s, j = self._s, self.j
        if new.run_id in s.runs:
            raise StoreError(f"a run with id {new.run_id} already exists")
        if new.entry == "new":
            if new.workflow_id in s.workflows or (new.idempotency_key is not None
                                                  and new.idempotency_key in s.keys):
                raise ConflictError(new.run_id, 0)  # the id (or key) is taken
            j.put(s.workflows, new.workflow_id, WorkflowEntry(
                new.workflow_id, new.workflow, new.input_hash, new.idempotency_key, new.run_id, new.run_id))
            if new.idempotency_key is not None:
                j.put(s.keys, new.idempotency_key, new.workflow_id)
        elif new.entry == "reuse":
            old = s.workflows.get(new.workflow_id)
            if old is None or old.current_run_id != new.replaces or (
                new.idempotency_key is not None and s.keys.get(new.idempotency_key, new.workflow_id)
                != new.workflow_id
            ):
                raise ConflictError(new.run_id, 0)  # another start followed the closed run first
            if old.idempotency_key is not None:
                j.pop(s.keys, old.idempotency_key)
            j.put(s.workflows, new.workflow_id, WorkflowEntry(
                new.workflow_id, new.workflow, new.input_hash, new.idempotency_key, new.run_id, new.run_id))
            if new.idempotency_key is not None:
                j.put(s.keys, new.idempotency_key, new.workflow_id)
        else:
            old = s.workflows.get(new.workflow_id)
            if old is not None:
                j.put(s.workflows, new.workflow_id, WorkflowEntry(
                    old.workflow_id, old.workflow, old.input_hash, old.idempotency_key, old.first_run_id,
                    new.run_id))
        run = Run(new.run_id, new.workflow_id, new.workflow, now, len(new.events), new.parent_run_id,
                  new.parent_seq)
        run.parent_close_policy = new.parent_close_policy
        run.attributes = dict(new.search_attributes) if new.search_attributes else None
        run.memo = None if new.memo is None else orjson.dumps(new.memo)
        j.put(s.runs, new.run_id, run)
        j.put(s.events, new.run_id, [])
        if new.parent_run_id is not None:
            children = s.children.get(new.parent_run_id)
            if children is None:
                children = []
                j.put(s.children, new.parent_run_id, children)
            j.extend(children, [new.run_id])
        self._append(new.run_id, 1, new.events, now, keep_first_at=True)
        if new.wake:
            self.wake(new.run_id, now)
