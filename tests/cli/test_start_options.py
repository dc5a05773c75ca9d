"""`retold start` options: --signal/--signal-value, --id-reuse-policy, --run-timeout, --start-delay."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
from click.testing import CliRunner

from retold.cli import cli
from tests.cli.conftest import Background, Retold, cli_env
from tests.cli.test_commands import ok, one_line_error

APP = ["--app", "tests.shop"]
ORDER = '[{"sku": "tea", "quantity": 2}]'


def test_start_with_a_signal_starts_then_signals(retold: Retold, background: Callable[..., Background]) -> None:
    worker = background("worker", "tests.shop")
    worker.wait_for_line("retold worker: greet, order, ticker, fails")
    first = ok(retold("start", "order", *APP, "--id", "o-s", "--input", ORDER,
                      "--signal", "note", "--signal-value", '"hi"'))
    assert first.startswith("started with signal order workflow_id=o-s run_id=")
    run_id = first.split("run_id=")[1].strip()
    second = ok(retold("start", "order", *APP, "--id", "o-s", "--input", ORDER,
                       "--signal", "approve", "--signal-value", "true", "--wait", timeout=120))
    assert second.splitlines()[0] == f"signalled order workflow_id=o-s run_id={run_id}"
    assert second.splitlines()[1] == '"reserved 2 x tea"'
    events = orjson.loads(ok(retold("history", "o-s", "--json")))["events"]
    assert [e["type"] for e in events[:2]] == ["WorkflowStarted", "SignalReceived"]
    assert [e["name"] for e in events if e["type"] == "SignalReceived"] == ["note", "approve"]


def test_signal_mistakes_are_one_line(db: Path) -> None:
    runner = CliRunner()
    cases = [
        (["start", "order", *APP, "--input", ORDER, "--signal", "approve"], "--signal needs --id"),
        (["start", "order", *APP, "--id", "x", "--input", ORDER, "--signal-value", "1"], "needs --signal NAME"),
        (["start", "order", *APP, "--id", "x", "--input", ORDER, "--signal", "approve", "--idempotency-key", "k"],
         "does not go with --signal"),
        (["start", "order", *APP, "--id", "x", "--input", ORDER, "--signal", "approve", "--signal-value", "{"],
         "--signal-value"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args, prog_name="retold", env=cli_env(db))
        one_line_error(subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr), 2, message)


def test_start_with_an_id_reuse_policy(retold: Retold, background: Callable[..., Background]) -> None:
    worker = background("worker", "tests.shop")
    worker.wait_for_line("retold worker: greet, order, ticker, fails")
    first = ok(retold("start", "greet", *APP, "--input", '["ada"]', "--id", "g-r", "--wait"))
    run_id = first.split("run_id=")[1].split()[0]
    refused = retold("start", "greet", *APP, "--input", '["ada"]', "--id", "g-r",
                     "--id-reuse-policy", "allow_duplicate_failed_only")
    assert refused.returncode == 1
    assert "refuses a new run after a completed one" in refused.stderr
    again = ok(retold("start", "greet", *APP, "--input", '["bob"]', "--id", "g-r",
                      "--id-reuse-policy", "allow_duplicate", "--wait"))
    assert again.splitlines()[0].startswith("started greet workflow_id=g-r run_id=")
    assert run_id not in again
    assert again.splitlines()[1] == '"hello, bob"'
    shown = orjson.loads(ok(retold("show", "g-r", "--json")))
    assert shown["run_id"] != run_id


def test_start_with_time_limits(retold: Retold, background: Callable[..., Background]) -> None:
    worker = background("worker", "tests.shop")
    worker.wait_for_line("retold worker: greet, order, ticker, fails")
    done = retold("start", "order", *APP, "--id", "o-t", "--input", ORDER, "--run-timeout", "0.5", "--wait")
    assert done.returncode == 1, done.stderr
    assert "timed out: its run timeout passed" in done.stderr
    shown = orjson.loads(ok(retold("show", "o-t", "--json")))
    assert shown["status"] == "timed_out"
    later = ok(retold("start", "greet", *APP, "--id", "g-t", "--input", '["ada"]', "--start-delay", "1", "--wait"))
    assert later.splitlines()[1] == '"hello, ada"'
    bad = retold("start", "greet", *APP, "--input", '["ada"]', "--start-delay", "0")
    assert bad.returncode == 2
    assert "--start-delay" in bad.stderr
