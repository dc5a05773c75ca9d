"""Step threads: workflow steps leave the engine's loop, share few threads, and a long one holds up no other."""

from __future__ import annotations

import threading
import time
from functools import partial

import anyio
import pytest

from retold.runtime import StepRunner

pytestmark = pytest.mark.anyio


def _step_threads(runner: StepRunner) -> list[threading.Thread]:
    """The runner's live step threads (other tests' engines may have step threads of their own)."""
    return [t for t in runner.threads if t.is_alive()]


async def _until(condition: object, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.02)


async def test_many_steps_at_once_each_get_their_own_result_on_few_threads() -> None:
    runner = StepRunner(5.0)
    results: dict[int, int] = {}
    threads: set[int] = set()

    def step(i: int) -> int:
        threads.add(threading.get_ident())
        return i * i

    async def one(i: int) -> None:
        results[i] = await runner.run(f"r{i}", lambda: step(i))

    try:
        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(one, i)
        assert results == {i: i * i for i in range(300)}
        assert len(threads) <= 2  # quick steps share one thread (a second only if one waited 50 ms)
    finally:
        runner.close()


async def test_a_long_step_holds_up_no_other_and_its_spare_thread_ends_when_idle() -> None:
    runner = StepRunner(10.0)
    release = threading.Event()
    order: list[str] = []

    seen: set[threading.Thread] = set()

    def long_step() -> str:
        seen.add(threading.current_thread())
        release.wait(20)
        order.append("long")
        return "long"

    async def long_one() -> None:
        assert await runner.run("slow", long_step) == "long"

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_one)
            await _until(lambda: _step_threads(runner))
            await anyio.sleep(0.05)  # it is running now
            # Quick steps submitted while it runs get a thread of their own and finish first.
            def quick(i: int) -> int:
                seen.add(threading.current_thread())
                order.append(f"quick-{i}")
                return i

            for i in range(5):
                with anyio.fail_after(10):
                    assert await runner.run(f"quick-{i}", partial(quick, i)) == i
            assert order == [f"quick-{i}" for i in range(5)]
            release.set()
        assert order[-1] == "long"
        # The spare thread ends once idle; one stays for the next steps.
        await _until(lambda: len(_step_threads(runner)) <= 1, timeout=30)
    finally:
        release.set()
        runner.close()
    await _until(lambda: not any(t.is_alive() for t in seen), timeout=30)


async def test_the_limit_counts_from_when_a_step_starts() -> None:
    # A step that runs 0.3 s under a 1 s limit is not deadlocked, however many steps ran before it.
    runner = StepRunner(1.0)

    def busy(seconds: float) -> float:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        return seconds

    try:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(runner.run, f"r{i}", lambda: busy(0.3))
    finally:
        runner.close()
