"""Signal-with-start survives a SIGKILL of the process right after the call returned.

A child process (``_sws.py``) hosting the workflow signals-with-starts a new run, then the same
run again, and kills itself with SIGKILL as soon as both calls have returned. A new engine on the
same store must find the run with both signals, in order, and finish it.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import pytest

import retold
from retold.history import events as ev
from tests.crash._sws import cart

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_nothing_is_lost_when_the_process_dies_right_after_signal_with_start(shared_url: str) -> None:
    proc = await anyio.run_process(
        [sys.executable, "-m", "tests.crash._sws", shared_url, "cart-kill"], cwd=ROOT, check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    line = proc.stdout.decode().strip()
    assert line.startswith("returned "), proc.stdout
    run_id = line.split()[1]
    async with retold.Engine(shared_url, workflows=[cart], poll_interval=0.05) as engine:
        again = await engine.signal_with_start(cart.with_options(id="cart-kill"), "add", "checkout", "ann")
        assert not again.created
        assert again.run_id == run_id
        assert await again.result(timeout=30) == ["ann", "apple", "pear"]
        history = await again.history()
        signals = [e.input for e in history.events if isinstance(e, ev.SignalReceived)]
        assert [engine.client.codec.decode(s) for s in signals] == ["apple", "pear", "checkout"]
        assert len(await engine.list_runs(id_prefix="cart-kill")) == 1
