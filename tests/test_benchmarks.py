"""The benchmark harness: its helpers, and that it still fits the engine it measures.

``benchmarks/`` is a folder of scripts that import each other, not a package,
so it goes on the path here as it does when ``python benchmarks/run.py`` runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402 - importable only once benchmarks/ is on the path
import _profile  # noqa: E402 - same
import _provision  # noqa: E402 - same
import _report  # noqa: E402 - same
import sut_retold  # noqa: E402 - same


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _common.percentile(values, 0.5) == 50
    assert _common.percentile(values, 0.99) == 99
    assert _common.percentile([3.0], 0.99) == 3


def test_table_has_medians_ranges_and_the_ratio() -> None:
    runs = {"retold": [{"p50_ms": 30.0}, {"p50_ms": 10.0}, {"p50_ms": 20.0}], "dbos": [{"p50_ms": 10.0}]}
    summaries = {s: {"W2": _report.summarize(r)} for s, r in runs.items()}
    sizes = {"W1": 1, "W2": 3, "W3": 1, "W4_replay": [], "W4_recover": [], "W5": 1, "W6": []}
    lines = _report.table_lines(_report.rows(sizes), summaries, ["retold", "dbos"])
    assert [line["key"] for line in lines] == ["p50_ms"]
    assert lines[0]["ratio"] == 2.0
    assert _report.cell(lines[0]["retold"], 1.0) == "20.0 (10.0-30.0)"
    assert _report.cell(None, 1.0) == "n/a"


def test_profile_summary_sorts_samples_into_categories(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    main = "thread (1): MainThread;run_job (sut_retold.py:9)"
    worker = "thread (2): AnyIO worker thread;SqlStore._tx (retold/stores/sql/_store.py:170)"
    raw.write_text("\n".join([
        f"{main};select_epoll_poll (selectmodule.c.h:841);epoll_wait (libc.so.6) 6",
        f"{main};select_epoll_poll_impl (selectmodule.c:1600);pthread_cond_timedwait (libc.so.6);0x1 (libc.so.6) 2",
        f"{main};WorkflowInstance.apply (retold/runtime/_instance.py:180) 2",
        f"{worker};DefaultDialect.do_commit (sqlalchemy/engine/default.py:700);fdatasync (libc.so.6) 3",
        f"{worker};Connection.execute (sqlalchemy/engine/base.py:1450) 1",
        "thread (1): MainThread;<module> (sut_retold.py:1);_find_and_load (<frozen importlib._bootstrap>:1) 50",
    ]) + "\n")
    summary = _profile.summarize(raw)
    assert summary["threads"]["MainThread"]["share"] == {
        "idle (waiting)": 60.0, "waiting for the GIL": 20.0, "Python: retold/runtime": 20.0}
    assert summary["threads"]["store worker threads"]["share"] == {
        "disk sync (fsync)": 75.0, "Python: sqlalchemy": 25.0}
    assert "profile of retold W3" in _profile.render("W3", summary)


def test_replay_workload_runs_on_this_engine() -> None:
    # Reaches into the runtime (WorkflowInstance): fails here, not in a benchmark run, when it changes.
    job = _common.Job("W4-replay", "memory://", None, {"sizes": [10, 20], "inner": 1})
    figures = anyio.run(sut_retold.w4_replay, job)
    assert set(figures) == {"replay_us_per_activity_10", "replay_us_per_activity_20"}


def test_harness_command_line() -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "--peer" in done.stdout


def test_workloads_run_on_the_memory_store(tmp_path: Path) -> None:
    dbs = _provision.Databases("memory://", tmp_path)
    job = dbs.job("W3", "w3", {"steps": 5})
    assert (dbs.kind, job.url, job.path) == ("memory", "memory://", None)
    figures = anyio.run(sut_retold.w3_long_run, job)
    assert figures["ms_per_step"] > 0
    assert _common.database_bytes(job) == 0
    dbs.drop(job)
    dbs.close()
