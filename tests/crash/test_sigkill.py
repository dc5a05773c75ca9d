"""Crash recovery with real processes and a real SIGKILL.

Each test runs workflows of several activities in a child process on a SQLite
file (``_worker.py crash``), SIGKILLs it mid-run, then opens a new engine on
the same file in a second child process (``_worker.py recover``) that only
waits on handles: nobody restarts anything by hand. The test then reads the
SQLite file itself (read-only) and the activities' append-only log and checks:

* every run completes with the right result;
* no activity whose completion was recorded before the kill runs again;
* an activity that was in flight at the kill runs again, with the same
  idempotency key (``retold.activity_info().idempotency_key``);
* event numbers are 1..N, gap-free, with no duplicate; one
  ``ActivityCompleted`` per ``ActivityScheduled``; the events on disk at the
  kill are an exact prefix of the final history;
* recovery starts within a few seconds of the new engine opening.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import pytest

from retold.history import events as ev

WORKER = Path(__file__).with_name("_worker.py")
LEASE = 2.0  # lease of the engine that gets killed: its tasks come back this fast
RECOVERY_BOUND = 20.0  # seconds from the new engine opening to the in-flight re-runs (a loaded machine)
WAIT = 20.0  # generous bound on waiting for the child to reach the kill point

EventRow = tuple[int, str, float, bytes, bytes | None]  # seq, type, at, meta, payload


@dataclass(frozen=True)
class RunSpec:
    """One workflow run of ``crash_chain`` (see ``_worker.py``)."""

    id: str
    steps: int = 5
    block: int = 0  # the step left in flight in the crash phase (0: none)
    delay: float = 0.0  # each activity's duration
    sleep_after: int = 0  # a durable timer after this step (0: none)
    sleep_seconds: float = 0.0

    def expected(self) -> list[str]:
        return [f"{self.id}:step{step}" for step in range(1, self.steps + 1)]


@dataclass(frozen=True)
class Snapshot:
    """What the SQLite file holds: runs by workflow id, and their events."""

    runs: dict[str, tuple[str, str]]  # workflow id -> (run id, status)
    events: dict[str, list[EventRow]]  # run id -> rows ordered by seq
    leftovers: dict[str, int]  # pending rows in the task and timer tables

    def history(self, workflow_id: str) -> list[EventRow]:
        run = self.runs.get(workflow_id)
        return [] if run is None else self.events.get(run[0], [])


def read_snapshot(db: Path) -> Snapshot:
    """Read the store's tables through a separate read-only connection."""
    if not db.exists():
        return Snapshot({}, {}, {})
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        conn.execute("PRAGMA busy_timeout=10000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "retold_events" not in tables:
            return Snapshot({}, {}, {})
        conn.execute("BEGIN")  # one consistent read transaction for every table
        runs = {
            wf: (run_id, status)
            for wf, run_id, status in conn.execute(
                "SELECT workflow_id, run_id, status FROM retold_runs"
            )
        }
        events: dict[str, list[EventRow]] = collections.defaultdict(list)
        for run_id, seq, type_, at, meta, payload in conn.execute(
            "SELECT r.run_id, e.seq, c.name, e.at, e.meta, e.payload FROM retold_events e"
            " JOIN retold_runs r ON r.rk = e.rk JOIN retold_event_types c ON c.code = e.type"
            " ORDER BY r.run_id, e.seq"
        ):
            events[run_id].append((seq, type_, at, meta, payload))
        leftovers = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("retold_activity_tasks", "retold_timers", "retold_workflow_tasks")
        }
        conn.execute("COMMIT")
    return Snapshot(runs, dict(events), leftovers)


