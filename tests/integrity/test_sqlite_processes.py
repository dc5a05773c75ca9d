"""Several processes on one SQLite file: senders racing a run's completion lose, duplicate and fail nothing.

Runs ``benchmarks/sqlite_processes.py`` (a worker process and four sender
processes, every one with ``?busy_timeout=2`` in its store URL). Before
writers waited for the lock in short slices, SQLite's own busy handler
(sleeping up to 100 ms between looks) let busy processes starve a writer
past its busy_timeout: "database is locked" reached callers (8 of 6,000
signals at ``busy_timeout=0.5``, 48 of 40,000 at the default 10 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_signals_from_four_processes_racing_completion(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sqlite_processes.py"), "--senders", "4", "--signals", "1500",
         "--concurrency", "8", "--complete-after", "3000", "--busy-timeout", "2", "--out", str(out)],
        cwd=ROOT, check=True, timeout=600, stdout=subprocess.DEVNULL,
    )
    result = json.loads(out.read_text())
    assert result["status"] == "completed"
    assert result["lost"] == 0  # acknowledged but not in the history
    assert result["duplicated"] == 0
    assert result["errors"] == 0, result["error_kinds"]  # "database is locked" included
    assert result["worker_log_errors"] == 0
    # Every signal was either recorded, or refused because the run had completed.
    assert result["acknowledged"] + result["refused_after_completion"] == 4 * 1500
    assert result["recorded"] == result["acknowledged"]
    assert result["acknowledged"] >= 3000
