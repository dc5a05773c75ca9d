"""Logging: workflow lines once per real step (not at replays), records carry the run's fields."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

import retold
from retold.testing import Replayer
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

wf_log = retold.get_logger("tests.logging.workflow")
plain_log = logging.getLogger("tests.logging.plain")  # a user's own stdlib logger


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, logger: str) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == logger]


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    handler.addFilter(retold.RunContextFilter())  # as the docs tell users to do
    loggers = [logging.getLogger(name) for name in (
        "tests.logging.workflow", "tests.logging.plain", "retold.app", "retold.activity")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@retold.activity
async def note(step: str) -> str:
    retold.logger.info("activity %s", step)
    plain_log.info("plain %s", step)
    return step


@retold.workflow
async def chatty(steps: int) -> int:
    status = "working"
    retold.set_query_handler("status", lambda: status)
    wf_log.info("begin")
    for i in range(steps):
        await retold.execute(note, f"s{i}")
        wf_log.info("after %d", i)
    status = "waiting"
    await retold.wait_signal("go")
    wf_log.info("signalled")
    await retold.execute(note, "last")
    wf_log.info("end")
    return steps


async def wait_status(engine: retold.Engine, workflow_id: str, status: str) -> None:
    """Wait until the run reports ``status`` and its step to there is committed (it waits for a signal)."""
    handle = engine.get_handle(workflow_id)
    with anyio.fail_after(20):
        while True:
            history = await handle.history()
            if history[-1].type == "WorkflowTaskCompleted" and await handle.query("status") == status:
                return
            await anyio.sleep(0.02)


async def test_each_workflow_line_once_across_evictions_queries_and_a_restart(
    make_engine: EngineFactory, collected: Collect, tmp_path: Path
) -> None:
    ids = ["log-a", "log-b"]
    # A cache of one run: the two runs evict each other at every step, so
    # each step replays the run's history before running on.
    async with make_engine([chatty], [note], cache_size=1) as engine:
        for workflow_id in ids:
            await engine.start(chatty.with_options(id=workflow_id), 3)
        for workflow_id in ids:
            await wait_status(engine, workflow_id, "waiting")
            for _ in range(3):  # queries replay the run (it is not cached, or it is)
                assert await engine.get_handle(workflow_id).query("status") == "waiting"
        assert engine.cache.evictions > 0
    # A restart: the new engine has nothing cached, and replays each run.
    async with make_engine([chatty], [note], cache_size=1) as engine:
        for workflow_id in ids:
            await engine.get_handle(workflow_id).signal("go", None)
        for workflow_id in ids:
            assert await engine.get_handle(workflow_id).result(timeout=20) == 3
            assert await engine.get_handle(workflow_id).query("status") == "waiting"
        runs = {workflow_id: (await engine.get_handle(workflow_id).describe()).run_id for workflow_id in ids}

    workflow_lines = [r for r in collected.records if r.name == "tests.logging.workflow"]
    expected = ["begin", "after 0", "after 1", "after 2", "signalled", "end"]
    for workflow_id in ids:
        mine = [r for r in workflow_lines if r.workflow_id == workflow_id]  # type: ignore[attr-defined]
        assert [r.getMessage() for r in mine] == expected
        for record in mine:
            assert (record.workflow, record.run_id) == ("chatty", runs[workflow_id])  # type: ignore[attr-defined]
            assert (record.filename, record.funcName) == ("test_logging.py", "chatty")  # the caller's line
    # Activities ran once each (none failed): one line each, with the activity's fields.
    for name in ("retold.app", "tests.logging.plain"):
        records = [r for r in collected.records if r.name == name]
        assert Counter(r.getMessage().split()[-1] for r in records) == Counter(
            {"s0": 2, "s1": 2, "s2": 2, "last": 2})
        for record in records:
            assert record.activity == "note"  # type: ignore[attr-defined]
            assert record.attempt == 1  # type: ignore[attr-defined]
            assert record.workflow == "chatty"  # type: ignore[attr-defined]
            assert record.run_id == runs[record.workflow_id]  # type: ignore[attr-defined]


@retold.activity(retry=retold.RetryPolicy(initial_interval=timedelta(milliseconds=10), jitter=0))
async def fails_once() -> str:
    if retold.activity_info().attempt == 1:
        raise ConnectionError("the card service hung up")
    return "ok"


@retold.workflow
async def calls_fails_once() -> str:
    return await retold.execute(fails_once)


async def test_a_failed_attempt_logs_a_warning_with_the_run_and_the_error(
    make_engine: EngineFactory, collected: Collect
) -> None:
    async with make_engine([calls_fails_once], [fails_once]) as engine:
        run = await engine.start(calls_fails_once.with_options(id="fails-once"))
        assert await run.result(timeout=10) == "ok"
    warnings = [r for r in collected.records if r.name == "retold.activity" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    record = warnings[0]
    assert "the card service hung up" in record.getMessage()
    assert "ConnectionError" in record.getMessage()
    assert run.run_id is not None
    assert run.run_id in record.getMessage()
    assert (record.workflow, record.workflow_id, record.run_id) == (  # type: ignore[attr-defined]
        "calls_fails_once", "fails-once", run.run_id)
    assert (record.activity, record.attempt) == ("fails_once", 1)  # type: ignore[attr-defined]


def test_the_filter_outside_runs_gives_empty_fields_and_keeps_given_ones(collected: Collect) -> None:
    plain_log.info("outside", extra={"run_id": "given"})
    wf_log.info("outside too")
    first, second = collected.records[-2:]
    assert (first.workflow, first.workflow_id, first.run_id) == ("", "", "given")  # type: ignore[attr-defined]
    assert (second.workflow, second.run_id) == ("", "")  # type: ignore[attr-defined]
    assert not hasattr(first, "activity")


async def test_the_replayer_logs_nothing(make_engine: EngineFactory, collected: Collect) -> None:
    async with make_engine([chatty], [note]) as engine:
        run = await engine.start(chatty.with_options(id="replayed"), 1)
        await wait_status(engine, "replayed", "waiting")
        await run.signal("go", None)
        await run.result(timeout=10)
        history = await run.history()
    before = len(collected.messages("tests.logging.workflow"))
    assert before == 4
    Replayer(workflows=[chatty]).replay(history)
    assert len(collected.messages("tests.logging.workflow")) == before
