"""``retold purge`` as a user runs it, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest
from click.testing import CliRunner

import retold
from retold.cli import cli
from retold.cli._purge import parse_age
from tests import shop
from tests.cli.conftest import Retold
from tests.cli.test_commands import ok, one_line_error


def finished_runs(db: Path, count: int) -> None:
    """``count`` finished greet runs, and one order run left waiting, in the file."""

    async def body() -> None:
        async with retold.Engine(f"sqlite:///{db}", workflows=shop.WORKFLOWS, activities=shop.ACTIVITIES,
                                 poll_interval=0.05) as engine:
            for i in range(count):
                await (await engine.start(shop.greet, f"n{i}")).result()
            await engine.start(shop.order.with_options(id="waiting"), shop.Order("book", 1))

    anyio.run(body)


def test_purge_dry_run_then_purge(retold: Retold, db: Path) -> None:
    finished_runs(db, 3)
    counted = orjson.loads(ok(retold("purge", "--older-than", "0s", "--dry-run", "--json")))
    assert counted == {"runs": 3, "workflow_ids": 3, "events": 12, "tasks": 0, "inbox": 0, "timers": 0,
                       "kept": 0, "dry_run": True}
    assert len(orjson.loads(ok(retold("list", "--json")))) == 4  # nothing was deleted
    assert ok(retold("purge", "--older-than", "1d")).startswith("deleted 0 runs")  # none is a day old
    out = ok(retold("purge", "--older-than", "0s", "--status", "completed", "--workflow", "greet"))
    assert out.startswith("deleted 3 runs (12 events, 3 workflow ids")
    assert [r["workflow_id"] for r in orjson.loads(ok(retold("list", "--json")))] == ["waiting"]


def test_purge_mistakes_are_one_line(retold: Retold, db: Path) -> None:
    finished_runs(db, 0)
    one_line_error(retold("purge", "--older-than", "30 days"), 2, "is not an age")
    one_line_error(retold("purge"), 2, "--older-than")
    one_line_error(retold("purge", "--older-than", "1d", "--status", "running"), 2, "'running' is not one of")


def test_purge_help_names_its_options() -> None:
    result = CliRunner().invoke(cli, ["purge", "--help"], prog_name="retold")
    assert result.exit_code == 0
    for option in ("--older-than", "--status", "--workflow", "--dry-run", "--json", "--url"):
        assert option in result.output


@pytest.mark.parametrize(("text", "seconds"), [
    ("30d", 30 * 86_400), ("12h", 43_200), ("90m", 5_400), ("45s", 45), ("2w", 1_209_600), ("1d12h", 129_600),
    ("0.5h", 1_800), ("0s", 0),
])
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text).total_seconds() == seconds
