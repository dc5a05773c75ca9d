"""A run makes progress under any signal rate, and a run buried in unseen signals refuses more."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import retold
from retold.stores.sql import SqlStore
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.workflow
async def counter() -> int:
    """Count signals until told to stop, recording each count (a command: only a committed step writes it)."""
    count = 0
    while True:
        value = await retold.wait_signal("tick", str)
        if value == "stop":
            return count
        count += 1
        retold.side_effect(_const(count))


def _const(n: int) -> Callable[[], int]:
    return lambda: n


async def consumed(run: retold.RunHandle[int]) -> int:
    """How many signals the run's committed steps have taken in."""
    return sum(1 for e in (await run.history()).events if isinstance(e, retold.history.events.MarkerRecorded))


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flood.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_a_run_consumes_signals_while_they_keep_coming(make_engine: EngineFactory, url: str) -> None:
    """Senders never pause; the run must still take in signals (before: every step conflicted)."""
    async with make_engine([counter], url=url) as engine:
        run = await engine.start(counter.with_options(id="flooded"))
        sent = 0
        progress = 0

        async def flood() -> None:
            nonlocal sent
            while True:
                await run.signal("tick", "x")
                sent += 1

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(flood)
                # The flood goes on until the run has consumed 300 signals.
                while progress < 300:
                    await anyio.sleep(0.05)
                    progress = await consumed(run)
                tg.cancel_scope.cancel()
        assert sent >= progress
        await run.signal("tick", "stop")
        total = await run.result(timeout=60)
        # Every signal acknowledged before "stop" was consumed, in order, none twice.
        history = await run.history()
        ticks = [e for e in history.events if isinstance(e, retold.history.events.SignalReceived)]
        assert total == len(ticks) - 1 == await consumed(run)
    assert total >= sent
    # Each step went on with the cached run: it was not rebuilt from its history per signal.
    assert engine.cache.replays < 10, engine.cache.replays


@retold.workflow
async def take(k: int) -> list[str]:
    """Take ``k`` signals, recording each (a command), then close while senders may still be sending."""
    got: list[str] = []
    for _ in range(k):
        value = await retold.wait_signal("tick", str)
        assert value is not None
        got.append(value)
        retold.side_effect(_const(len(got)))
    return got


async def test_a_run_closes_after_k_signals_while_they_keep_coming(make_engine: EngineFactory, url: str) -> None:
    """The step that closes the run must commit too, however fast signals come (before: refused at every try).

    Two senders never pause, each numbering its own signals; the run takes
    400 and returns them. It must finish within a generous deadline, with
    each sender's signals in order and none skipped; and it is not replayed
    from its history once per signal.
    """
    k = 400
    async with make_engine([take], url=url) as engine:
        run = await engine.start(take.with_options(id="closing"), k)
        acknowledged: dict[str, int] = {"a": 0, "b": 0}
        refused: dict[str, int] = {"a": 0, "b": 0}

        async def flood(name: str) -> None:
            while True:
                try:
                    await run.signal("tick", f"{name}{acknowledged[name]}")
                except retold.RunFinishedError:
                    return
                except retold.SignalBufferFullError:
                    refused[name] += 1
                    await anyio.sleep(0.001)  # nothing was written: send the same one again
                    continue
                acknowledged[name] += 1

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(flood, "a")
                tg.start_soon(flood, "b")
                result = await run.result(timeout=120)
                # The senders stop on their own: the next signal() says the run finished.
        assert len(result) == k
        for name in ("a", "b"):
            mine = [int(v[1:]) for v in result if v[0] == name]
            assert mine == list(range(len(mine))), f"sender {name}'s signals out of order or skipped"
        assert sum(acknowledged.values()) >= k
        history = await run.history()
        ticks = [e for e in history.events if isinstance(e, retold.history.events.SignalReceived)]
        # Every acknowledged signal is in the history, and no refused one (refused: nothing written).
        assert len(ticks) == sum(acknowledged.values())
        assert [e.type for e in history.events][-1] == "WorkflowCompleted"
        # The run was rebuilt from its history a handful of times, not once per signal.
        assert engine.cache.replays < 20, engine.cache.replays


