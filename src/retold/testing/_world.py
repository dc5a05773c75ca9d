"""The property runner's world: a run and its children on the pure memory store, moved by the engine's rules.

Every input goes through the transitions the engine uses (:class:`Runs`
over the run state machine, on :class:`~retold.stores.memory.MemoryStore`):
starting, committing a step, an activity attempt's outcome and its retry
decision, a fired timer, a signal, a cancel request, a child's close. The
world only chooses what arrives next (from a :class:`Scenario`), runs
activity bodies, and keeps a virtual clock. So the determinism checks test
the world users run, not a copy of its rules.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson

from ..authoring._decorators import Activity, Workflow
from ..authoring._options import ActivityOptions
from ..engine import _machine as m
from ..engine._runs import Runs
from ..errors import RetoldError
from ..history import events as ev
from ..history.codec import Codec
from ..history.failure import Failure
from ..runtime._instance import WorkflowInstance
from ..runtime._replay import activate
from ..stores._plan import Plan, Tx
from ..stores._protocol import ActivityOutcome, ActivityTask, StartRequest
from ..stores.memory import MemoryStore

__all__ = ["EPOCH", "MAX_ACTIVATIONS", "OWNER", "Outcome", "Step", "World"]

Outcome = Literal["ok", "retry", "fail", "timeout"]
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: scenarios start here, in virtual time
MAX_ACTIVATIONS = 500
OWNER = "simulator"
_LEASE = 10.0 * 365 * 86_400  # the world is the only worker: its leases never run out
_T = TypeVar("_T")

# (definition or None, name, the ActivityScheduled event, workflow id, run id, attempt) -> (ok, result or failure)
RunActivity = Callable[[Activity[..., Any] | None, str, ev.ActivityScheduled, str, str, int], tuple[bool, Any]]


@dataclass(frozen=True, slots=True)
class Step:
    """One arrival: ``pick`` chooses among the inputs that could arrive now.

    ``together`` inputs arrive in one activation; ``outcome`` is how an
    activity (or child) chosen by this step ends.
    """

    pick: int
    together: int = 1
    outcome: Outcome = "ok"


@dataclass
class World:
    """A store, the engine's rules over it, a virtual clock, and the runs' live instances."""

    codec: Codec
    run_activity: RunActivity
    activities: Mapping[str, Activity[..., Any]]
    seed: int
    trace: list[str] = field(default_factory=list)
    clock: float = EPOCH
    stuck: set[str] = field(default_factory=set)  # children that could get no further

    def __post_init__(self) -> None:
        self.store = MemoryStore(clock=lambda: self.clock)
        self.runs = Runs(self.store)
        self.rng = random.Random(self.seed)  # the retry policy's jitter

    # -- the store, as the world's only worker ---------------------------------------------------

    def tx(self, fn: Callable[[Tx], _T]) -> _T:
        """One transaction, a tick of the clock after the last."""
        self.clock += 1.0
        return self.store.transact_sync(fn)

    def history(self, run_id: str) -> list[ev.Event]:
        return list(self.store.events.get(run_id, ()))

    def is_open(self, run_id: str) -> bool:
        return self.store.runs[run_id].status == "running"

    def start(
        self, workflow: Workflow[..., Any], workflow_id: str, run_id: str, payload: bytes,
        signal: tuple[str, Any] | None = None,
    ) -> None:
        """Start the run; with ``signal``, as a signal-with-start (the signal recorded with the start)."""
        request = StartRequest(workflow.name, workflow_id, payload, input_hash="simulated")
        if signal is None:
            self.tx(lambda tx: self.runs.start_in(tx, request, run_id=run_id))
            return
        name, value = signal
        encoded = self.codec.encode(value)
        self.tx(lambda tx: self.runs.signal_with_start_in(tx, request, name, encoded, run_id=run_id))

    def step(self, run_id: str, instance: WorkflowInstance) -> tuple[list[ev.Event], bool]:
        """One workflow task of ``run_id``: its new events fed to ``instance``, its commands recorded.

        Returns the commands and whether inputs followed them (the task stays
        this worker's: another step is due at once). Raises the task's failure.
        """
        task = self.store.wfts[run_id]
        task.owner, task.expires = OWNER, self.clock + _LEASE
        commands = activate(instance, self.history(run_id)[instance.last_seq:]).unwrap()
        expected = instance.last_seq
        last = self.tx(lambda tx: self.runs.commit_in(tx, run_id, OWNER, expected, commands))
        if last < 0:  # never: nothing arrives while the world runs a step
            raise RetoldError(f"the simulated step of run {run_id} was refused")
        seen = expected + len(commands)
        instance.committed(seen)
        return commands, last > seen

    def has_task(self, run_id: str) -> bool:
        return run_id in self.store.wfts

    # -- what can arrive ---------------------------------------------------------------------------

    def candidates(self, run_id: str, signals_left: int = 0) -> list[tuple[str, int]]:
        """What could happen to the run next: its open activities and children, its earliest timer, a signal."""
        found: list[tuple[str, int]] = [("activity", seq) for seq in sorted(self.store.run_tasks.get(run_id, {}))]
        found += [("child", seq) for child, seq in self.open_children(run_id)]
        timers = self.store.timers.get(run_id)
        if timers:
            found.append(("timer", min(timers, key=lambda seq: (timers[seq], seq))))
        if signals_left:
            found.append(("signal", 0))
        return found

    def open_children(self, run_id: str) -> list[tuple[str, int]]:
        """(run id, the parent's event number) of the run's open children, in the order they started."""
        children = []
        for child in self.store.children.get(run_id, ()):
            row = self.store.runs[child]
            if row.status == "running" and child not in self.stuck and row.parent_seq is not None:
                children.append((child, row.parent_seq))
        return sorted(children, key=lambda item: item[1])

    # -- arrivals ----------------------------------------------------------------------------------

    def attempt(self, run_id: str, seq: int, outcome: Outcome) -> bool:
        """An attempt of the activity scheduled at ``seq`` ends as ``outcome``; True if an event was recorded."""
        row = self.store.tasks[self.store.run_tasks[run_id][seq]]
        self.clock = max(self.clock, row.visible_at)  # a retry waits for its backoff
        row.owner, row.expires = OWNER, self.clock + _LEASE
        options = orjson.loads(row.options)
        task = ActivityTask(id=row.id, run_id=run_id, workflow_id=row.workflow_id, seq=seq, activity=row.activity,
                            queue=row.queue, input=row.input, options=options, attempt=row.attempt,
                            scheduled_at=row.scheduled_at)
        label = f"activity {row.activity} (event {seq}) attempt {row.attempt}"
        policy = ActivityOptions.from_json(options).retry
        result: ActivityOutcome
        if outcome == "timeout":
            result = ActivityOutcome("timed_out", timeout_kind="schedule_to_close")
        elif outcome in ("retry", "fail"):
            failure = Failure(type="SimulatedFailure", message=f"injected failure of attempt {row.attempt}",
                              non_retryable=outcome == "fail")
            result = m.attempt_failed(policy, row.attempt, failure, self.rng)
        else:
            scheduled = self.history(run_id)[seq - 1]
            assert isinstance(scheduled, ev.ActivityScheduled)
            ok, value = self.run_activity(self.activities.get(row.activity), row.activity, scheduled,
                                          row.workflow_id, run_id, row.attempt)
            result = (ActivityOutcome("completed", result=value) if ok
                      else m.attempt_failed(policy, row.attempt, value, self.rng))
        before = len(self.store.events[run_id])
        self.tx(lambda tx: self.runs.finish_in(tx, task, OWNER, result))
        recorded = len(self.store.events[run_id]) > before
        if result.kind == "completed":
            self.trace.append(f"{label} completes")
        elif result.kind == "timed_out":
            self.trace.append(f"{label} times out ({result.timeout_kind})")
        elif not recorded:
            self.trace.append(f"{label} fails ({result.failure and result.failure.type}) and will be retried")
        else:
            assert result.failure is not None
            self.trace.append(f"{label} fails for good ({result.failure.type}: {result.failure.message})")
        return recorded

    def fire(self, run_id: str, seq: int) -> None:
        """The timer started at ``seq`` fires (the clock moves to its due time)."""
        self.clock = max(self.clock, self.store.timers[run_id][seq])
        self.trace.append(f"timer of event {seq} fires")

        def fire(tx: Tx) -> None:
            tx.apply(Plan(run_id, drop_timers=[seq]))
            self.runs.input_in(tx, run_id, ev.TimerFired(seq=0, at=0.0, started=seq))

        self.tx(fire)

    def signal(self, run_id: str, name: str, value: Any) -> None:
        self.trace.append(f"signal {name!r} arrives with {value!r}")
        event = ev.SignalReceived(seq=0, at=0.0, name=name, input=self.codec.encode(value))
        self.tx(lambda tx: self.runs.input_in(tx, run_id, event, self.runs.max_pending_signals))

    def time_out(self, run_id: str) -> None:
        """The run's run timeout passes: it closes as timed out, whatever it was doing."""
        self.trace.append("the run's run timeout passes")
        self.tx(lambda tx: self.runs.time_out_in(tx, run_id, m.RUN_TIMEOUT_TIMER))

    def cancel(self, run_id: str) -> None:
        self.trace.append("cancel requested")
        self.tx(lambda tx: self.runs.input_in(tx, run_id, ev.CancelRequested(seq=0, at=0.0, reason="scenario")))

    def child(self, parent: WorkflowInstance, seq: int, outcome: Outcome) -> None:
        """The child started at ``seq`` runs to its end (every activity succeeds), or fails at once."""
        started = self.history(parent.run_id)[seq - 1]
        assert isinstance(started, ev.ChildWorkflowStarted)
        label = f"child {started.workflow} (event {seq})"
        entry = parent._children.get(seq)  # the live parent knows the child's definition
        definition: Workflow[..., Any] | None = entry[1] if entry is not None else None
        if outcome in ("fail", "timeout") or definition is None:
            message = ("injected child failure" if definition is not None
                       else f"child workflow {started.workflow!r} is unknown")
            self.trace.append(f"{label} fails")
            failure = Failure(type="SimulatedFailure" if definition else "RetoldError", message=message,
                              non_retryable=True)
            self.store.wfts[started.run_id].owner = OWNER
            self.store.wfts[started.run_id].expires = self.clock + _LEASE
            self.tx(lambda tx: self.runs.fail_in(tx, started.run_id, OWNER, failure, 0.0, 1, final=True))
            return
        self.drive(definition, started.run_id)
        status = self.store.runs[started.run_id].status
        self.trace.append(f"{label} {'completes' if status == 'completed' else status}")

    def drive(self, workflow: Workflow[..., Any], run_id: str) -> None:
        """Run a run to its end in a plain world: every activity succeeds, timers fire in order."""
        instance = WorkflowInstance(workflow, run_id, self.codec)
        try:
            for _ in range(MAX_ACTIVATIONS):
                if not self.is_open(run_id):
                    return
                if self.has_task(run_id):
                    self.step(run_id, instance)
                    continue
                found = self.candidates(run_id)
                if not found:
                    self.stuck.add(run_id)  # it waits for something that never comes here
                    return
                kind, key = found[0]
                if kind == "activity":
                    self.attempt(run_id, key, "ok")
                elif kind == "timer":
                    self.fire(run_id, key)
                else:
                    self.child(instance, key, "ok")
        finally:
            instance.close()


def scenario_run_id(seed: int) -> str:
    """The main run's id in a scenario (the same in every play of it)."""
    return str(uuid.UUID(int=seed % (1 << 128)))


def pick(found: Sequence[tuple[str, int]], step: Step) -> tuple[str, int]:
    return found[step.pick % len(found)]
