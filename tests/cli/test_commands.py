"""The ``retold`` command line as a user runs it: subprocesses on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from retold import History
from retold.cli import cli
from tests.cli.conftest import Background, Retold, cli_env

COMMANDS = [
    "worker", "serve", "start", "list", "show", "history", "signal", "query", "update", "cancel", "terminate",
    "schedule", "purge", "replay", "demo",
]


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    """A user mistake: exit ``status``, the reason on stderr, no traceback."""
    assert done.returncode == status, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert text in errors[0], done.stderr


def poll(retold: Retold, check: Callable[[Any], bool], *args: str) -> Any:
    """Run ``retold *args --json`` until ``check`` holds on its output."""
    deadline = time.monotonic() + 20
    while True:
        value = orjson.loads(ok(retold(*args, "--json")))
        if check(value):
            return value
        assert time.monotonic() < deadline, f"retold {' '.join(args)}: still {value}"
        time.sleep(0.1)


def test_every_command_has_useful_help(retold: Retold, db: Path) -> None:
    top = ok(retold("--help"))
    listed = [line.split()[0] for line in top.split("Commands:", 1)[1].splitlines() if line.strip()]
    assert listed == COMMANDS
    runner = CliRunner()
    schedule = ["create", "list", "describe", "pause", "resume", "trigger", "delete"]
    # in-process: the same click definitions, without 11 interpreter start-ups
    for name in [c for c in COMMANDS if c != "schedule"] + [f"schedule {sub}" for sub in schedule]:
        result = runner.invoke(cli, [*name.split(), "--help"], prog_name="retold")
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: retold {name} "), result.output
        description = result.output.split("\n\n")[1].strip()
        assert len(description) > 20, result.output
        assert "--url" in result.output
    assert not db.exists()  # --help touches no store


def test_the_console_script_is_installed(db: Path) -> None:
    script = Path(sys.executable).with_name("retold")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False,
                          env=cli_env(db))
    assert ok(done).startswith("retold, version ")


def side_by_side(retold: Retold, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at the same time (each is a fresh interpreter)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda args: retold(*args), commands))


def test_a_session_with_a_worker(retold: Retold, background: Callable[..., Background], db: Path) -> None:
    worker = background("worker", "tests.shop")
    worker.wait_for_line("retold worker: greet, order, ticker, fails")
    app = ["--app", "tests.shop"]

    greeted, order_1, _ = side_by_side(
        retold,
        ["start", "greet", *app, "--input", '["ada"]', "--id", "g-1", "--wait"],
        ["start", "order", *app, "--id", "o-1", "--json", "--input", '[{"sku": "tea", "quantity": 2}]'],
        ["start", "order", *app, "--id", "o-2", "--input", '[{"sku": "tea", "quantity": 1}]'],
    )
    out = ok(greeted)
    assert out.splitlines()[0].startswith("started greet workflow_id=g-1 run_id=")
    assert out.splitlines()[1] == '"hello, ada"'
    started = orjson.loads(ok(order_1))
    assert started["status"] == "running"
    assert started["workflow_id"] == "o-1"

    again, status, echo, cancelled = side_by_side(
        retold,
        ["start", "greet", *app, "--input", '["ada"]', "--id", "g-1"],
        # The query replays the run here, at whatever point the worker has taken it to.
        ["query", "o-1", "status", *app],
        ["query", "o-1", "echo", "--args", '[1, "x"]', *app],
        ["cancel", "o-2", "--reason", "no longer wanted"],
    )
    assert ok(again).startswith("already started: greet workflow_id=g-1")
    assert ok(status).strip() in ('"reserving"', '"waiting"')
    assert ok(echo).strip() == '[1,"x"]'
    assert ok(cancelled).strip() == "cancel requested for o-2"
    assert ok(retold("signal", "o-1", "approve", "--value", "true")).strip() == "signalled approve to o-1"
    shown = poll(retold, lambda v: v["status"] == "completed", "show", "o-1")
    assert shown["run_id"] == started["run_id"]
    poll(retold, lambda v: v["status"] == "cancelled", "show", "o-2")

    show, exported, readable, late_signal, listed, filtered, table, page = side_by_side(
        retold,
        ["show", "o-1"], ["history", "o-1", "--json"], ["history", started["run_id"]], ["signal", "o-2", "approve"],
        ["list", "--json"], ["list", "--workflow", "order", "--status", "completed", "--json"],
        ["list", "--status", "completed", "--limit", "1"], ["history", "o-1", "--after", "1", "--limit", "2", "--json"],
    )
    text = ok(show)
    assert "status       completed" in text
    assert "took" in text
    rows = [line.split() for line in text.splitlines()]
    assert ["2", "ActivityScheduled", "activity=reserve", 'input=[{"sku":"tea","quantity":2}]'] in [
        [row[0], *row[2:]] for row in rows if len(row) > 3
    ]
    assert any("SignalReceived" in line and "name=approve" in line and "input=true" in line
               for line in text.splitlines())
    assert 'result="reserved 2 x tea"' in text

    history = History.from_json(ok(exported))
    assert history.workflow_id == "o-1"
    assert [e.type for e in history][-1] == "WorkflowCompleted"
    assert history.to_dict() == shown["history"]
    assert [e["seq"] for e in orjson.loads(ok(page))["events"]] == [2, 3]  # a page: after event 1, two events
    assert [line.split()[2] for line in ok(readable).splitlines()[2:]] == [e.type for e in history]
    one_line_error(late_signal, 1, "already finished (cancelled)")

    runs = orjson.loads(ok(listed))
    assert sorted(r["workflow_id"] for r in runs) == ["g-1", "o-1", "o-2"]
    assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
    assert [r["workflow_id"] for r in orjson.loads(ok(filtered))] == ["o-1"]
    lines = ok(table).splitlines()
    assert lines[0].split()[:3] == ["WORKFLOW", "ID", "WORKFLOW"]
    assert len(lines) == 3  # header, rule, one run
    assert lines[2].split()[2] == "completed"

    code, err = worker.stop()
    assert code == 0, err
    assert "SIGTERM, draining" in err


MISTAKES = [
    (["show", "nope"], 1, "no run with id 'nope'"),
    (["history", "nope"], 1, "no run with id 'nope'"),
    (["signal", "nope", "go"], 1, "no run with id 'nope'"),
    (["cancel", "nope"], 1, "no run with id 'nope'"),
    (["terminate", "nope"], 1, "no run with id 'nope'"),
    (["query", "nope", "status", "--app", "tests.shop"], 1, "no run with id 'nope'"),
    (["start", "greet", "--app", "tests.shop", "--input", '["ada"'], 2, "Invalid value for --input: not valid"),
    (["start", "greet", "--app", "tests.shop", "--input", '"ada"'], 2, "must be a JSON array"),
    (["start", "greet", "--app", "tests.shop", "--input", "[5]"], 1, "argument 1 (name): cannot decode 5 as str"),
    (["start", "nope", "--app", "tests.shop"], 1, "workflow 'nope' is not registered"),
    (["start", "greet", "--app", "tests.nowhere"], 1, "cannot import --app module 'tests.nowhere'"),
    (["start", "greet", "--app", "tests.shop:nothing"], 1, "tests.shop has no attribute 'nothing'"),
    (["start", "greet", "--app", "tests.shop:Order"], 1, "not a workflow, activity, module or list"),
    (["start", "greet", "--app", "tests.conftest"], 1, "defines no @retold.workflow"),
    (["start", "greet"], 2, "Missing option '--app'"),
    (["signal", "x", "go", "--value", "{"], 2, "Invalid value for --value"),
    (["list", "--status", "sleeping"], 2, "Invalid value for '--status'"),
    (["replay"], 2, "Missing option '--app'"),
    (["serve", "--host", "0.0.0.0"], 2, "refusing to listen on 0.0.0.0 without authentication"),
    (["serve", "--host", "192.0.2.1", "--port", "1"], 2, "refusing to listen"),
    (["start", "greet", "--app", "tests.shop", "--input", '["ada"]', "--id", "x" * 300], 1,
     "workflow id may have at most 255 characters, this one has 300"),
    (["start", "greet", "--app", "tests.shop", "--input", '["ada"]', "--idempotency-key", "k" * 256], 1,
     "idempotency key may have at most 255 characters, this one has 256"),
    (["list", "--status", "failed"], 0, ""),
]


def test_mistakes_are_one_line_and_a_nonzero_exit(retold: Retold, db: Path) -> None:
    ok(retold("start", "greet", "--app", "tests.shop", "--input", '["ada"]', "--id", "g-1"))
    # Every case in-process (the same click code, without 20 interpreter
    # start-ups), and one of each exit path as a real process.
    runner = CliRunner()
    for args, status, message in MISTAKES:
        result = runner.invoke(cli, args, prog_name="retold", env=cli_env(db))
        as_process = subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
        if status == 0:
            assert ok(as_process).strip() == "no runs"
        else:
            one_line_error(as_process, status, message)
    sample = [MISTAKES[0], MISTAKES[5], MISTAKES[7], MISTAKES[9]]
    processes = side_by_side(retold, *(case[0] for case in sample))
    for (_, status, message), process in zip(sample, processes, strict=True):
        one_line_error(process, status, message)


def test_reading_a_store_that_is_not_there(retold: Retold, db: Path) -> None:
    for args in (["list"], ["show", "x"], ["history", "x"]):
        one_line_error(retold(*args), 1, f"no database at {db}")
    assert not db.exists()
    one_line_error(retold("list", "--url", "sqlite:///elsewhere.db"), 1, "no database at elsewhere.db")


def test_the_app_can_be_a_list_or_one_workflow_and_comes_from_the_environment(retold: Retold) -> None:
    ok(retold("start", "greet", "--app", "tests.shop:WORKFLOWS", "--input", '["a"]'))
    ok(retold("start", "greet", "--app", "tests.shop:greet", "--input", '["b"]'))
    ok(retold("start", "greet", "--input", '["c"]', RETOLD_APP="tests.shop"))
    one_line_error(retold("start", "order", "--app", "tests.shop:greet"), 1, "workflow 'order' is not registered")
    assert len(orjson.loads(ok(retold("list", "--json")))) == 3
