"""`retold start --attr/--memo`, `retold list` filters (--attr, --id-prefix, times), --cursor pages, `show`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
from click.testing import CliRunner

from retold.cli import cli
from tests.cli.conftest import cli_env
from tests.cli.test_commands import ok, one_line_error

APP = ["--app", "tests.shop"]


def invoke(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = CliRunner().invoke(cli, list(args), prog_name="retold", env=cli_env(db))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def ids(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [r["workflow_id"] for r in orjson.loads(ok(done))]


def test_start_with_attributes_then_list_show_and_page(db: Path) -> None:
    ok(invoke(db, "start", "greet", *APP, "--id", "g-ada", "--input", '["ada"]', "--attr", "customer=acme",
              "--attr", "priority=int:3", "--attr", "due=datetime:2026-03-01T09:30:00+00:00", "--memo", '{"n": 1}'))
    for i in range(3):
        ok(invoke(db, "start", "greet", *APP, "--id", f"g-{i}", "--input", f'["n{i}"]', "--attr", "customer=bob"))
    assert ids(invoke(db, "list", "--attr", "customer=acme", "--json")) == ["g-ada"]
    assert ids(invoke(db, "list", "--attr", "priority=int:3", "--attr", "customer=acme", "--json")) == ["g-ada"]
    assert ids(invoke(db, "list", "--attr", "priority=3", "--json")) == []
    assert ids(invoke(db, "list", "--id-prefix", "g-a", "--json")) == ["g-ada"]
    assert ids(invoke(db, "list", "--started-after", "2000-01-01T00:00:00+00:00", "--closed-before",
                      "2000-01-01T00:00:00+00:00", "--json")) == []
    [row] = orjson.loads(ok(invoke(db, "list", "--attr", "customer=acme", "--json")))
    assert row["search_attributes"] == {"customer": "acme", "due": "2026-03-01T09:30:00+00:00", "priority": 3}
    assert row["memo"] == {"n": 1}
    shown = ok(invoke(db, "show", "g-ada"))
    assert "attr customer" in shown
    assert "'acme'" in shown
    assert '{"n":1}' in shown
    # Pages: the cursor printed at the end of one page lists the next.
    everything = ids(invoke(db, "list", "--attr", "customer=bob", "--json"))
    first = invoke(db, "list", "--attr", "customer=bob", "--limit", "2", "--json")
    seen = ids(first)
    [hint] = [line for line in first.stderr.splitlines() if line.startswith("next page: --cursor ")]
    cursor = hint.removeprefix("next page: --cursor ")
    last = invoke(db, "list", "--attr", "customer=bob", "--limit", "2", "--cursor", cursor, "--json")
    seen += ids(last)
    assert "next page" not in last.stderr
    assert seen == everything
    table = invoke(db, "list", "--attr", "customer=bob", "--limit", "2")
    assert "next page" not in ok(table)  # stdout holds only the runs
    assert table.stderr.startswith("next page: --cursor ")


def test_bad_attributes_and_cursors_are_one_line_errors(db: Path) -> None:
    ok(invoke(db, "start", "greet", *APP, "--id", "good", "--input", '["x"]'))
    for args, status, message in [
        (["list", "--attr", "customer"], 2, "is not NAME=VALUE"),
        (["list", "--attr", "n=int:seven"], 2, "is not a int"),
        (["list", "--attr", "bad name=x"], 1, "is not valid"),
        (["list", "--cursor", "junk"], 1, "is not a cursor"),
        (["list", "--closed-after", "2026-01-01T00:00:00"], 2, "needs a time zone"),
        (["start", "greet", *APP, "--input", '["x"]', "--attr", "x=float:abc"], 2, "is not a float"),
        (["start", "greet", *APP, "--input", '["x"]', "--memo", "[1]"], 2, "must be a JSON object"),
        (["start", "greet", *APP, "--input", '["x"]', "--attr", "9x=1"], 1, "is not valid"),
    ]:
        one_line_error(invoke(db, *args), status, message)
    assert ids(invoke(db, "list", "--json")) == ["good"]  # the refused starts wrote nothing