def decode(rows: list[EventRow]) -> list[ev.Event]:
    return [ev.decode_event(seq, at, type_, meta, payload) for seq, type_, at, meta, payload in rows]


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass
class Scenario:
    """Two child processes on one SQLite file, and the activities' log."""

    tmp: Path
    runs: list[RunSpec]
    lease: float | None = LEASE  # of both engines; None: the engine's default (5 s)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    files: list[IO[bytes]] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.tmp / "retold.db"

    @property
    def log(self) -> Path:
        return self.tmp / "activities.log"

    def _spawn(self, phase: str, stdout: int | None) -> subprocess.Popen[bytes]:
        spec = {"lease": self.lease, "timeout": 40.0, "runs": [asdict(r) for r in self.runs]}
        stderr = (self.tmp / f"{phase}.stderr").open("wb")
        self.files.append(stderr)
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), phase, str(self.db), str(self.log), json.dumps(spec)],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=self.tmp,
        )
        self.procs.append(proc)
        return proc

    def stderr(self, phase: str) -> str:
        path = self.tmp / f"{phase}.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_crash_phase(self) -> subprocess.Popen[bytes]:
        return self._spawn("crash", subprocess.DEVNULL)

    def wait_until(self, proc: subprocess.Popen[bytes], what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"crash-phase worker exited ({proc.returncode}) before {what}:\n"
                            f"{self.stderr('crash')}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}:\n{self.stderr('crash')}")
            time.sleep(0.02)

    def sigkill(self, proc: subprocess.Popen[bytes]) -> tuple[Snapshot, Snapshot, float]:
        """Snapshot, SIGKILL, reap, snapshot again; return both and the kill time."""
        before = read_snapshot(self.db)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.time()
        assert proc.returncode == -signal.SIGKILL, self.stderr("crash")
        at_kill = read_snapshot(self.db)
        # Nothing recorded before the kill is lost or rewritten by it.
        for wf in before.runs:
            assert at_kill.history(wf)[: len(before.history(wf))] == before.history(wf)
        return before, at_kill, killed_at

    def recover(self) -> tuple[dict[str, list[str]], int]:
        """Run a new engine on the same file until every run is done."""
        proc = self._spawn("recover", subprocess.PIPE)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"recovery did not finish:\n{self.stderr('recover')}")
        assert proc.returncode == 0, self.stderr("recover")
        results: dict[str, list[str]] = json.loads(out.decode().strip().splitlines()[-1])
        return results, proc.pid

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        for f in self.files:
            f.close()


class ScenarioFactory(Protocol):
    def __call__(self, runs: list[RunSpec], lease: float | None = ...) -> Scenario: ...


@pytest.fixture
def scenario_factory(tmp_path: Path) -> Iterator[ScenarioFactory]:
    made: list[Scenario] = []

    def make(runs: list[RunSpec], lease: float | None = LEASE) -> Scenario:
        scenario = Scenario(tmp_path, runs, lease)
        made.append(scenario)
        return scenario

    yield make
    for scenario in made:
        scenario.close()


@dataclass
class Report:
    """What the invariant check found, for scenario-specific assertions."""

    in_flight: dict[str, list[int]] = field(default_factory=dict)  # wf -> steps re-run
    recovery_latency: list[float] = field(default_factory=list)  # re-run start - engine open
    engine_open: float = 0.0


