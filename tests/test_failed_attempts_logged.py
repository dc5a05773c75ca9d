"""A failed activity attempt shows up under uvicorn's logging setup, with nothing configured for retold."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import anyio, uvicorn, retold
    from starlette.applications import Starlette

    uvicorn.Config(Starlette())  # sets up logging as `uvicorn app:app` does, and nothing else

    @retold.activity(retry=retold.RetryPolicy(max_attempts=2, initial_interval=0.01))
    async def charge(cents: int) -> None:
        raise ValueError(f"card declined for {cents}")

    @retold.workflow
    async def checkout(cents: int) -> None:
        await retold.execute(charge, cents)

    async def main() -> None:
        async with retold.Engine("sqlite:///{db}", workflows=[checkout], activities=[charge],
                                 poll_interval=0.05) as engine:
            run = await engine.start(checkout.with_options(id="order-7"), 500)
            try:
                await run.result(timeout=30)
            except retold.WorkflowFailedError:
                print("RUN", run.run_id)

    anyio.run(main)
""")


def test_failed_attempts_reach_stderr_under_uvicorns_logging(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("{db}", str(tmp_path / "r.db"))],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split("RUN ", 1)[1].strip()
    lines = [line for line in done.stderr.splitlines() if "charge" in line]
    assert len(lines) == 2, done.stderr
    first, last = lines
    for line in lines:
        assert run_id in line
        assert "order-7" in line
        assert "ValueError: card declined for 500" in line
    assert "attempt 1 failed" in first
    assert "retrying in" in first
    assert "attempt 2 failed" in last
    assert "retrying" not in last
