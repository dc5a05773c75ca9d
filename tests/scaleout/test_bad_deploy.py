"""A bad deploy under 100 parked runs, on real worker processes: they stay open and blocked; a rollback completes them.

The fleet runs ``_deploy_v1``; 100 runs wait for a signal. The fleet is
replaced by ``_deploy_v2``, whose code no longer replays them: signalled,
every run is blocked (open, its workflow task retried, the diverging event
and the error in its description), past the attempts after which it used
to fail. Rolled back to ``_deploy_v1``, every run completes, its history
untouched by the bad deploy.
"""

from __future__ import annotations

import signal

import anyio
import pytest

import retold
from tests.scaleout.conftest import Spawn

pytestmark = pytest.mark.anyio

RUNS = 100
V1, V2 = "tests.scaleout._deploy_v1:APP", "tests.scaleout._deploy_v2:APP"
OPTIONS = ("--poll-interval", "0.2", "--grace", "5")


async def until(check: object, timeout: float = 60.0) -> None:
    assert callable(check)
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.1)


async def runs(client: retold.Engine, status: str | None = None) -> list[retold.RunDescription]:
    return await client.list_runs(status=status, workflow="fulfil", limit=1000)


async def test_a_bad_deploy_blocks_parked_runs_and_a_rollback_completes_them(shared_url: str, spawn: Spawn) -> None:
    async with retold.Engine(shared_url, run_workers=False, poll_interval=0.2) as client:
        fleet = spawn(V1, shared_url, *OPTIONS).wait_ready()
        handles = [await client.start("fulfil", i, id=f"order-{i}") for i in range(RUNS)]

        async def parked() -> bool:  # reserved, and waiting for "go"
            return sum(r.event_count == 4 for r in await runs(client)) == RUNS

        await until(parked)
        before = {h.workflow_id: [e.type for e in await h.history()] for h in handles}
        fleet.send(signal.SIGTERM)
        assert fleet.wait(30) == 0

        bad = spawn(V2, shared_url, *OPTIONS).wait_ready()
        for handle in handles:
            await handle.signal("go")

        async def all_blocked_past_their_old_limit() -> bool:
            blocked = await runs(client, "blocked")
            return len(blocked) == RUNS and all(r.blocked is not None and r.blocked.attempts >= 3 for r in blocked)

        await until(all_blocked_past_their_old_limit)
        blocked = await runs(client, "blocked")
        assert await runs(client, "running") == []
        assert {r.status for r in await runs(client)} == {"blocked"}
        for run in blocked:
            assert run.closed_at is None
            assert run.event_count == 5  # the signal, and nothing the bad code asked for
            assert run.blocked is not None
            assert run.blocked.type == "retold.errors.NondeterminismError"
            assert run.blocked.seq == 2
            assert "recorded ActivityScheduled(activity='reserve'" in run.blocked.message
        bad.send(signal.SIGTERM)
        assert bad.wait(30) == 0
        assert "is blocked (code " in bad.stderr()

        fleet = spawn(V1, shared_url, *OPTIONS).wait_ready()
        with anyio.fail_after(60):
            results = [await handle.result() for handle in handles]
        assert results == [f"shipped {i}" for i in range(RUNS)]
        assert {r.status for r in await runs(client)} == {"completed"}
        for handle in handles:
            history = [e.type for e in await handle.history()]
            assert history[:4] == before[handle.workflow_id]
            assert history[4:] == ["SignalReceived", "ActivityScheduled", "ActivityCompleted", "WorkflowCompleted"]
        fleet.send(signal.SIGTERM)
        assert fleet.wait(30) == 0