def check_invariants(
    scenario: Scenario, at_kill: Snapshot, final: Snapshot, results: dict[str, list[str]],
    crash_pid: int, recover_pid: int,
) -> Report:
    """The properties every crash scenario must keep, for every run."""
    log = read_log(scenario.log)
    pids = {entry["pid"] for entry in log}
    assert pids <= {crash_pid, recover_pid}, f"log lines from unknown processes: {pids}"
    opens = [e["t"] for e in log if e["ev"] == "engine-open" and e["pid"] == recover_pid]
    assert len(opens) == 1
    report = Report(engine_open=opens[0])
    assert final.leftovers == dict.fromkeys(final.leftovers, 0), final.leftovers

    for spec in scenario.runs:
        wf = spec.id
        assert results[wf] == spec.expected()
        run_id, status = final.runs[wf]
        assert status == "completed"
        assert at_kill.runs[wf][0] == run_id, "the restarted engine must continue the same run"

        # Events: 1..N, gap-free, no duplicate; what was on disk at the kill is a prefix.
        rows = final.history(wf)
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        kill_rows = at_kill.history(wf)
        assert rows[: len(kill_rows)] == kill_rows, "history before the kill was rewritten"
        events = decode(rows)
        assert isinstance(events[0], ev.WorkflowStarted)
        assert isinstance(events[-1], ev.WorkflowCompleted)
        assert sum(isinstance(e, ev.TERMINAL_TYPES) for e in events) == 1
        assert not [e for e in events if isinstance(e, ev.ActivityFailed | ev.ActivityTimedOut)]

        # One ActivityScheduled per step, in order, each completed exactly once.
        scheduled = [e for e in events if isinstance(e, ev.ActivityScheduled)]
        steps = [json.loads(e.input)[1] for e in scheduled]
        assert steps == list(range(1, spec.steps + 1)), f"{wf}: steps scheduled {steps}"
        completions = collections.Counter(
            e.scheduled for e in events if isinstance(e, ev.ActivityCompleted)
        )
        assert completions == collections.Counter(e.seq for e in scheduled), f"{wf}: {completions}"

        # Timers: each started timer fired exactly once, never early.
        started = {e.seq: e for e in events if isinstance(e, ev.TimerStarted)}
        fired = [e for e in events if isinstance(e, ev.TimerFired)]
        assert sorted(e.started for e in fired) == sorted(started)
        for f in fired:
            assert f.at >= started[f.started].at + started[f.started].duration - 1e-6

        kill_events = decode(kill_rows)
        done_at_kill = {e.scheduled for e in kill_events if isinstance(e, ev.ActivityCompleted)}
        scheduled_at_kill = {e.seq for e in kill_events if isinstance(e, ev.ActivityScheduled)}
        for event, step in zip(scheduled, steps, strict=True):
            key = f"{wf}/{run_id}/{event.seq}"
            entries = [e for e in log if e.get("wf") == wf and e.get("step") == step]
            assert {e["key"] for e in entries} == {key}, f"{wf} step {step}: idempotency keys differ"
            assert {(e["run_id"], e["seq"]) for e in entries} == {(run_id, event.seq)}
            starts_before = [e for e in entries if e["ev"] == "start" and e["pid"] == crash_pid]
            starts_after = [e for e in entries if e["ev"] == "start" and e["pid"] == recover_pid]
            dones_after = [e for e in entries if e["ev"] == "done" and e["pid"] == recover_pid]
            assert len(starts_before) <= 1, f"{wf} step {step}: {entries}"
            assert len(starts_after) <= 1, f"{wf} step {step}: {entries}"
            # No failures happen here. The crashed process's attempt counts: a task it
            # had claimed (even if the body never got to run) is attempt 2 afterwards.
            attempts = [e["attempt"] for e in entries]
            assert attempts == sorted(attempts), f"{wf} step {step}: {entries}"
            if starts_before:
                assert attempts[0] == 1, f"{wf} step {step}: {entries}"
            if starts_after:
                assert starts_after[0]["attempt"] in (1, 2), f"{wf} step {step}: {entries}"
                if starts_before:
                    assert starts_after[0]["attempt"] == 2, f"{wf} step {step}: {entries}"
            if event.seq in done_at_kill:
                # Completed before the kill: never runs again.
                assert not starts_after, f"{wf} step {step} completed before the kill but ran again"
                assert len([e for e in entries if e["ev"] == "done"]) == 1
            elif event.seq in scheduled_at_kill and starts_before:
                # In flight at the kill: runs again, same key, soon after the new engine opened.
                assert len(starts_after) == 1, f"{wf} step {step}: {entries}"
                assert len(dones_after) == 1, f"{wf} step {step}: {entries}"
                report.in_flight.setdefault(wf, []).append(step)
                report.recovery_latency.append(starts_after[0]["t"] - report.engine_open)
            else:
                # Scheduled but never started, or scheduled only after the kill.
                assert not starts_before, f"{wf} step {step}: {entries}"
                assert len(starts_after) == 1, f"{wf} step {step}: {entries}"
                assert len(dones_after) == 1, f"{wf} step {step}: {entries}"
    for latency in report.recovery_latency:
        assert 0 <= latency <= RECOVERY_BOUND, f"in-flight activity re-ran {latency:.2f} s after open"
    return report


