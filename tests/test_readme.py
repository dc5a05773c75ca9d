"""The README's Quickstart: two one-line commands, the second run by CI word for word."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```(?:\w+)?\n(.*?)```", section, re.S)
    assert block is not None, "the Quickstart section has no fenced code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quickstart_has_exactly_two_commands() -> None:
    commands = quickstart_commands()
    assert len(commands) == 2
    assert commands[0].endswith("-m retold demo")
    assert commands[1].endswith("-m pytest")


def test_ci_runs_the_test_command_word_for_word() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quickstart_commands()[1] in ci


def test_the_demo_runs_a_real_workflow_on_sqlite(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "retold", "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "WorkflowStarted(demo-order" in out
    assert "SignalReceived(name='shipped'" in out
    assert "TimerFired" in out
    assert "WorkflowCompleted" in out
    assert "result: order-" in out
    assert (tmp_path / "retold.db").exists()
