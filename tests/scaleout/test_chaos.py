"""Chaos with real processes: ``benchmarks/chaos.py`` kills workers on PostgreSQL while runs go on.

The driver checks every history (gap-free, one completion per activity) and
that only activities in flight at a kill ran again; here it runs small (100
workflows, 3 kills placed by progress: a fast machine cannot finish before
them). The full run (1,000 workflows, a kill a second) is
``python benchmarks/chaos.py``, or this file's slow test: ``pytest -m slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import postgres_base_url
from tests.scaleout._procs import ROOT


def run_chaos(tmp_path: Path, *options: str, timeout: float) -> dict[str, object]:
    out = tmp_path / "chaos.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--url", postgres_base_url(),
         "--json", str(out), *options],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures: dict[str, object] = json.loads(out.read_text())
    print(done.stdout)
    return figures


def test_killed_workers_lose_no_run_and_rerun_only_what_was_in_flight(tmp_path: Path) -> None:
    figures = run_chaos(tmp_path, "--workflows", "100", "--workers", "3", "--kill-at", "0.2,0.45,0.7",
                        "--step-seconds", "0.05", timeout=110)
    assert figures["kills"] == 3
    assert figures["problems"] == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_chaos_in_full(tmp_path: Path) -> None:
    figures = run_chaos(tmp_path, "--workflows", "1000", "--workers", "4", timeout=850)
    assert figures["problems"] == []
