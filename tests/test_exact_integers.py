"""JSON integers beyond 64 bits are refused everywhere JSON comes in, never rounded to floats."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

import retold
from retold.cli import cli

BIG = str(2**100)


def test_the_cli_refuses_a_signal_value_or_input_it_cannot_keep_exact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retold.db'}"
    for args in (["signal", "some-run", "go", "--value", BIG, "--url", url],
                 ["start", "greet", "--input", f"[{BIG}]", "--app", "tests.shop", "--url", url]):
        done = CliRunner().invoke(cli, args)
        assert done.exit_code == 2, done.output
        assert "outside the range JSON payloads carry exactly" in done.output
        assert "send it as a string" in done.output
    assert not (tmp_path / "retold.db").exists()  # refused before the store was opened


@retold.workflow
async def count(n: int) -> int:
    return n


def test_a_history_file_with_a_number_that_would_be_rounded_is_refused() -> None:
    async def record() -> bytes:
        async with retold.Engine("memory://", workflows=[count]) as engine:
            run = await engine.start(count, 123456789)
            await run.result(timeout=30)
            return (await run.history()).to_json()

    exported = anyio.run(record)
    assert retold.History.from_json(exported)  # as exported, it loads
    edited = exported.replace(b"123456789", BIG.encode())
    assert edited != exported
    with pytest.raises(retold.HistoryFormatError, match=r"cannot keep exact.*outside the range"):
        retold.History.from_json(edited)


@retold.workflow
async def huge() -> int:
    return 2**100


@retold.workflow
async def exact(amount: Decimal, label: str) -> list[str]:
    return [str(amount), label]


def test_a_result_beyond_64_bits_fails_the_run_naming_the_fix_and_a_decimal_stays_exact() -> None:
    async def main() -> None:
        async with retold.Engine("memory://", workflows=[huge, exact], poll_interval=0.05) as engine:
            run = await engine.start(huge)
            with pytest.raises(retold.WorkflowFailedError, match=r"2\*\*64-1 exactly: pass a larger one as a Decimal"):
                await run.result(timeout=30)
            # The advice works: sent as strings, into Decimal or str parameters, the digits arrive intact.
            kept = await engine.start_by_name("exact", [BIG, BIG])
            assert await kept.result(timeout=30) == [BIG, BIG]

    anyio.run(main)
