"""Suspects (tasks whose last two holders died) run one at a time, and promptly, in one engine.

Two runs' workflow tasks are suspects: each was leased twice to a worker
that died with it. The engine's claims take one suspect at a time, and a
suspect's step waits in ``WorkflowWorker._alone`` until nothing else runs in
the process. Before the fix, a claim made while the suspect of the previous
claim was not loaded yet (a slow read: SQLite beside 50 busy runs) took the
second one too: each suspect then waited for the other to end, both waited
out the limit of that wait (10 s here), then ran together. The poison
scale-out test on SQLite took 51-66 s, its healthy runs stalled 12 s per death.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import retold
from retold.engine._workflow_worker import WorkflowWorker
from retold.stores import open_store

pytestmark = pytest.mark.anyio

LEASE = 1.0  # the wait for a suspect's turn to run alone gives up after max(2 x lease, 10 s)


@retold.workflow
async def steady(n: int) -> int:
    return n


@pytest.mark.parametrize("claims", ["as they are", "racing"])
async def test_two_suspects_run_one_after_the_other_without_waiting_for_each_other(
    shared_url: str, monkeypatch: pytest.MonkeyPatch, claims: str
) -> None:
    if claims == "racing":
        # A second suspect in the process anyway (as the claims were before the
        # fix): it waits for its turn, and the first one does not wait for it.
        monkeypatch.setattr(WorkflowWorker, "_may_take_a_suspect", lambda self: not self.suspects)
    async with retold.Engine(shared_url, workflows=[steady], run_workers=False, poll_interval=0.05) as client:
        runs = [await client.start(steady, n) for n in range(2)]
        ids = sorted(run.run_id or "" for run in runs)
        for owner in ("dead-1", "dead-2"):  # two holders that died with both tasks
            assert sorted(await client.store.claim_workflow_tasks(owner, ["steady"], 10, 0.05)) == ids
            await anyio.sleep(0.1)
        for run_id in ids:
            assert (await client.store.load(run_id, 0))[0].task_lapses == 1  # the next claim makes it a suspect

        store = open_store(shared_url)
        load = store.load

        async def slow_load(run_id: str, after: int) -> Any:
            await anyio.sleep(0.3)  # a busy store: the claim loop comes round before the claimed task is read
            return await load(run_id, after)

        monkeypatch.setattr(store, "load", slow_load)
        engine = retold.Engine(store=store, workflows=[steady], lease=LEASE, poll_interval=0.05)
        marked: list[tuple[str, set[str]]] = []  # each suspect's step as it starts, and the suspects in the process
        mark = engine.runs.mark_stepping

        async def spy(run_id: str, owner: str) -> bool:
            assert engine.workflow_worker is not None
            marked.append((run_id, set(engine.workflow_worker.suspects)))
            return await mark(run_id, owner)

        monkeypatch.setattr(engine.runs, "mark_stepping", spy)
        async with engine:
            with anyio.fail_after(5):  # waiting for each other: 10 s
                assert sorted([await run.result() for run in runs]) == [0, 1]
    assert sorted(run_id for run_id, _ in marked) == ids, marked  # both ran as suspects, once each
    for run_id, suspects in marked:
        assert suspects == {run_id}, marked  # alone: no other suspect in the process
