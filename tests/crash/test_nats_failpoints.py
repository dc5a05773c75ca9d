"""Real kills at each step of recording an operation on NATS (docs/nats.md, "Crash analysis").

A worker runs with ``RETOLD_NATS_FAILPOINT=POINT:N[:OP]`` and SIGKILLs itself
the N-th time it reaches POINT while recording an OP; a second worker then
finishes the run. For each point: what the log holds is exactly what happened
(nothing half-applied), the run completes, each activity outcome is
recorded once, and only an activity whose outcome was not recorded runs again.

A ``one_step`` run on a worker is: a claim of its workflow task, transaction
1 (the first step: schedule the activity, leased at once to this worker),
transaction 2 (the activity's outcome and the run's completion).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import retold
from tests.scaleout._app import read_logs
from tests.scaleout.conftest import Spawn, spawn  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


CASES = [
    # (fail point, which pids start the activity: "first", "second")
    ("before_publish:1:claim_workflow_tasks", ["second"]),
    ("after_publish:1:claim_workflow_tasks", ["second"]),
    ("before_publish:1", ["second"]),  # the first step was never recorded
    ("after_publish:1", ["second"]),  # recorded (activity leased to the dead worker), not run
    ("before_publish:2", ["first", "second"]),  # ran, outcome lost with the process: runs again
    ("after_publish:2", ["first"]),  # outcome and completion recorded: never runs again
]


@pytest.mark.parametrize(("failpoint", "starts"), CASES)
async def test_a_kill_at_each_step_leaves_the_log_whole(
    nats_url: str, tmp_path: Path, spawn: Spawn, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    failpoint: str, starts: list[str],
) -> None:
    monkeypatch.setenv("RETOLD_NATS_FAILPOINT", failpoint)
    first = spawn("tests.scaleout._app:ONE_STEP", nats_url, "--lease", "2", "--poll-interval", "0.2")
    monkeypatch.delenv("RETOLD_NATS_FAILPOINT")
    first.wait_ready()
    async with retold.Engine(nats_url, run_workers=False, poll_interval=0.2) as engine:
        run = await engine.start("one_step", "step", 0.05)
        assert first.wait(timeout=30) == -9, first.stderr()  # it died at the fail point
        second = spawn("tests.scaleout._app:ONE_STEP", nats_url, "--lease", "2", "--poll-interval", "0.2")
        pid = await run.result(timeout=60)
        history = [e.type for e in await run.history()]
        second.kill()
    assert history.count("ActivityCompleted") == 1
    assert history.count("WorkflowCompleted") == 1
    names = {first.pid: "first", second.pid: "second"}
    started = [names[line["pid"]] for line in read_logs(tmp_path / "logs") if line["ev"] == "start"]
    assert started == starts
    assert names[pid] == starts[-1]
