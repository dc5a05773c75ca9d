"""Signals that arrive together are delivered in history order, across names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

import retold
from retold.testing import assert_deterministic, replay

pytestmark = pytest.mark.anyio

ARRIVALS = [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3"), ("b", "b3")]


@retold.workflow
async def two_listeners() -> list[str]:
    seen: list[str] = []

    async def listen(name: str) -> None:
        for _ in range(3):
            seen.append(str(await retold.wait_signal(name, str)))

    await asyncio.gather(listen("a"), listen("b"))
    return seen


async def test_signals_of_different_names_in_one_activation_come_out_in_history_order(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'signals.db'}"
    # No worker: the start and every signal wait in the store, so the run
    # takes them in as one activation when a worker comes.
    async with retold.Engine(url, workflows=[two_listeners], run_workers=False) as client:
        run = await client.start(two_listeners.with_options(id="listeners"))
        for name, value in ARRIVALS:
            await run.signal(name, value)
    async with retold.Engine(url, workflows=[two_listeners], poll_interval=0.05) as engine:
        run = engine.get_handle("listeners")
        with anyio.fail_after(60):
            result = await run.result()
        history = await run.history()
    # They arrived as one activation: no command between the signals.
    kinds = [type(e).__name__ for e in history.events]
    first = kinds.index("SignalReceived")
    assert kinds[first:first + len(ARRIVALS)] == ["SignalReceived"] * len(ARRIVALS)
    assert result == [value for _, value in ARRIVALS]
    assert replay(two_listeners, history).finished


def test_the_property_runner_finds_signal_order_deterministic() -> None:
    assert_deterministic(two_listeners, signals=ARRIVALS, max_examples=50)
