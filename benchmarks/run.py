"""Benchmarks of retold, side by side with a peer (DBOS Transact), on the same machine.

Every workload runs in its own fresh process on its own fresh database, one
system after the other, repeated; the table shows medians with min-max and
the ratio retold/peer, and the physical floor of the disk measured in the
same run. Nothing here passes or fails: it measures.

    python benchmarks/run.py                         # retold alone
    python benchmarks/run.py --peer dbos --repeat 3  # side by side (pip install -e '.[bench]')
    python benchmarks/run.py --quick --only W1,W3    # small sizes, some workloads
    python benchmarks/run.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test

Workloads: W1 throughput, W2 one-at-a-time latency, W3 one long workflow,
W4 replay and recovery of long histories, W5 recovery after SIGKILL, W6
memory of waiting runs, W7 database bytes per workflow, W8 W1 on PostgreSQL
run by 1, 2 and 4 ``retold worker`` processes fed by a client-only starter.

    python benchmarks/run.py --only W8 --url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/run.py --timeline              # where a W3 step's time goes
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import _profile
import _report
import _timeline
from _common import ExecutionLog, Figures, Job, cpu_pressure, machine_load
from _provision import Databases, NatsStreams

HERE = Path(__file__).resolve().parent
SCRIPTS = {"retold": HERE / "sut_retold.py", "dbos": HERE / "sut_dbos.py", "floor": HERE / "floor.py"}
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8")

FULL: dict[str, Any] = {
    "W1": 1000, "W2": 200, "W3": 1000, "W4_replay": [100, 1000, 10000], "W4_recover": [100, 1000, 10000],
    "W5": 200, "W6": [2000, 5000, 10000], "W6_repeat": 0, "floor_commits": 300, "floor_workflows": 2000,
    "W8": 1000, "W8_workers": [1, 2, 4], "W8_settle": 11,
}
QUICK: dict[str, Any] = {
    "W1": 100, "W2": 30, "W3": 100, "W4_replay": [100, 1000], "W4_recover": [50, 200],
    "W5": 40, "W6": [300, 600, 1200], "W6_repeat": 0, "floor_commits": 100, "floor_workflows": 500,
    "W8": 100, "W8_workers": [1, 2], "W8_settle": 11,
}


def say(message: str) -> None:
    """Progress, on stderr."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Harness:
    """Runs the jobs of one invocation and collects their figures."""

    def __init__(self, args: argparse.Namespace, sizes: dict[str, Any], workdir: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.workdir = workdir
        nats = bool(args.url and args.url.startswith("nats"))
        self.dbs: Databases | NatsStreams = NatsStreams(args.url, workdir) if nats else Databases(args.url, workdir)
        self.systems: list[str] = ["retold"] + ([args.peer] if args.peer else [])
        self.runs: dict[str, dict[str, list[Figures]]] = {s: {} for s in self.systems}
        self.notes: list[str] = []
        self.floor: list[Figures] = []
        self.setup: dict[str, Figures] = {}
        self.empty_bytes: dict[str, int] = {}
        self.profile: dict[str, dict[str, Any]] = {}
        self.timeline: list[Figures] = []
        self.pressure: dict[str, Any] = {"repeated": 0, "flagged": []}
        self.quiet_wait: float = args.quiet_wait  # seconds to wait for a quieter CPU before a repetition runs again
        self._jobs = 0

    # -- processes ------------------------------------------------------------------

    def _paths(self) -> tuple[Path, Path]:
        self._jobs += 1
        return self.workdir / f"job-{self._jobs}.json", self.workdir / f"out-{self._jobs}.json"

    def _command(self, system: str, job: Job) -> tuple[list[str], Path]:
        job_file, out = self._paths()
        job.to_file(job_file)
        return [sys.executable, str(SCRIPTS[system]), "--job", str(job_file), "--out", str(out)], out

    def child(self, system: str, job: Job, *, keep: bool = False) -> Figures:
        """Run one job in a fresh process; figures, or ``{"error": ...}``.

        The machine's CPU pressure is sampled every second while it runs
        (``cpu_pressure_before``, ``_max``, ``_mean``), and the process's CPU
        seconds are taken from ``getrusage`` of children (``process_cpu_s``).
        """
        command, out = self._command(system, job)
        t0 = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples = [cpu_pressure(machine_load())]
        failed = ""
        process = subprocess.Popen(command, stdout=sys.stderr)
        try:
            while True:
                try:
                    returncode = process.wait(timeout=1.0)
                    failed = f"exit status {returncode}" if returncode else ""
                    break
                except subprocess.TimeoutExpired:
                    samples.append(cpu_pressure(machine_load()))
                    if time.perf_counter() - t0 > self.args.timeout:
                        process.kill()
                        process.wait()
                        failed = f"timed out after {self.args.timeout} s"
                        break
        finally:
            if process.poll() is None:  # interrupted: the workload process goes too
                process.kill()
                process.wait()
            if not keep:
                self.dbs.drop(job)
        if failed:
            if out.exists():
                failed = json.loads(out.read_text()).get("error", failed)
            say(f"  {system} {job.workload} FAILED: {failed}")
            return {"error": failed}
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        figures: Figures = json.loads(out.read_text())
        figures["process_seconds"] = time.perf_counter() - t0
        figures["process_cpu_s"] = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
        figures["cpu_pressure_before"] = samples[0]
        figures["cpu_pressure_max"] = max(samples)
        figures["cpu_pressure_mean"] = sum(samples) / len(samples)
        return figures

    def timed(self, system: str, workload: str, name: str, params: dict[str, Any]) -> Figures:
        """A timed repetition on a fresh database, guarded against a contended CPU (see :meth:`guarded`)."""
        return self.guarded(f"{system} {workload}", lambda: self.child(system, self.dbs.job(workload, name, params)))

    def guarded(self, label: str, attempt: Callable[[], Figures], measure: str | None = None) -> Figures:
        """Run ``attempt`` again (``--pressure-retries``) while the CPU was contended during it.

        A repetition whose CPU pressure (share of time some task waited for
        a CPU, sampled each second; ``measure``: the highest sample, or the
        one before it started, ``--pressure-on``, for a workload that fills
        the CPUs itself)
        passed ``--max-pressure`` percent is repeated after waiting up to
        30 s for a quieter machine; the last try is kept either way, and
        flagged (``pressure_flagged``) if it was contended too.
        """
        measure = measure or f"cpu_pressure_{self.args.pressure_on}"
        for retry in range(self.args.pressure_retries + 1):
            figures = attempt()
            pressure = figures.get(measure, 0.0)
            if "error" in figures or pressure <= self.args.max_pressure:
                return figures
            if retry < self.args.pressure_retries:
                say(f"  CPU pressure reached {pressure:.0f}% (> {self.args.max_pressure:g}%): repeating")
                self.pressure["repeated"] += 1
                deadline = time.monotonic() + self.quiet_wait
                while cpu_pressure(machine_load()) > self.args.max_pressure and time.monotonic() < deadline:
                    time.sleep(1)
        self.pressure["flagged"].append(f"{label}: CPU pressure up to {pressure:.0f}%")
        figures["pressure_flagged"] = 1
        return figures

    def record(self, system: str, workload: str, figures: Figures) -> None:
        """Keep one repetition's figures (failures are kept as notes)."""
        if "error" in figures:
            self.notes.append(f"{system} {workload}: {figures['error']}")
            return
        self.runs[system].setdefault(workload, []).append(figures)

    # -- workloads ------------------------------------------------------------------

    def run(self, selected: list[str]) -> None:
        """Every selected workload, repetitions interleaved between the systems."""
        self.floor_run()
        self.probe()
        if self.args.profile:
            self.run_profile(selected)
            return
        if self.args.timeline:
            self.run_timeline()
            return
        plan = [("W1" if w == "W7" else w) for w in selected]
        for workload in dict.fromkeys(plan):
            getattr(self, f"run_{workload.lower()}")()

    def probe(self) -> None:
        """Drop a system that cannot open the URL, with the reason, instead of failing later."""
        for system in list(self.systems):
            figures = self.child(system, self.dbs.job("probe", f"probe-{system}", {}))
            if "error" in figures:
                why = f"{system} cannot open {self.dbs.kind} here ({figures['error']}): skipped"
                say(why)
                self.notes.append(why)
                self.systems.remove(system)
            else:
                self.setup[system] = {k: v for k, v in figures.items() if k.startswith("sqlite_")}

    def floor_run(self) -> None:
        """The physical floor: durable commit latency and batched insert rate."""
        if self.dbs.memory or self.dbs.kind == "nats":
            return  # memory:// or nats://: no database, no floor
        params = {"commits": self.sizes["floor_commits"], "workflows": self.sizes["floor_workflows"], "batch": 1000}
        for rep in range(self.args.repeat):
            figures = self.child("floor", self.dbs.job("floor", "floor", params))
            if "error" not in figures:
                self.floor.append(figures)
                say(f"floor {rep + 1}/{self.args.repeat}: commit {figures['commit_ms']:.2f} ms, "
                    f"batched insert {figures['batched_rows_per_s']:,.0f} rows/s")

    def reps(self, workload: str, repeat: int | None = None) -> Iterator[tuple[int, str]]:
        """(repetition, system) pairs, systems alternating within each repetition."""
        count = repeat or self.args.repeat
        for rep in range(count):
            for system in self.systems:
                say(f"{workload} {system} {rep + 1}/{count}")
                yield rep, system

    def run_profile(self, selected: list[str]) -> None:
        """``--profile``: count each system's SQL per step, and record retold under py-spy."""
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        for workload in [w for w in ("W1", "W3") if w in selected]:
            params = {"workflows": self.sizes["W1"], "steps": self.sizes["W3"]}
            for system in self.systems:
                say(f"{workload} {system}: counting SQL")
                counted = self.child(system, self.dbs.job(workload, f"count-{system}", {**params, "count_sql": True}))
                self.profile.setdefault(system, {})[f"{workload}_sql"] = {
                    k: v for k, v in counted.items() if "_per_" in k or k == "error"}
            if spy is None:
                self.notes.append("--profile: py-spy not found (pip install -e '.[bench]'); no recording")
                continue
            say(f"{workload} retold: recording with py-spy")
            raw = self.args.json.parent / f"profile-{workload}.txt"
            raw.parent.mkdir(parents=True, exist_ok=True)
            job = self.dbs.job(workload, "profile", params)
            command, out = self._command("retold", job)
            # 100 samples a second: at 250, unwinding native stacks slowed W1 fivefold.
            subprocess.run([spy, "record", "--format", "raw", "--threads", "--idle", "--native", "--rate", "100",
                            "-o", str(raw), "--", *command], stdout=sys.stderr, stderr=sys.stderr, check=False)
            self.dbs.drop(job)
            if raw.exists() and out.exists():
                summary = _profile.summarize(raw)
                summary["figures"] = json.loads(out.read_text())
                self.profile.setdefault("retold", {})[workload] = summary
                print(_profile.render(workload, summary))

    def run_timeline(self) -> None:
        """``--timeline``: retold's W3 with the step timeline's marks, each repetition printed."""
        for rep in range(self.args.repeat):
            say(f"W3 timeline {rep + 1}/{self.args.repeat}")
            figures = self.timed("retold", "W3", "w3-timeline", {"steps": self.sizes["W3"], "timeline": True})
            if "error" in figures:
                self.notes.append(f"timeline: {figures['error']}")
                continue
            self.timeline.append(figures)
            print(_timeline.render(figures))

    def run_w8(self) -> None:
        """W8: W1 run by 1, 2, 4 worker processes, started by a client-only process (PostgreSQL or one SQLite file)."""
        if self.dbs.kind not in ("postgresql", "sqlite"):
            self.notes.append("W8 runs on PostgreSQL or SQLite files only")
            return
        if "dbos" in self.systems:
            self.notes.append("dbos W8: not run (retold's worker processes only)")
        for rep in range(self.args.repeat):
            figures: Figures = {}
            for count in self.sizes["W8_workers"]:
                say(f"W8 retold, {count} worker processes, {rep + 1}/{self.args.repeat}")
                # W8's processes fill the CPUs themselves: judge the machine by the pressure before them.
                got = self.guarded(f"retold W8 {count} workers", functools.partial(self.w8_once, count),
                                   measure="cpu_pressure_at_start")
                if "error" in got:
                    self.notes.append(f"retold W8 with {count} workers: {got['error']}")
                    continue
                database = (f" (+ database {got['db_cpu_ms_per_workflow']:.2f}), "
                            f"{got['commits_per_workflow']:.2f} commits/workflow"
                            if "db_cpu_ms_per_workflow" in got else "")
                say(f"  {got['workflows_per_s']:.1f} workflows/s, CPU {got['cpu_ms_per_workflow']:.2f} ms/workflow"
                    f"{database}")
                figures.update({f"{k}_{count}": v for k, v in got.items()})
            self.record("retold", "W8", figures)

    def w8_once(self, count: int) -> Figures:
        """One W8 repetition with ``count`` ``python -m retold worker`` processes on a fresh database."""
        deadline = time.monotonic() + self.quiet_wait  # the last repetition's processes are still in the average
        while (pressure := cpu_pressure(machine_load())) > self.args.max_pressure and time.monotonic() < deadline:
            time.sleep(1)
        job = self.dbs.job("W8-start", f"w8-{count}", {})
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        workers: list[tuple[subprocess.Popen[bytes], Path]] = []
        try:
            for i in range(count):
                log = self.workdir / f"w8-worker-{self._jobs}-{i}.err"
                with log.open("w") as err:
                    workers.append((subprocess.Popen(
                        [sys.executable, "-m", "retold", "worker", "sut_retold", "--url", job.url,
                         *([] if job.path is None else ["--poll-interval", "0.05"])],
                        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err), log))
                if i == 0 or i == count - 1:  # the first creates the schema alone; then the rest at once
                    for worker, path in workers:
                        deadline = time.monotonic() + 120
                        while " ready (pid" not in path.read_text():
                            if worker.poll() is not None or time.monotonic() > deadline:
                                return {"error": f"worker did not start: {path.read_text()[-500:]}"}
                            time.sleep(0.1)
            params = {"workflows": self.sizes["W8"], "worker_pids": [w.pid for w, _ in workers],
                      "settle": self.sizes["W8_settle"], "warmup": 10 * count}
            figures = self.child("retold", Job(job.workload, job.url, job.path, params), keep=True)
            figures["workers"] = count
            figures["cpu_pressure_at_start"] = pressure
            return figures
        finally:
            for worker, _ in workers:
                worker.send_signal(signal.SIGTERM)
            for worker, _ in workers:
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            self.dbs.drop(job)

    def run_w1(self) -> None:
        """W1 throughput, and W7 storage from the same database."""
        for system in self.systems:
            empty = self.child(system, self.dbs.job("empty", f"empty-{system}", {}))
            self.empty_bytes[system] = empty.get("db_bytes", 0)
        for _, system in self.reps("W1"):
            figures = self.timed(system, "W1", f"w1-{system}", {"workflows": self.sizes["W1"]})
            if "error" not in figures:
                say(f"  {figures['workflows_per_s']:.1f} workflows/s, p50 {figures['p50_ms']:.0f} ms")
                self.record(system, "W7", {
                    "bytes_per_workflow": (figures["db_bytes"] - self.empty_bytes[system]) / figures["db_workflows"],
                    "gross_bytes_per_workflow": figures["db_bytes"] / figures["db_workflows"],
                    "db_bytes": figures["db_bytes"], "empty_db_bytes": self.empty_bytes[system],
                })
            self.record(system, "W1", figures)

    def run_w2(self) -> None:
        """W2 one-at-a-time latency."""
        for _, system in self.reps("W2"):
            figures = self.timed(system, "W2", f"w2-{system}", {"workflows": self.sizes["W2"], "warmup": 5})
            if "error" not in figures:
                say(f"  p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms")
            self.record(system, "W2", figures)

    def run_w3(self) -> None:
        """W3 one long workflow."""
        for _, system in self.reps("W3"):
            figures = self.timed(system, "W3", f"w3-{system}", {"steps": self.sizes["W3"]})
            if "error" not in figures:
                say(f"  {figures['ms_per_step']:.2f} ms per step")
            self.record(system, "W3", figures)

    def run_w4(self) -> None:
        """W4: replay in memory (retold), and recovery of long histories from the store (both)."""
        sizes = [0, *self.sizes["W4_recover"]]
        templates: dict[tuple[str, int], Job] = {}
        for system in self.systems:
            for n in sizes:
                say(f"W4 {system}: building a history of {n} steps")
                job = self.dbs.job("W4-build", f"w4-{system}-{n}", {"steps": n})
                built = self.child(system, job, keep=True)
                if "error" in built:
                    self.notes.append(f"{system} W4 build of {n} steps: {built['error']}")
                    continue
                say(f"  {built['ms_per_step']:.2f} ms per step")
                templates[system, n] = job
                self.runs[system].setdefault("W4-build", []).append({f"build_ms_per_step_{n}": built["ms_per_step"]})
        if "dbos" in self.systems:
            self.notes.append("dbos W4 replay in memory: n/a, DBOS has no replay of a history held in memory: "
                              "it recovers a workflow by running it again and reading each step's recorded "
                              "output from the database (the 'recover' rows).")
        for _, system in self.reps("W4"):
            figures: Figures = {}
            if system == "retold":
                replay = self.child(system, self.dbs.job("W4-replay", "w4-replay",
                                                         {"sizes": self.sizes["W4_replay"], "inner": 5}))
                figures.update({k: v for k, v in replay.items() if k.startswith("replay_")})
            for n in sizes:
                if (system, n) not in templates:
                    continue
                job = self.dbs.clone(templates[system, n], "W4-recover", f"w4r-{system}-{n}", {"steps": n})
                recovered = self.child(system, job)
                if "error" in recovered:
                    self.notes.append(f"{system} W4 recovery of {n} steps: {recovered['error']}")
                    continue
                figures[f"recover_ms_{n}"] = 1000 * recovered["seconds"]
            base = figures.get("recover_ms_0")
            for n in sizes[1:]:
                if base is not None and f"recover_ms_{n}" in figures:
                    figures[f"recover_us_per_step_{n}"] = 1000 * (figures[f"recover_ms_{n}"] - base) / n
            say("  " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))
            self.record(system, "W4", figures)
        for job in templates.values():
            self.dbs.drop(job)

    def run_w5(self) -> None:
        """W5: SIGKILL mid-run, restart, count activities that ran twice."""
        n = self.sizes["W5"]
        for rep, system in self.reps("W5"):
            first, second = self.workdir / f"w5-{system}-{rep}-1.log", self.workdir / f"w5-{system}-{rep}-2.log"
            started = self.workdir / f"w5-{system}-{rep}.started"
            job = self.dbs.job("W5-run", f"w5-{system}", {"workflows": n, "log": str(first), "started": str(started)})
            command, _ = self._command(system, job)
            process = subprocess.Popen(command, stdout=sys.stderr)
            # Kill once every workflow is durably started and 40% of the activities have run.
            kill_at, deadline = int(0.4 * 3 * n), time.monotonic() + self.args.timeout
            while process.poll() is None and time.monotonic() < deadline and not (
                started.exists() and len(ExecutionLog.keys(first)) >= kill_at
            ):
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            if process.wait() != -signal.SIGKILL:
                self.record(system, "W5", {"error": f"the first process ended by itself ({process.returncode})"})
                self.dbs.drop(job)
                continue
            before = ExecutionLog.keys(first)
            say(f"  killed after {len(before)} of {3 * n} activity executions")
            again = Job("W5-recover", job.url, job.path, {"workflows": n, "log": str(second)})
            figures = self.child(system, again)
            if "error" not in figures:
                after = ExecutionLog.keys(second)
                figures.update({
                    "completed_before_kill": len(set(before)),
                    "executions_after_restart": len(after),
                    "rerun_completed": sum(1 for key in after if key in set(before)),
                    "never_ran": 3 * n - len(set(before) | set(after)),
                })
                say(f"  all done {figures['seconds']:.2f} s after restart; "
                    f"{figures['rerun_completed']} completed activities ran again")
            self.record(system, "W5", figures)

    def run_w6(self) -> None:
        """W6: memory of waiting runs at several counts."""
        # W6_repeat=1 saves time: its figures move less than timings (0: as --repeat).
        for _, system in self.reps("W6", self.sizes["W6_repeat"] or None):
            figures = self.child(system, self.dbs.job("W6", f"w6-{system}", {"counts": self.sizes["W6"]}))
            if "error" not in figures:
                say("  " + ", ".join(f"{c}: {figures[f'rss_bytes_per_run_{c}'] / 1000:.1f} kB/run"
                                     for c in self.sizes["W6"]))
            self.record(system, "W6", figures)


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    versions = {}
    for package in ("retold", "dbos", "sqlalchemy", "anyio"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True, text=True,
                         check=False).stdout.strip()
    import sqlite3
    return {"cpus": os.cpu_count(), "cpu": model, "platform": platform.platform(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "versions": versions, "git": git}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--peer", choices=["dbos"], help="also run the workloads on this system")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each workload (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the harness")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads to run, e.g. W1,W3")
    parser.add_argument("--size", action="append", default=[], metavar="KEY=VALUE",
                        help="override a size, e.g. W1=500 or W6=1000,2000")
    parser.add_argument("--url", help="a PostgreSQL URL (or memory://) to run on instead of SQLite files")
    parser.add_argument("--dir", type=Path, help="where the SQLite files go (default: a temporary directory)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json", help="where to write figures")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: count SQL per step (every system) and record retold's W1 and W3 "
                             "under py-spy (summary printed, raw stacks next to the JSON)")
    parser.add_argument("--timeline", action="store_true",
                        help="instead of timing: retold's W3 with marks around the engine's parts (COMMIT, SQL on "
                             "the writer, thread hops, workflow code, activity machinery), per step")
    parser.add_argument("--max-pressure", type=float, default=10.0, metavar="PERCENT",
                        help="CPU pressure (/proc/pressure/cpu avg10) above which a timed repetition is "
                             "repeated, then flagged (default 10)")
    parser.add_argument("--pressure-on", choices=["max", "before"], default="max",
                        help="judge a repetition by the highest pressure sampled while it ran (default), or by "
                             "the pressure before it (for workloads that fill the CPUs themselves)")
    parser.add_argument("--pressure-retries", type=int, default=1,
                        help="how many times a contended repetition is run again (default 1)")
    parser.add_argument("--quiet-wait", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the pressure to fall before running a repetition again (30)")
    parser.add_argument("--show", type=Path, metavar="JSON", help="only print the table (and Markdown) of a JSON")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a workload process is killed")
    return parser.parse_args(argv)


def show(path: Path) -> None:
    """Print the table of a JSON written earlier, and its Markdown form."""
    document = json.loads(path.read_text())
    systems = [s for s in ("retold", "dbos") if s in document["systems"]]
    floor = document["floor"]["summary"]
    summaries = {s: document["systems"][s]["summary"] for s in systems}
    table = [row for row in _report.rows(document["sizes"]) if row.workload in document["workloads"]]
    lines = _report.table_lines(table, summaries, systems)  # today's rows, the run's figures
    _report.render(lines, systems, floor, sys.stdout)
    print(f"\n{_report.markdown(lines, systems, floor)}")
    print(f"\n`{document['command']}`, {document['started_at']}, {document['seconds'] / 60:.0f} min, load "
          f"{document['load_before']} -> {document['load_after']}")


def main(argv: list[str] | None = None) -> None:
    """Run the harness."""
    args = parse_args(argv)
    if args.show:
        show(args.show)
        return
    selected = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    if unknown := [w for w in selected if w not in WORKLOADS]:
        sys.exit(f"unknown workloads: {', '.join(unknown)} (choose among {', '.join(WORKLOADS)})")
    sizes = dict(QUICK if args.quick else FULL)
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in sizes:
            sys.exit(f"unknown size {key!r} (choose among {', '.join(sizes)})")
        sizes[key] = [int(v) for v in value.split(",")] if isinstance(sizes[key], list) else int(value)
    started = datetime.datetime.now(datetime.UTC)
    say(f"sizes: {json.dumps(sizes)}")
    with tempfile.TemporaryDirectory(prefix="retold-bench-", dir=args.dir) as tmp:
        harness = Harness(args, sizes, Path(tmp))
        load_before = machine_load()
        t0 = time.perf_counter()
        try:
            harness.run(selected)
        finally:
            harness.dbs.close()
        seconds = time.perf_counter() - t0
    summaries = {s: {w: _report.summarize(r) for w, r in harness.runs[s].items()} for s in harness.runs}
    floor = _report.summarize(harness.floor) if harness.floor else None
    systems = [s for s in ("retold", args.peer) if s]
    table = [row for row in _report.rows(sizes) if row.workload in selected]
    lines = _report.table_lines(table, summaries, systems)
    if args.profile:
        _report.render_sql_counts(harness.profile, systems, sys.stdout)
    elif args.timeline:
        timeline = _report.summarize(harness.timeline)
        print(_timeline.render({k: v["median"] for k, v in timeline.items()}))
        mean, p50 = (_report.cell(timeline.get(k), 1.0) for k in ("ms_per_step", "ms_per_step_p50"))
        print(f"(medians of {len(harness.timeline)} repetitions; ms per step {mean}, p50 {p50})")
    else:
        _report.render(lines, systems, floor, sys.stdout)
    for note in harness.notes:
        print(f"note: {note}")
    flagged = harness.pressure["flagged"]
    print(f"CPU pressure: {harness.pressure['repeated']} repetitions run again, {len(flagged)} kept though above "
          f"{args.max_pressure:g}%" + "".join(f"\n  {line}" for line in flagged))
    document = {
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started.isoformat(timespec="seconds"), "seconds": seconds,
        "load_before": load_before, "load_after": machine_load(),
        "machine": machine(), "database": harness.dbs.kind, "sqlite_setup": harness.setup,
        "sizes": sizes, "repeat": args.repeat, "workloads": selected,
        "floor": {"runs": harness.floor, "summary": floor},
        "systems": {s: {"runs": harness.runs[s], "summary": summaries[s]} for s in harness.runs},
        "table": lines, "notes": harness.notes, "profile": harness.profile, "timeline": harness.timeline,
        "pressure": {**harness.pressure, "max_pressure": args.max_pressure},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=1))
    say(f"wrote {args.json} after {seconds:.0f} s")


if __name__ == "__main__":
    main()