SENDER = textwrap.dedent("""
    import sys, time, anyio, retold

    async def main(url: str, workflow_id: str) -> None:
        acknowledged = 0
        async with retold.Client(url) as client:
            run = client.get_handle(workflow_id)
            while True:
                try:
                    await run.signal("tick", f"p{acknowledged}")
                except retold.RunFinishedError:
                    break
                except (retold.SignalBufferFullError, retold.StoreError):
                    time.sleep(0.001)  # nothing was written: send the same one again
                    continue
                acknowledged += 1
        print(acknowledged)

    anyio.run(main, sys.argv[1], sys.argv[2])
""")


async def test_a_run_closes_while_another_process_keeps_signalling(
    make_engine: EngineFactory, url: str, tmp_path: Path,
) -> None:
    """The sender is another process that never pauses; the run takes 300 in order and closes."""
    k = 300
    out = tmp_path / "acknowledged.txt"
    async with make_engine([take], url=url) as engine:
        run = await engine.start(take.with_options(id="closing-proc"), k)
        with out.open("w") as stdout:
            sender = subprocess.Popen([sys.executable, "-c", SENDER, url, "closing-proc"], stdout=stdout)
        try:
            result = await run.result(timeout=120)
            with anyio.fail_after(60):  # it stops on its own once the run has closed
                while sender.poll() is None:
                    await anyio.sleep(0.05)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
        acknowledged = int(out.read_text())
        assert result == [f"p{i}" for i in range(k)]
        history = await run.history()
        ticks = [e for e in history.events if isinstance(e, retold.history.events.SignalReceived)]
        assert len(ticks) == acknowledged >= k
        assert engine.cache.replays < 20, engine.cache.replays


async def test_a_run_with_too_many_unseen_signals_refuses_more(url: str) -> None:
    """Past max_pending_signals unseen signals, signal() raises a clear error and writes nothing."""
    async with retold.Engine(url, max_pending_signals=20, workflows=[counter], run_workers=False) as client:
        run = await client.start(counter.with_options(id="buried"))
        for i in range(20):
            await run.signal("tick", str(i))
        with pytest.raises(retold.SignalBufferFullError, match="20 signals it has not processed") as caught:
            await run.signal("tick", "one too many")
        assert (caught.value.limit, caught.value.closing) == (20, False)
        history = await run.history()
        assert len(history) == 1 + 20  # the refused signal wrote nothing
        # A worker takes them in: the run has room again.
        async with retold.Engine(url, max_pending_signals=20, workflows=[counter], poll_interval=0.05):
            with anyio.fail_after(30):
                while await consumed(run) < 20:
                    await anyio.sleep(0.02)
            for i in range(19):
                await run.signal("tick", f"again-{i}")
            await run.signal("tick", "stop")  # the 20th: still within the bound, whether or not the worker ran
            assert await run.result(timeout=30) == 39
        values = [e.input for e in (await run.history()).events if isinstance(e, retold.history.events.SignalReceived)]
        assert b"one too many" not in b"".join(values)


async def test_the_bound_on_unseen_signals_is_configured_per_engine_or_store(tmp_path: Path) -> None:
    with pytest.raises(retold.ConfigurationError, match="max_pending_signals must be at least 1, got 0"):
        retold.Engine(f"sqlite:///{tmp_path / 'a.db'}", max_pending_signals=0)
    with pytest.raises(retold.ConfigurationError, match="max_pending_signals must be at least 1, got 0"):
        retold.Client(f"sqlite:///{tmp_path / 'a.db'}", max_pending_signals=0)
    async with retold.Engine(store=SqlStore(f"sqlite:///{tmp_path / 'b.db'}", max_pending_signals=3),
                             workflows=[counter], run_workers=False) as client:
        assert client.runs.max_pending_signals == 3
        run = await client.start(counter.with_options(id="small"))
        for i in range(3):
            await run.signal("tick", str(i))
        with pytest.raises(retold.SignalBufferFullError):
            await run.signal("tick", "4th")
