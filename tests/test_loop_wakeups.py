"""Waking the engine's loop from the writer and step threads: one-time flags, one callback per loop."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from retold._wake import done_and_poster
from retold.runtime import _steps
from retold.stores.sql import _writer

pytestmark = pytest.mark.anyio


async def test_a_flag_set_by_another_thread_wakes_its_waiter() -> None:
    done, post = done_and_poster()
    thread = threading.Thread(target=post, args=(done.set,))
    thread.start()
    await done.wait()  # no time limit: only the set can end it
    thread.join()
    await done.wait(0)  # set: returns at once, every time


async def test_a_flag_wait_ends_at_its_time_limit_or_when_cancelled() -> None:
    done, _ = done_and_poster()
    began = anyio.current_time()
    await done.wait(0.05)  # never set: the time limit ends it
    assert anyio.current_time() - began >= 0.04
    with anyio.CancelScope() as scope:
        scope.cancel()
        await done.wait()  # cancelled, as an anyio Event's wait would be
    assert scope.cancelled_caught
    with anyio.move_on_after(0.01) as scope:
        await done.wait(30)
    assert scope.cancelled_caught
    done.set()
    await done.wait()  # still usable after a cancelled wait


class _Loop:
    """Stands for an event loop: its ``post`` is a new bound method at each access, as a loop_poster is."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def post(self, callback: Any) -> None:
        self.callbacks.append(callback)


class _Flag:
    def __init__(self) -> None:
        self.is_set = False

    def set(self) -> None:
        self.is_set = True


def test_a_batch_of_commits_wakes_each_loop_once() -> None:
    a, b = _Loop(), _Loop()
    items = []
    for loop in (a, b, a, a):
        item = _writer._Queued.__new__(_writer._Queued)
        item.post, item.done = loop.post, _Flag()  # type: ignore[assignment]
        items.append(item)
    _writer._wake(items)
    assert (len(a.callbacks), len(b.callbacks)) == (1, 1)  # was one per item: a wake-up each
    for callback in a.callbacks + b.callbacks:
        callback()
    assert all(item.done.is_set for item in items)  # type: ignore[attr-defined]


def test_steps_finished_together_wake_their_loop_once() -> None:
    loop = _Loop()
    jobs = []
    for _ in range(3):
        job = _steps._Job.__new__(_steps._Job)
        job.post, job.done = loop.post, _Flag()  # type: ignore[assignment]
        jobs.append(job)
    _steps._wake(jobs)
    assert len(loop.callbacks) == 1
    loop.callbacks[0]()
    assert all(job.done.is_set for job in jobs)  # type: ignore[attr-defined]
