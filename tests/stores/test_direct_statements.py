"""On SQLite the store's hot statements run on the driver, past SQLAlchemy's per-call work."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from retold.engine._machine import ActivityStep, ActivityTake, StartStep
from retold.engine._runs import Runs
from retold.history import events as ev
from retold.stores import ActivityOutcome, StartRequest
from retold.stores.sql import SqlStore
from retold.stores.sql import _schema as t
from retold.stores.sql._fast import Statement

pytestmark = pytest.mark.anyio


async def test_a_workflow_step_sends_nothing_through_sqlalchemy(tmp_path: Any) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'direct.db'}")
    await store.open()
    seen: list[str] = []
    sa.event.listen(store._engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    try:
        scheduled = ev.ActivityScheduled(seq=2, at=0, activity="a", input=b"[]", options={})
        started = ev.WorkflowStarted(seq=1, at=0, workflow="wf", workflow_id="w", input=b"[]")
        take = ActivityTake("me", 5.0, frozenset({"a"}), {"default": 1})
        first = StartStep("r", started, [scheduled], take)
        run, _ = await Runs(store).start(StartRequest("wf", "w", b"[]", "h"), first)
        await store.load(run.run_id, 0)
        [task] = take.taken
        outcome = ActivityOutcome("completed", result=b"1")
        step = ActivityStep(run.run_id, 2, outcome.event(seq=3, at=1.0, scheduled=2, attempt=1),
                            [ev.WorkflowCompleted(seq=4, at=1.0, result=b"1")])
        assert await Runs(store).finish_activity(task, "me", outcome, step)
        assert step.stepped
        assert (await store.get_run(run.run_id)).status == "completed"
    finally:
        await store.close()
    assert seen == []


def test_a_statement_with_a_list_parameter_is_refused_for_the_driver() -> None:
    names = sa.select(t.runs.c.run_id).where(t.runs.c.workflow.in_(sa.bindparam("b", expanding=True)))
    with pytest.raises(TypeError, match="expanding parameter"):
        Statement(names, SqlStore("memory://")._engine.dialect)
