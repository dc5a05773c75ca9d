"""Logs and spans across a real SIGKILL: workflow lines once, every span in the request's trace, none twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("_observed.py")
ROOT = Path(__file__).resolve().parent.parent.parent


def lines(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_logs_and_spans_across_a_sigkill(tmp_path: Path) -> None:
    db, out = tmp_path / "observed.db", tmp_path / "out.jsonl"
    crash = subprocess.Popen([sys.executable, str(CHILD), "crash", str(db), str(out)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not any(r.get("message") == "activity step 3" for r in lines(out)):
            assert crash.poll() is None, "the crash phase ended early"
            assert time.monotonic() < deadline, "step 3 never started"
            time.sleep(0.05)
        crash.send_signal(signal.SIGKILL)
    finally:
        crash.kill()
        crash.wait()
    recover = subprocess.run([sys.executable, str(CHILD), "recover", str(db), str(out)], cwd=ROOT,
                             capture_output=True, text=True, timeout=90, check=False)
    assert recover.returncode == 0, recover.stderr

    records = lines(out)
    logs = [r for r in records if r["kind"] == "log"]
    workflow_lines = [r["message"] for r in logs if r["message"].startswith("after")]
    # Each workflow line once: the recovering process replayed steps 1 and 2 without logging them.
    assert workflow_lines == ["after step 1", "after step 2", "after step 3", "after step 4"]
    assert {r["pid"] for r in logs if r["message"] == "after step 2"} == {crash.pid}
    assert Counter(r["message"] for r in logs if r["message"].startswith("activity")) == Counter(
        {"activity step 1": 1, "activity step 2": 1, "activity step 3": 2, "activity step 4": 1})
    assert all(r["workflow"] == "observed" and r["workflow_id"] == "observed" and r["run_id"] for r in logs)
    assert {r["run_id"] for r in logs} == {logs[0]["run_id"]}

    spans = [r for r in records if r["kind"] == "span"]
    request = [s for s in spans if s["name"] == "request"]
    assert len(request) == 1
    start = [s for s in spans if s["name"] == "StartWorkflow:observed"]
    assert len(start) == 1
    assert start[0]["parent"] == request[0]["span"]
    tasks = [s for s in spans if s["name"] == "RunWorkflow:observed"]
    attempts = [s for s in spans if s["name"] == "RunActivity:step"]
    # Three steps committed before the kill, two after; the killed attempt of step 3 never ended.
    assert Counter(s["pid"] for s in tasks) == Counter({crash.pid: 3, tasks[-1]["pid"]: 2})
    assert len(attempts) == 4
    for span in tasks + attempts:
        assert span["trace"] == request[0]["trace"]
        assert span["parent"] == start[0]["span"]