def started_steps(scenario: Scenario, pid: int) -> set[tuple[str, int]]:
    return {(e["wf"], e["step"]) for e in read_log(scenario.log) if e["ev"] == "start" and e["pid"] == pid}


@pytest.mark.parametrize("lease", [LEASE, None], ids=["lease-2s", "default-lease"])
def test_sigkill_with_activity_in_flight(scenario_factory: ScenarioFactory, lease: float | None) -> None:
    spec = RunSpec("order-1", steps=5, block=3)
    scenario = scenario_factory([spec], lease)
    proc = scenario.start_crash_phase()
    scenario.wait_until(proc, "step 3 to start", lambda: ("order-1", 3) in started_steps(scenario, proc.pid))

    before, at_kill, _ = scenario.sigkill(proc)
    assert before.history("order-1") == at_kill.history("order-1")  # nothing moved while blocked
    kill_types = [e.type for e in decode(at_kill.history("order-1"))]
    assert kill_types == [
        "WorkflowStarted",
        "ActivityScheduled", "ActivityCompleted",
        "ActivityScheduled", "ActivityCompleted",
        "ActivityScheduled",
    ]

    results, recover_pid = scenario.recover()
    final = read_snapshot(scenario.db)
    report = check_invariants(scenario, at_kill, final, results, proc.pid, recover_pid)
    assert report.in_flight == {"order-1": [3]}
    print(f"in-flight step re-ran {report.recovery_latency[0]:.2f} s after the new engine opened")

    log = read_log(scenario.log)
    for step in (1, 2):
        assert [e["ev"] for e in log if e.get("step") == step] == ["start", "done"]
    step3 = [e for e in log if e.get("step") == 3 and e["ev"] == "start"]
    assert len(step3) == 2
    assert step3[0]["key"] == step3[1]["key"]
    assert [e.type for e in decode(final.history("order-1"))] == [
        "WorkflowStarted",
        *["ActivityScheduled", "ActivityCompleted"] * 5,
        "WorkflowCompleted",
    ]


def test_a_dead_engine_on_this_machine_is_taken_over_before_its_lease_ends(
    scenario_factory: ScenarioFactory,
) -> None:
    spec = RunSpec("order-9", steps=3, block=2)
    scenario = scenario_factory([spec], 60.0)  # without dead-worker detection: a minute
    proc = scenario.start_crash_phase()
    scenario.wait_until(proc, "step 2 to start", lambda: ("order-9", 2) in started_steps(scenario, proc.pid))
    _, at_kill, _ = scenario.sigkill(proc)
    results, recover_pid = scenario.recover()
    final = read_snapshot(scenario.db)
    report = check_invariants(scenario, at_kill, final, results, proc.pid, recover_pid)
    assert report.in_flight == {"order-9": [2]}
    assert report.recovery_latency[0] < 20.0  # well before the 60 s lease, on a loaded machine too
    print(f"in-flight step re-ran {report.recovery_latency[0]:.2f} s after the new engine opened (lease 60 s)")


