"""Run one workflow through a scripted world, in memory, and check replay against it.

A :class:`Scenario` says what the world does: the workflow's input, which
pending input arrives next (an activity outcome, a timer, a signal, a cancel
request), how many inputs arrive together, how activity attempts end, and
after which activations the process crashes (or the run is evicted from the
cache) so that a fresh instance must rebuild the run from the stored history.

:func:`check_scenario` plays the scenario twice (with and without the
crashes) on :class:`~retold.runtime._instance.WorkflowInstance`, the same
runtime the engine uses, then checks that

- both plays record exactly the same history;
- replaying the final history from scratch asks for nothing new;
- resuming from the stored prefix at every activation boundary reproduces the
  recorded commands;
- queries answer the same on the live run and on every replay;
- (optionally) a replay in another process, with another string-hash seed,
  agrees too.

Any failure raises :class:`NondeterminismFound` with a readable trace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, final

from ..authoring._activity import ActivityInfo, _current
from ..authoring._decorators import Activity, Workflow, unpack_input
from ..authoring._options import ActivityOptions
from ..errors import QueryError, RetoldError
from ..history import events as ev
from ..history.codec import Codec, JsonCodec
from ..history.export import History
from ..runtime import _guard
from ..runtime._instance import WorkflowInstance, failure_from_exception

__all__ = ["NondeterminismFound", "Outcome", "Scenario", "Step", "check_scenario"]

Outcome = Literal["ok", "retry", "fail", "timeout"]
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: scenarios start here, in virtual time
MAX_ACTIVATIONS = 500


@final
@dataclass(frozen=True, slots=True)
class Step:
    """One arrival: ``pick`` chooses among the inputs that could arrive now.

    ``together`` inputs arrive in one activation; ``outcome`` is how an
    activity (or child) chosen by this step ends.
    """

    pick: int
    together: int = 1
    outcome: Outcome = "ok"


@final
@dataclass(frozen=True, slots=True)
class Scenario:
    """What the world does to one run (see the module docstring)."""

    args: tuple[Any, ...] = ()
    signals: tuple[tuple[str, Any], ...] = ()
    steps: tuple[Step, ...] = ()
    crash_after: frozenset[int] = frozenset()
    cancel_at: int | None = None
    seed: int = 0


class NondeterminismFound(AssertionError):  # noqa: N818 - reads as the finding it reports
    """A scenario in which the workflow's replay disagreed with its live run.

    Attributes:
        scenario: the scenario.
        check: which check failed.
        trace: what happened, line by line.
        history: the history recorded by the run without crashes.
    """

    def __init__(
        self, workflow: str, scenario: Scenario, check: str, detail: str, trace: Sequence[str], history: History | None
    ) -> None:
        self.scenario = scenario
        self.check = check
        self.trace = tuple(trace)
        self.history = history
        lines = [
            f"workflow {workflow!r} is not deterministic",
            f"  failed check: {check}",
            f"  {detail}",
            f"  input: args={scenario.args!r}, signals={list(scenario.signals)!r}",
            "  what happened:",
            *(f"    {line}" for line in trace),
        ]
        super().__init__("\n".join(lines))


ActivityImpl = Callable[..., Any]
Queries = Sequence[tuple[str, tuple[Any, ...]]]
# (workflow, codec, history, live query answers, queries) -> a problem, or None
CrossProcessCheck = Callable[[Workflow[..., Any], Codec, History, list[Any], Queries], str | None]


class _ActivityRunner:
    """Runs activity bodies (real or fake) for the simulation, caching outcomes."""

    def __init__(self, codec: Codec, fakes: Mapping[str, ActivityImpl]) -> None:
        self.codec = codec
        self.fakes = fakes
        self.cache: dict[tuple[int, int, bytes], tuple[bool, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
        if self._pool is not None:
            self._pool.shutdown()

    def _await(self, coro: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(coro)
        # Called from async code: run the coroutine on a loop of its own thread.
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1)
        return self._pool.submit(asyncio.run, coro).result()

    def run(
        self, definition: Activity[..., Any] | None, name: str, event: ev.ActivityScheduled,
        workflow_id: str, run_id: str, attempt: int,
    ) -> tuple[bool, Any]:
        """(True, encoded result) or (False, failure dict) for one attempt."""
        key = (event.seq, attempt, event.input)
        if key in self.cache:
            return self.cache[key]
        fn = self.fakes.get(name)
        if fn is None and definition is not None:
            fn = definition.fn
        if fn is None:
            raise RetoldError(f"activity {name!r} has no implementation: pass it in activities= or fakes=")
        info = ActivityInfo(
            activity=name, workflow_id=workflow_id, run_id=run_id, seq=event.seq, attempt=attempt,
            idempotency_key=f"{workflow_id}/{run_id}/{event.seq}",
        )
        try:
            if definition is not None:
                raw, kwargs = definition.types.decode_args("activity", name, self.codec, event.input)
            else:
                raw_list, kwargs = unpack_input(self.codec.decode(event.input, Any))
                raw = tuple(raw_list)
        except Exception as exc:  # noqa: BLE001 - as in the engine: bad input fails the attempt for good
            self.cache[key] = (False, failure_from_exception(exc, non_retryable=True))
            return self.cache[key]
        token = _current.set(info)
        try:
            value = fn(*raw, **kwargs)
            if inspect.isawaitable(value):
                value = self._await(value)
            outcome: tuple[bool, Any] = (True, self.codec.encode(value))
        except Exception as exc:  # noqa: BLE001 - user code: any error is a failed attempt
            outcome = (False, failure_from_exception(exc))  # an ApplicationError's own non_retryable counts
        finally:
            _current.reset(token)
        self.cache[key] = outcome
        return outcome


@dataclass
class _World:
    """An engine in miniature for one run: numbers events, tracks what can arrive."""

    scenario: Scenario
    workflow: Workflow[..., Any]
    codec: Codec
    runner: _ActivityRunner
    activities: Mapping[str, Activity[..., Any]]
    queries: Sequence[tuple[str, tuple[Any, ...]]]
    crashes: frozenset[int]
    workflow_id: str = ""
    history: list[ev.Event] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    boundaries: list[int] = field(default_factory=list)
    answers: dict[int, list[Any]] = field(default_factory=dict)
    clock: float = EPOCH
    attempts: dict[int, int] = field(default_factory=dict)
    open_activities: dict[int, ev.ActivityScheduled] = field(default_factory=dict)
    open_children: dict[int, ev.ChildWorkflowStarted] = field(default_factory=dict)
    cancelled_children: set[int] = field(default_factory=set)  # asked to cancel by the parent
    timers: dict[int, float] = field(default_factory=dict)
    next_signal: int = 0
    cancelled: bool = False

    @property
    def run_id(self) -> str:
        return str(uuid.UUID(int=self.scenario.seed % (1 << 128)))

    def append(self, cls: type[ev.Event], **fields: Any) -> ev.Event:
        self.clock += 1.0
        event = cls(seq=len(self.history) + 1, at=self.clock, **fields)
        self.history.append(event)
        return event

    def store(self, commands: list[ev.Event]) -> None:
        for cmd in commands:
            if cmd.seq != len(self.history) + 1:
                raise AssertionError(f"command numbered {cmd.seq}, expected {len(self.history) + 1}")
            self.history.append(cmd)
            if isinstance(cmd, ev.ActivityScheduled):
                self.open_activities[cmd.seq] = cmd
            elif isinstance(cmd, ev.ChildWorkflowStarted):
                self.open_children[cmd.seq] = cmd
            elif isinstance(cmd, ev.TimerStarted):
                self.timers[cmd.seq] = cmd.at + cmd.duration
            elif isinstance(cmd, ev.TimerCancelled):
                self.timers.pop(cmd.started, None)
            elif isinstance(cmd, ev.ActivityCancelRequested):
                self.open_activities.pop(cmd.scheduled, None)
            elif isinstance(cmd, ev.ChildWorkflowCancelRequested):
                self.cancelled_children.add(cmd.started)
        self.boundaries.append(len(self.history))

    def ask(self, instance: WorkflowInstance) -> list[Any]:
        return _ask(instance, self.codec, self.queries)

    # -- what can arrive now ---------------------------------------------------

    def candidates(self) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = [("activity", seq) for seq in self.open_activities]
        found += [("child", seq) for seq in self.open_children]
        if self.timers:
            found.append(("timer", min(self.timers, key=lambda s: (self.timers[s], s))))
        if self.next_signal < len(self.scenario.signals):
            found.append(("signal", self.next_signal))
        return found

    def arrive(self, kind: str, key: int, outcome: Outcome, instance: WorkflowInstance) -> ev.Event | None:
        if kind == "activity":
            return self._activity(self.open_activities[key], outcome)
        if kind == "child":
            return self._child(self.open_children[key], outcome, instance)
        if kind == "timer":
            self.clock = max(self.clock, self.timers.pop(key))
            self.trace.append(f"timer of event {key} fires")
            return self.append(ev.TimerFired, started=key)
        name, value = self.scenario.signals[key]
        self.next_signal += 1
        self.trace.append(f"signal {name!r} arrives with {value!r}")
        return self.append(ev.SignalReceived, name=name, input=self.codec.encode(value))

    def _activity(self, scheduled: ev.ActivityScheduled, outcome: Outcome) -> ev.Event | None:
        seq = scheduled.seq
        attempt = self.attempts.get(seq, 0) + 1
        self.attempts[seq] = attempt
        label = f"activity {scheduled.activity} (event {seq}) attempt {attempt}"
        options = ActivityOptions.from_json(scheduled.options)
        if outcome == "timeout":
            del self.open_activities[seq]
            self.trace.append(f"{label} times out (schedule_to_close)")
            return self.append(ev.ActivityTimedOut, scheduled=seq, attempt=attempt, kind="schedule_to_close")
        if outcome in ("retry", "fail"):
            failure: dict[str, Any] = {"type": "SimulatedFailure", "message": f"injected failure of attempt {attempt}",
                       "details": "", "non_retryable": outcome == "fail"}
            ok, value = False, failure
        else:
            ok, value = self.runner.run(
                self.activities.get(scheduled.activity), scheduled.activity, scheduled,
                self.workflow_id, self.run_id, attempt,
            )
        if ok:
            del self.open_activities[seq]
            self.trace.append(f"{label} completes")
            return self.append(ev.ActivityCompleted, scheduled=seq, attempt=attempt, result=value)
        retried = not value.get("non_retryable") and options.retry.retries_error(value["type"], attempt)
        if retried:
            self.trace.append(f"{label} fails ({value['type']}) and will be retried")
            return None
        del self.open_activities[seq]
        self.trace.append(f"{label} fails for good ({value['type']}: {value['message']})")
        return self.append(ev.ActivityFailed, scheduled=seq, attempt=attempt, failure=value)

    def _child(self, started: ev.ChildWorkflowStarted, outcome: Outcome, instance: WorkflowInstance) -> ev.Event:
        del self.open_children[started.seq]
        label = f"child {started.workflow} (event {started.seq})"
        if started.seq in self.cancelled_children:
            self.trace.append(f"{label} is cancelled, as its parent asked")
            failure = {"type": "CancelledError", "message": "the run was cancelled", "details": "",
                       "non_retryable": True}
            return self.append(ev.ChildWorkflowFailed, started=started.seq, failure=failure, cancelled=True)
        if outcome in ("fail", "timeout"):
            self.trace.append(f"{label} fails")
            failure = {"type": "SimulatedFailure", "message": "injected child failure", "details": "",
                       "non_retryable": True}
            return self.append(ev.ChildWorkflowFailed, started=started.seq, failure=failure)
        child_wf = _child_workflow(instance, started)
        ok, value = _run_child(child_wf, started, self) if child_wf is not None else (
            False, {"type": "RetoldError", "message": f"child workflow {started.workflow!r} is unknown",
                    "details": "", "non_retryable": True})
        if ok:
            self.trace.append(f"{label} completes")
            return self.append(ev.ChildWorkflowCompleted, started=started.seq, result=value)
        self.trace.append(f"{label} fails ({value['type']})")
        return self.append(ev.ChildWorkflowFailed, started=started.seq, failure=value)


def _child_workflow(instance: WorkflowInstance, started: ev.ChildWorkflowStarted) -> Any:
    entry = instance._children.get(started.seq)  # the live instance knows the child's definition
    return entry[1] if entry is not None else None


def _run_child(
    child: Workflow[..., Any], started: ev.ChildWorkflowStarted, parent: _World
) -> tuple[bool, Any]:
    """Run a child workflow to its end in a plain world: every activity succeeds, timers fire in order."""
    world = _World(
        Scenario(seed=parent.scenario.seed + started.seq), child, parent.codec, parent.runner,
        parent.activities, (), frozenset(), started.workflow_id,
    )
    instance = WorkflowInstance(child, started.run_id, parent.codec)
    try:
        pending = [world.append(ev.WorkflowStarted, workflow=child.name, workflow_id=started.workflow_id,
                                input=started.input, parent_run_id=parent.run_id, parent_seq=started.seq)]
        for _ in range(MAX_ACTIVATIONS):
            world.store(instance.apply(pending))
            instance.committed(len(world.history))
            if instance.finished:
                break
            found = world.candidates()
            if not found:
                break
            arrived = world.arrive(*found[0], "ok", instance)
            pending = [arrived] if arrived is not None else []
        last = world.history[-1]
        if isinstance(last, ev.WorkflowCompleted):
            return True, last.result
        if isinstance(last, ev.WorkflowFailed):
            return False, last.failure
        return False, {"type": "RetoldError", "message": f"child ended with {last.type}", "details": "",
                       "non_retryable": True}
    finally:
        instance.close()


@dataclass
class _Play:
    history: list[ev.Event]
    boundaries: list[int]
    answers: dict[int, list[Any]]
    trace: list[str]
    finished: bool
    final_answers: list[Any]


def _play(
    scenario: Scenario, workflow: Workflow[..., Any], codec: Codec, runner: _ActivityRunner,
    activities: Mapping[str, Activity[..., Any]], queries: Sequence[tuple[str, tuple[Any, ...]]],
    crashes: frozenset[int], workflow_id: str, trace: list[str],
) -> _Play:
    """Play the scenario; ``trace`` fills up as it goes (for a report if it raises)."""
    trace.clear()
    world = _World(scenario, workflow, codec, runner, activities, queries, crashes, workflow_id, trace=trace)
    instance = WorkflowInstance(workflow, world.run_id, codec)
    pending = [world.append(ev.WorkflowStarted, workflow=workflow.name, workflow_id=workflow_id,
                            input=codec.encode(list(scenario.args)))]
    world.trace.append(f"run starts with args {scenario.args!r}")
    steps = list(scenario.steps)
    activation = 0
    try:
        while activation < MAX_ACTIVATIONS:
            activation += 1
            before = len(world.history)
            world.store(instance.apply(pending))
            instance.committed(len(world.history))
            made = [e.describe() for e in world.history[before:]]
            if made:
                world.trace.append(f"activation {activation}: code asks for " + ", ".join(made))
            world.answers[len(world.history)] = world.ask(instance)
            if instance.finished:
                break
            if activation in crashes:
                world.trace.append(f"crash after event {len(world.history)}: a new process replays the stored history")
                instance.close()
                instance = WorkflowInstance(workflow, world.run_id, codec)
                leftover = instance.apply(list(world.history))
                if leftover:
                    raise _Divergence(
                        "resuming after a crash",
                        f"replaying the stored {len(world.history)} events asked for new commands: "
                        + ", ".join(e.describe() for e in leftover),
                    )
                instance.committed(len(world.history))
            pending = []
            if scenario.cancel_at == activation and not world.cancelled:
                world.cancelled = True
                world.trace.append("cancel requested")
                pending.append(world.append(ev.CancelRequested, reason="scenario"))
            # Draw arrivals until something reaches the history (a retried
            # attempt does not), or nothing more can arrive.
            for _ in range(MAX_ACTIVATIONS):
                if pending or not world.candidates():
                    break
                step = steps.pop(0) if steps else Step(0)
                for _ in range(max(1, step.together)):
                    found = world.candidates()
                    if not found:
                        break
                    arrived = world.arrive(*found[step.pick % len(found)], step.outcome, instance)
                    if arrived is not None:
                        pending.append(arrived)
            if not pending:
                world.trace.append("nothing more can arrive: the run waits forever")
                break
            if len(pending) > 1:
                world.trace.append(f"  (the {len(pending)} inputs above arrive together)")
        return _Play(world.history, world.boundaries, world.answers, world.trace, instance.finished,
                     world.ask(instance))
    finally:
        instance.close()


class _Divergence(Exception):  # noqa: N818 - internal signal, carries the check and detail
    def __init__(self, check: str, detail: str) -> None:
        self.check = check
        self.detail = detail
        super().__init__(detail)


def _compare(a: Sequence[ev.Event], b: Sequence[ev.Event]) -> str | None:
    for x, y in zip(a, b, strict=False):
        if dataclasses.astuple(x) != dataclasses.astuple(y) or type(x) is not type(y):
            return f"event {x.seq}: {x.describe()} without the crash, {y.describe()} with it"
    if len(a) != len(b):
        return f"{len(a)} events without the crash, {len(b)} with it"
    return None


def check_scenario(
    workflow: Workflow[..., Any],
    scenario: Scenario,
    *,
    activities: Sequence[Activity[..., Any]] = (),
    fakes: Mapping[str | Activity[..., Any], ActivityImpl] | None = None,
    queries: Sequence[str | tuple[str, tuple[Any, ...]]] = (),
    codec: Codec | None = None,
    cross_process: CrossProcessCheck | None = None,
) -> History:
    """Play ``scenario`` and run every determinism check; return the recorded history.

    Raises:
        NondeterminismFound: a check failed; the message shows what happened.
    """
    codec = codec or JsonCodec()
    by_name = {a.name: a for a in activities}
    fake_impls = {(k if isinstance(k, str) else k.name): v for k, v in (fakes or {}).items()}
    query_list = [(q, ()) if isinstance(q, str) else (q[0], tuple(q[1])) for q in queries]
    runner = _ActivityRunner(codec, fake_impls)
    workflow_id = f"{workflow.name}-scenario"
    trace: list[str] = []
    history: History | None = None

    def fail(check: str, detail: str) -> NondeterminismFound:
        return NondeterminismFound(workflow.name, scenario, check, detail, trace, history)

    _guard.install()
    try:
        with _guard.strict(True):
            try:
                plain = _play(scenario, workflow, codec, runner, by_name, query_list, frozenset(), workflow_id,
                              trace)
            except RetoldError as exc:
                raise fail("the live run", f"{type(exc).__name__}: {exc}") from exc
            history = History(plain.history, workflow=workflow.name, workflow_id=workflow_id,
                              run_id=str(uuid.UUID(int=scenario.seed % (1 << 128))))
            if scenario.crash_after:
                try:
                    crashed = _play(scenario, workflow, codec, runner, by_name, query_list,
                                    scenario.crash_after, workflow_id, trace)
                except _Divergence as exc:
                    raise fail(exc.check, exc.detail) from exc
                except RetoldError as exc:
                    raise fail("resuming after a crash", f"{type(exc).__name__}: {exc}") from exc
                difference = _compare(plain.history, crashed.history)
                if difference is not None:
                    raise fail("a crash (or cache eviction) must not change the history", difference)
                if crashed.final_answers != plain.final_answers:
                    raise fail("queries after a crash", f"{crashed.final_answers!r} != {plain.final_answers!r}")
            _replay_checks(workflow, codec, history, plain, query_list, fail)
    finally:
        runner.close()
    if cross_process is not None:
        problem = cross_process(workflow, codec, history, plain.final_answers, query_list)
        if problem is not None:
            raise fail("replay in another process (another string-hash seed)", problem)
    return history


def _replay_checks(
    workflow: Workflow[..., Any], codec: Codec, history: History, plain: _Play,
    queries: Sequence[tuple[str, tuple[Any, ...]]], fail: Callable[[str, str], NondeterminismFound],
) -> None:
    events = list(history)
    run_id = history.run_id
    replayed = WorkflowInstance(workflow, run_id, codec)
    try:
        try:
            extra = replayed.apply(events)
        except RetoldError as exc:
            raise fail(f"full replay of the final history ({len(events)} events)", str(exc)) from exc
        if extra:
            raise fail(f"full replay of the final history ({len(events)} events)",
                       "the code asked for more: " + ", ".join(e.describe() for e in extra))
        if replayed.finished != plain.finished:
            raise fail("full replay", f"finished={replayed.finished} on replay, {plain.finished} live")
        answers = _ask(replayed, codec, queries)
        if answers != plain.final_answers:
            raise fail("queries after a full replay", f"{answers!r} on replay, {plain.final_answers!r} live")
    finally:
        replayed.close()
    for cut in plain.boundaries[:-1]:
        resumed = WorkflowInstance(workflow, run_id, codec)
        try:
            check = f"resume from the stored prefix of {cut} events"
            try:
                extra = resumed.apply(events[:cut])
            except RetoldError as exc:
                raise fail(check, str(exc)) from exc
            if extra:
                raise fail(check, "replaying the prefix asked for: " + ", ".join(e.describe() for e in extra))
            expected = plain.answers.get(cut)
            if expected is not None and _ask(resumed, codec, queries) != expected:
                raise fail(f"queries after replaying {cut} events",
                           f"{_ask(resumed, codec, queries)!r} on replay, {expected!r} live")
            resumed.committed(cut)
            try:
                extra = resumed.apply(events[cut:])
            except RetoldError as exc:
                raise fail(check, str(exc)) from exc
            if extra:
                raise fail(check, "the resumed run asked for more: " + ", ".join(e.describe() for e in extra))
        finally:
            resumed.close()


def _ask(instance: WorkflowInstance, codec: Codec, queries: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    answers: list[Any] = []
    for name, args in queries:
        try:
            answers.append(codec.encode(instance.query(name, args)))
        except QueryError as exc:
            answers.append(f"<{type(exc).__name__}: {exc}>")
    return answers
