"""Where retold's time goes: a py-spy recording of a workload, summarized.

``run.py --profile W1,W3`` runs retold's workload process under ``py-spy
record --threads --idle --native`` and summarizes the raw stacks here: for
each thread, the share of wall-clock samples that were idle, syncing the
disk, inside SQLite's C code, or in Python code (by package), and the Python
functions most often on the stack while busy.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

_PY_FRAME = re.compile(r"^(?P<function>.+) \((?P<file>[^()]*\.py):\d+\)$")
_IDLE_LEAVES = ("epoll_wait", "poll (", "select (", "futex", "pthread_cond_wait", "sem_wait", "sem_timedwait",
                "sem_clockwait", "__lll_lock_wait")
_IDLE_PY = ("Condition.wait", "Queue.get", "_wait_for_tstate_lock", "Event.wait", "lock.acquire",
            "WorkerThread.run (anyio/_backends/_asyncio.py:1141)")
_PACKAGES = ("retold/runtime", "retold/engine", "retold/stores", "retold/history", "retold/authoring", "retold",
             "sqlalchemy", "anyio", "asyncio", "cattrs")
_STDLIB = ("threading.py", "selectors.py", "contextlib.py", "queue.py", "weakref.py", "functools.py", "typing.py",
           "dataclasses.py", "enum.py", "inspect.py", "uuid.py", "json/", "logging/")


def _python_frames(frames: list[str]) -> list[tuple[str, str]]:
    found = []
    for frame in frames:
        match = _PY_FRAME.match(frame)
        if match:
            found.append((match["function"], match["file"]))
    return found


def category(frames: list[str]) -> str:
    """What one sample was doing, judged from its stack (outermost frame first)."""
    leaf = frames[-1]
    python = _python_frames(frames)
    if leaf.startswith(("fdatasync", "fsync")):
        return "disk sync (fsync)"
    waits = [i for i, frame in enumerate(frames) if frame.startswith("pthread_cond_timedwait")]
    if waits and waits[-1] >= len(frames) - 4 and "acquire_lock" not in frames[waits[-1] - 1]:
        # A thread back from a blocking call (epoll, send, sqlite) taking the GIL again.
        return "waiting for the GIL"
    if any(leaf.startswith(name) for name in _IDLE_LEAVES) or (
        python and any(mark in f"{python[-1][0]} ({python[-1][1]}" for mark in _IDLE_PY)
    ):
        return "idle (waiting)"
    if leaf.startswith("gc_collect") or "gc_collect_main" in ";".join(frames[-6:]):
        return "Python garbage collector"
    tail = frames[len(frames) - next((i for i, f in enumerate(reversed(frames)) if _PY_FRAME.match(f)),
                                     len(frames)):]
    if any("libsqlite3" in frame for frame in tail):
        return "SQLite C code (no sync)"
    if not python:
        return "other native"
    file = python[-1][1]
    for package in _PACKAGES:
        if f"{package}/" in file or file.startswith(f"{package}/"):
            return f"Python: {package}"
    if file.startswith(_STDLIB):
        return "Python: standard library (threading, selectors, contextlib...)"
    return f"Python: other ({file})"


def summarize(raw: Path, top: int = 25) -> dict[str, Any]:
    """Shares per thread and category, and the busiest Python functions (inclusive)."""
    per_thread: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: collections.Counter[str] = collections.Counter()
    busy_total = 0
    samples = []
    names: dict[str, str] = {}  # py-spy cannot always read a thread's name: take it from its other samples
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        ident, _, name = frames[0].partition(":")
        if name.strip():
            names[ident] = name.strip()
        samples.append((ident, frames, int(count_text)))
    for ident, frames, count in samples:
        thread = names.get(ident, ident)
        if "worker" in thread.lower():
            thread = "store worker threads"
        elif not any(frame.startswith("run_job (") for frame in frames):
            continue  # the interpreter starting, importing, or exiting: not the workload
        kind = category(frames[1:])
        per_thread[thread][kind] += count
        if not kind.startswith("idle"):
            busy_total += count
            for function, file in {(f, p) for f, p in _python_frames(frames)}:
                if file.startswith(("retold/", "sqlalchemy/")) and function != "<module>":
                    inclusive[f"{function} ({file})"] += count
    threads = {}
    for thread, counts in per_thread.items():
        total = sum(counts.values())
        threads[thread] = {"samples": total,
                           "share": {k: round(100 * v / total, 1) for k, v in counts.most_common()}}
    hot = [{"function": name, "busy_share": round(100 * n / max(busy_total, 1), 1)}
           for name, n in inclusive.most_common(top)]
    return {"threads": threads, "busy_samples": busy_total, "inclusive": hot}


def render(name: str, summary: dict[str, Any]) -> str:
    """The summary as text."""
    lines = [f"profile of retold {name} (py-spy, share of each thread's wall-clock samples)"]
    for thread, data in summary["threads"].items():
        lines.append(f"  {thread} ({data['samples']} samples):")
        lines += [f"    {share:5.1f}%  {kind}" for kind, share in data["share"].items()]
    lines.append(f"  retold and SQLAlchemy functions on the stack while busy (all threads, "
                 f"{summary['busy_samples']} samples):")
    lines += [f"    {item['busy_share']:5.1f}%  {item['function']}" for item in summary["inclusive"]]
    return "\n".join(lines)
