"""Property: however inputs arrive and wherever a process dies, replay agrees.

``retold.testing.assert_deterministic`` drives the workflow the way the
engine does: it stores the commands of each activation, then delivers inputs
(activity outcomes, retried and failed attempts, fired timers, signals, a
cancel request), one or several at a time, in an order hypothesis chooses,
crashing after some activations. Then, for the resulting history:

- a replay from scratch produces no new command and the same query answers,
  so the inputs delivered together live are delivered together on replay;
- a process that died after any stored batch and resumed from the stored
  prefix produces exactly the recorded commands and ends in the same state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import strategies as st

import retold
from retold.testing import assert_deterministic


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


def test_replay_and_resume_agree_with_the_live_run() -> None:
    """retold.testing runs the scenarios; this workflow exercises most of the runtime."""
    assert_deterministic(
        busy,
        args=st.tuples(st.integers(min_value=1, max_value=3)),
        signals=st.lists(
            st.tuples(st.sampled_from(["s0", "s1"]), st.integers(min_value=0, max_value=9)), max_size=6
        ).map(tuple),
        activities=[fetch],
        queries=["log"],
        cancel=True,
        max_examples=120,
    )
