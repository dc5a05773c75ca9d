"""A signal whose value cannot be decoded never fails the run (issue 18, item 7)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

import retold
from retold.history import events as ev
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int


@retold.workflow
async def counts(target: int) -> list[int]:
    got: list[int] = []
    while sum(got) < target:
        value = await retold.wait_signal("add", int)
        assert value is not None
        got.append(value)
    return got


@retold.workflow(signals={"line": Line, "note": str})
async def basket() -> list[Line]:
    lines: list[Line] = []
    while True:
        line = await retold.wait_signal("line")  # decoded as the declared Line
        if line is None or line.qty == 0:
            return lines
        assert isinstance(line, Line)
        lines.append(line)


async def test_undecodable_signal_is_dropped_with_a_warning(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="retold.workflow")
    async with make_engine([counts]) as engine:
        run = await engine.start(counts.with_options(id="bad-signal-1"), 5)
        await run.signal("add", "lots")        # not an int: nobody could know at signal()
        await run.signal("add", {"n": 2})
        await run.signal("add", 5)
        assert await run.result(timeout=60) == [5]
        description = await run.describe()
    assert description.status == "completed"
    dropped = [r for r in caplog.records if "dropped signal 'add'" in r.getMessage()]
    assert len(dropped) == 2
    assert all(r.levelno == logging.WARNING for r in dropped)
    assert "counts" in dropped[0].getMessage()
    assert "expected an integer" in dropped[0].getMessage()


async def test_a_dropped_signal_does_not_end_a_wait_with_timeout(make_engine: EngineFactory) -> None:
    @retold.workflow(name="waits_with_timeout")
    async def waits_with_timeout() -> int | None:
        return await retold.wait_signal("add", int, timeout=3600)

    async with make_engine([waits_with_timeout]) as engine:
        run = await engine.start(waits_with_timeout.with_options(id="bad-signal-2"))
        await run.signal("add", "nope")
        await run.signal("add", 7)
        assert await run.result(timeout=60) == 7


async def test_declared_signal_type_is_checked_at_signal_and_nothing_is_written(
    make_engine: EngineFactory,
) -> None:
    async with make_engine([basket]) as engine:
        run = await engine.start(basket.with_options(id="bad-signal-3"))
        before = len(await run.history())
        with pytest.raises(retold.PayloadError) as info:
            await run.signal("line", {"sku": "tea", "qty": "two"})
        message = str(info.value)
        assert "signal 'line'" in message
        assert "basket" in message
        assert "qty" in message
        assert "expected an integer" in message
        assert "signals=" in message
        with pytest.raises(retold.PayloadError, match="signal 'note'"):
            await run.signal("note", 12)
        history = await run.history()
        assert len(history) == before
        assert not any(isinstance(e, ev.SignalReceived) for e in history)
        # Signals of the declared type go through, and arrive as that type.
        await run.signal("line", Line("tea", 2))
        await run.signal("line", {"sku": "jam", "qty": 1})
        await run.signal("line", Line("", 0))
        assert await run.result(timeout=60) == [Line("tea", 2), Line("jam", 1)]


def test_signals_declaration_is_checked() -> None:
    async def fn() -> None: ...

    with pytest.raises(retold.ConfigurationError, match="must be a type"):
        retold.workflow(signals={"approve": "bool"})(fn)
    with pytest.raises(retold.ConfigurationError, match="non-empty strings"):
        retold.workflow(signals={"": bool})(fn)
