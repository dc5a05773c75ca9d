"""Several processes on one SQLite file: senders racing a run's completion lose, duplicate and fail nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_signals_from_three_processes_racing_completion(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sqlite_processes.py"), "--senders", "3", "--signals", "400",
         "--concurrency", "4", "--complete-after", "900", "--out", str(out)],
        cwd=ROOT, check=True, timeout=600, stdout=subprocess.DEVNULL,
    )
    result = json.loads(out.read_text())
    assert result["status"] == "completed"
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["errors"] == 0, result["error_kinds"]
    assert result["worker_log_errors"] == 0
    # Every signal was either recorded, or refused because the run had completed.
    assert result["acknowledged"] + result["refused_after_completion"] == 3 * 400
    assert result["recorded"] == result["acknowledged"]
