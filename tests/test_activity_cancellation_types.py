"""What a workflow that stops waiting for an activity does to it: its cancellation type (issue 14, item 7)."""

from __future__ import annotations

import asyncio
import contextlib

import anyio
import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio

STARTED: dict[str, anyio.Event] = {}
FINISHED: list[str] = []


@retold.activity
async def slow(tag: str) -> str:
    STARTED[tag].set()
    await anyio.sleep(0.3)
    FINISHED.append(tag)
    return tag


@retold.workflow
async def gives_up(cancellation_type: retold.ActivityCancellationType) -> list[str]:
    task = asyncio.ensure_future(retold.execute(slow.with_options(cancellation_type=cancellation_type),
                                                cancellation_type))
    await retold.wait_signal("give-up", str)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await retold.wait_signal("close", str)
    return ["gave up"]


@pytest.mark.parametrize("cancellation_type", ["try_cancel", "abandon"])
async def test_the_cancellation_type_says_whether_the_activity_is_withdrawn_or_left_to_run(
    make_engine: EngineFactory, store_url: str, cancellation_type: retold.ActivityCancellationType,
) -> None:
    STARTED[cancellation_type] = anyio.Event()
    FINISHED.clear()
    async with make_engine([gives_up], [slow], url=store_url) as engine:
        run = await engine.start(gives_up.with_options(id="w"), cancellation_type)
        with anyio.fail_after(30):
            await STARTED[cancellation_type].wait()
        await run.signal("give-up", "now")
        # try_cancel: the give-up step withdraws it; abandon: left to run, it finishes and its outcome is recorded.
        awaited = "ActivityCancelRequested" if cancellation_type == "try_cancel" else "ActivityCompleted"
        with anyio.fail_after(30):
            while awaited not in [e.type for e in await run.history()]:
                await anyio.sleep(0.01)
        await run.signal("close", "now")
        await run.result(timeout=30)
        types = [e.type for e in await run.history()]
    if cancellation_type == "try_cancel":
        assert "ActivityCancelRequested" in types
        assert "ActivityCompleted" not in types  # the running attempt was told and stopped: nothing recorded
        assert FINISHED == []
    else:
        assert "ActivityCancelRequested" not in types
        assert types.count("ActivityCompleted") == 1
        assert FINISHED == ["abandon"]


def test_an_unknown_cancellation_type_is_refused_where_it_is_given() -> None:
    with pytest.raises(retold.ConfigurationError, match="cancellation_type must be one of 'try_cancel', 'abandon'"):
        slow.with_options(cancellation_type="wait")  # type: ignore[arg-type]
