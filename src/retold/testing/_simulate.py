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
from dataclasses import dataclass
from typing import Any, final

from ..authoring._activity import ActivityInfo, _current
from ..authoring._decorators import Activity, Workflow, unpack_input
from ..errors import QueryError, RetoldError
from ..history import events as ev
from ..history.codec import Codec, JsonCodec
from ..history.export import History
from ..runtime import _guard
from ..runtime._instance import WorkflowInstance, failure_from_exception
from ..runtime._replay import activate, replay
from ._world import MAX_ACTIVATIONS, Outcome, Step, World, pick, scenario_run_id

__all__ = ["NondeterminismFound", "Outcome", "Scenario", "Step", "check_scenario"]

@final
@dataclass(frozen=True, slots=True)
class Scenario:
    """What the world does to one run (see the module docstring)."""

    args: tuple[Any, ...] = ()
    signals: tuple[tuple[str, Any], ...] = ()
    updates: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (name, args), validated then accepted, in this order
    steps: tuple[Step, ...] = ()
    crash_after: frozenset[int] = frozenset()
    cancel_at: int | None = None
    seed: int = 0
    signal_with_start: bool = False  # the first signal comes with the start (one transaction)
    timeout_at: int | None = None  # the run's run timeout passes after this activation


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
            f"  input: args={scenario.args!r}, signals={list(scenario.signals)!r}"
            + (f", updates={list(scenario.updates)!r}" if scenario.updates else ""),
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
        # Keyed by the run too: a child's activity at the same seq, attempt and
        # input as its parent's is another activity.
        self.cache: dict[tuple[str, str, int, int, bytes], tuple[bool, Any]] = {}
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
        key = (run_id, name, event.seq, attempt, event.input)
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
    world = World(codec, runner.run, activities, scenario.seed, trace=trace)
    run_id = scenario_run_id(scenario.seed)
    signals = list(scenario.signals)
    updates = list(scenario.updates)
    first = signals.pop(0) if scenario.signal_with_start and signals else None
    world.start(workflow, workflow_id, run_id, codec.encode(list(scenario.args)), signal=first)
    world.trace.append(f"run starts with args {scenario.args!r}"
                       + (f" and signal {first[0]!r} with {first[1]!r} (signal-with-start)" if first else ""))
    instance = WorkflowInstance(workflow, run_id, codec)
    boundaries: list[int] = []
    answers: dict[int, list[Any]] = {}
    steps = list(scenario.steps)
    cancelled = False
    activation = 0
    try:
        while activation < MAX_ACTIVATIONS:
            activation += 1
            before = len(world.history(run_id))
            more = True
            while more:  # inputs the step gave the run itself (a child refused, a signal sent) follow at once
                _, more = world.step(run_id, instance)
            history = world.history(run_id)
            made = [e.describe() for e in history[before:]]
            if made:
                world.trace.append(f"activation {activation}: code asks for " + ", ".join(made))
            boundaries.append(len(history))
            answers[len(history)] = _ask(instance, codec, queries)
            if instance.finished or not world.is_open(run_id):
                break
            refused = instance.query_refused
            if refused:
                # As an engine does: a copy whose query was refused halfway through a
                # change is dropped, and the run's next step replays from its history.
                world.trace.append("a query was refused a loop call: the run in memory is dropped and replayed")
            if activation in crashes or refused:
                if not refused:
                    world.trace.append(
                        f"crash after event {len(history)}: a new process replays the stored history")
                instance.close()
                instance, completion = replay(workflow, run_id, codec, history)
                if not completion.ok:
                    raise completion.error or RetoldError("replay failed")
                if completion.commands:
                    raise _Divergence(
                        "resuming after a crash",
                        f"replaying the stored {len(history)} events asked for new commands: "
                        + ", ".join(e.describe() for e in completion.commands),
                    )
                instance.committed(len(history))
            if scenario.timeout_at == activation:
                world.time_out(run_id)
                # The live instance sees the closing event as a worker would (its code does not run).
                history = world.history(run_id)
                if activate(instance, history[instance.last_seq:]).unwrap():
                    raise RetoldError("a timed-out run asked for commands")
                instance.committed(len(history))
                boundaries.append(len(history))
                answers[len(history)] = _ask(instance, codec, queries)
                break
            if scenario.cancel_at == activation and not cancelled:
                cancelled = True
                world.cancel(run_id)
            # Draw arrivals until something reaches the history (a retried
            # attempt does not), or nothing more can arrive.
            for _ in range(MAX_ACTIVATIONS):
                if world.has_task(run_id) or not world.candidates(run_id, len(signals), len(updates)):
                    break
                step = steps.pop(0) if steps else Step(0)
                arrived = 0
                for _ in range(max(1, step.together)):
                    found = world.candidates(run_id, len(signals), len(updates))
                    if not found:
                        break
                    kind, key = pick(found, step)
                    if kind == "activity":
                        world.attempt(run_id, key, step.outcome)
                    elif kind == "timer":
                        world.fire(run_id, key)
                    elif kind == "child":
                        world.child(instance, key, step.outcome)
                    elif kind == "update":
                        name, update_args = updates.pop(0)
                        update_id = f"update-{len(scenario.updates) - len(updates)}"
                        got = world.update(workflow, run_id, name, update_args, update_id)
                        if got == "moved":
                            updates.insert(0, (name, update_args))
                        if got != "accepted":
                            continue
                    else:
                        name, value = signals.pop(0)
                        world.signal(run_id, name, value)
                    arrived += 1
                if arrived > 1:
                    world.trace.append(f"  (the {arrived} inputs above arrive together)")
            if not world.has_task(run_id):
                world.trace.append("nothing more can arrive: the run waits forever")
                break
        return _Play(world.history(run_id), boundaries, answers, world.trace, instance.finished,
                     _ask(instance, codec, queries))
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
            if expected is not None:
                got = _ask(resumed, codec, queries)
                if got != expected:
                    raise fail(f"queries after replaying {cut} events", f"{got!r} on replay, {expected!r} live")
                if resumed.query_refused:  # dropped and replayed, as an engine does
                    resumed.close()
                    resumed = WorkflowInstance(workflow, run_id, codec)
                    resumed.apply(events[:cut])
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
