"""Property: however inputs arrive and wherever a process dies, replay agrees.

A simulated environment drives a workflow instance the way the engine does:
it stores the commands of each activation, then delivers inputs (activity
outcomes, fired timers, signals, a cancel request), one or several at a time,
in an order hypothesis chooses. Then, for the resulting history:

- a replay from scratch produces no new command and the same query answers,
  so the inputs delivered together live are delivered together on replay;
- a process that died after any stored batch and resumed from the stored
  prefix produces exactly the recorded commands and ends in the same state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import retold
from retold.history import events as ev
from retold.history.codec import JsonCodec
from retold.runtime._instance import WorkflowInstance


@retold.activity
async def fetch(i: int) -> int:
    return i * 10


@retold.workflow
async def busy(n: int) -> list[Any]:
    log: list[Any] = []
    retold.set_query_handler("log", lambda: list(log))
    lock = asyncio.Lock()

    async def branch(i: int) -> None:
        try:
            value = await retold.execute(fetch, i)
        except retold.ActivityError:
            value = -1
        async with lock:
            log.append(["fetched", i, value])
            signal = await retold.wait_signal(f"s{i % 2}", timeout=30)
            log.append(["signal", i, signal])

    try:
        await asyncio.gather(*(branch(i) for i in range(n)))
        await asyncio.sleep(5)
        log.append(["random", round(retold.random(), 6), retold.side_effect(lambda: "once")])
    except asyncio.CancelledError:
        log.append(["cancelled"])
        await retold.execute(fetch, 99)  # cleanup still runs
    return log


@dataclass
class Simulation:
    """An engine in miniature: numbers events, tracks what can happen next."""

    history: list[ev.Event] = field(default_factory=list)
    activities: list[int] = field(default_factory=list)
    timers: list[int] = field(default_factory=list)
    boundaries: list[int] = field(default_factory=list)
    clock: float = 1000.0

    def store(self, commands: list[ev.Event]) -> None:
        for cmd in commands:
            assert cmd.seq == len(self.history) + 1
            self.history.append(cmd)
            if isinstance(cmd, ev.ActivityScheduled):
                self.activities.append(cmd.seq)
            elif isinstance(cmd, ev.TimerStarted):
                self.timers.append(cmd.seq)
            elif isinstance(cmd, ev.TimerCancelled):
                self.timers.remove(cmd.started)
        self.boundaries.append(len(self.history))

    def append(self, cls: type[ev.Event], **fields: Any) -> ev.Event:
        self.clock += 1.0
        event = cls(seq=len(self.history) + 1, at=self.clock, **fields)
        self.history.append(event)
        return event


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["complete", "fail", "fire", "signal", "cancel"]),
        st.integers(min_value=0, max_value=7),
        st.integers(min_value=1, max_value=3),  # inputs delivered in this batch
    ),
    max_size=40,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(min_value=1, max_value=3), actions=ACTIONS)
def test_replay_and_resume_agree_with_the_live_run(n: int, actions: list[tuple[str, int, int]]) -> None:
    codec = JsonCodec()
    sim = Simulation()
    live = WorkflowInstance(busy, "run-1", codec)
    sim.append(ev.WorkflowStarted, workflow="busy", workflow_id="w", input=orjson.dumps([n]))
    pending = list(sim.history)
    cancelled = False

    for kind, pick, batch in actions + [("complete", 0, 1)] * 12 + [("fire", 0, 1)] * 4:
        if live.finished:
            break
        sim.store(live.apply(pending))
        live.committed(len(sim.history))
        if live.finished:
            break
        pending = []
        for _ in range(batch):
            if kind in ("complete", "fail") and sim.activities:
                seq = sim.activities.pop(pick % len(sim.activities))
                scheduled = sim.history[seq - 1]
                assert isinstance(scheduled, ev.ActivityScheduled)
                if kind == "complete":
                    result = orjson.dumps(10 * orjson.loads(scheduled.input)[0])
                    pending.append(sim.append(ev.ActivityCompleted, scheduled=seq, attempt=1, result=result))
                else:
                    failure = {"type": "ValueError", "message": "no", "details": "", "non_retryable": True}
                    pending.append(sim.append(ev.ActivityFailed, scheduled=seq, attempt=1, failure=failure))
            elif kind == "fire" and sim.timers:
                seq = sim.timers.pop(pick % len(sim.timers))
                pending.append(sim.append(ev.TimerFired, started=seq))
            elif kind == "signal":
                pending.append(sim.append(ev.SignalReceived, name=f"s{pick % 2}", input=orjson.dumps(pick)))
            elif kind == "cancel" and not cancelled and pick == 0:
                cancelled = True
                pending.append(sim.append(ev.CancelRequested))
    if not live.finished and pending:
        sim.store(live.apply(pending))
        live.committed(len(sim.history))

    history = sim.history
    event(f"finished={live.finished}")
    event(f"history>{len(history) // 10 * 10}")
    live_log = None if live.finished else live.query("log", ())

    replayed = WorkflowInstance(busy, "run-1", codec)
    assert replayed.apply(history) == []
    assert replayed.finished == live.finished
    if live_log is not None:
        assert replayed.query("log", ()) == live_log

    for cut in sim.boundaries:
        resumed = WorkflowInstance(busy, "run-1", codec)
        assert resumed.apply(history[:cut]) == []
        resumed.committed(cut)
        assert resumed.apply(history[cut:]) == [], f"resuming after event {cut} diverged"
        assert resumed.finished == live.finished
        if live_log is not None:
            assert resumed.query("log", ()) == live_log
        resumed.close()
    replayed.close()
    live.close()