def test_sigkill_while_waiting_on_a_durable_timer(
    scenario_factory: ScenarioFactory,
) -> None:
    spec = RunSpec("timer-1", steps=4, sleep_after=2, sleep_seconds=3.0)
    scenario = scenario_factory([spec])
    proc = scenario.start_crash_phase()

    def timer_started() -> bool:
        return any(row[1] == "TimerStarted" for row in read_snapshot(scenario.db).history("timer-1"))

    scenario.wait_until(proc, "the timer to start", timer_started)
    _, at_kill, killed_at = scenario.sigkill(proc)
    kill_events = decode(at_kill.history("timer-1"))
    assert isinstance(kill_events[-1], ev.TimerStarted)
    assert kill_events[-1].duration == 3.0
    assert not any(isinstance(e, ev.TimerFired) for e in kill_events)

    results, recover_pid = scenario.recover()
    final = read_snapshot(scenario.db)
    report = check_invariants(scenario, at_kill, final, results, proc.pid, recover_pid)
    assert report.in_flight == {}

    events = decode(final.history("timer-1"))
    timer = kill_events[-1]
    (fired,) = [e for e in events if isinstance(e, ev.TimerFired)]
    assert fired.started == timer.seq
    due = timer.at + timer.duration
    assert fired.at >= killed_at, "the timer must be fired by the restarted engine"
    assert fired.at - max(due, report.engine_open) <= 10.0, "the restarted engine fired the timer late"
    log = read_log(scenario.log)
    for step in (1, 2, 3, 4):
        assert [e["ev"] for e in log if e.get("step") == step] == ["start", "done"]
    step3 = next(e for e in log if e.get("step") == 3)
    assert step3["pid"] == recover_pid
    assert step3["t"] >= fired.at
    print(f"timer due {due - killed_at:+.2f} s after the kill, fired {fired.at - due:.2f} s after due")


def test_sigkill_with_many_concurrent_runs(scenario_factory: ScenarioFactory) -> None:
    # 20 runs, each left with a different step in flight (1..5) at the kill.
    runs = [RunSpec(f"many-{i:02d}", steps=5, block=i % 5 + 1) for i in range(20)]
    scenario = scenario_factory(runs)
    proc = scenario.start_crash_phase()
    targets = {(r.id, r.block) for r in runs}
    scenario.wait_until(proc, "every run's blocking step to start",
                        lambda: targets <= started_steps(scenario, proc.pid))

    _, at_kill, _ = scenario.sigkill(proc)
    results, recover_pid = scenario.recover()
    final = read_snapshot(scenario.db)
    report = check_invariants(scenario, at_kill, final, results, proc.pid, recover_pid)
    assert report.in_flight == {r.id: [r.block] for r in runs}
    print(f"20 in-flight steps re-ran {min(report.recovery_latency):.2f}"
          f"..{max(report.recovery_latency):.2f} s after the new engine opened")


def test_sigkill_at_an_arbitrary_point(scenario_factory: ScenarioFactory) -> None:
    # Nothing blocks: the kill lands wherever 20 busy runs happen to be,
    # some in activities, some committing, some waiting on short timers.
    runs = [
        RunSpec(f"busy-{i:02d}", steps=5, delay=0.05,
                sleep_after=3 if i % 4 == 0 else 0, sleep_seconds=0.5)
        for i in range(20)
    ]
    scenario = scenario_factory(runs)
    proc = scenario.start_crash_phase()

    def enough_done() -> bool:
        log = read_log(scenario.log)
        done: int = sum(e["ev"] == "done" for e in log)
        return done >= 40 and any(e["ev"] == "started-all" for e in log)

    scenario.wait_until(proc, "every run to start and 40 activities to finish", enough_done)
    _, at_kill, _ = scenario.sigkill(proc)
    assert any(at_kill.runs[r.id][1] == "running" for r in runs), "the kill came too late"
    results, recover_pid = scenario.recover()
    final = read_snapshot(scenario.db)
    report = check_invariants(scenario, at_kill, final, results, proc.pid, recover_pid)
    print(f"{sum(map(len, report.in_flight.values()))} in-flight steps re-ran")
