"""``--timeline``: where the time of one W3 step goes, from ``perf_counter_ns`` marks.

Nothing here is in retold: :meth:`Timeline.install` wraps a few of the
engine's methods in the benchmark's own process (and :meth:`uninstall`
puts them back), so a run without ``--timeline`` pays nothing. Each wrapper
records (kind, start, end) in nanoseconds; a step is the time from one
activity task's start to the next one's, and every span is counted in the
step it started in. The phases of a step, each the difference of nested
spans:

- ``commit``: the driver's COMMIT (the dialect's ``do_commit``, on the writer thread): the durable floor;
- ``writer_sql``: the rest of the durable transaction on the writer (BEGIN, statements, the plan's Python);
- ``writer_hop``: the loop's wait for the writer minus the writer's work: thread wake-ups, queueing;
- ``workflow_code``: the run's code fed the outcome (``activate``, in a step thread);
- ``step_hop``: the loop's wait for the step thread minus the code;
- ``fast_path``: recording the outcome with the next step, minus the two waits above (slots, the
  instance kept, the next activity task spawned);
- ``activity``: the activity task minus the recording and the body (options, ``ActivityInfo``,
  cancel scopes, telemetry, the codec);
- ``activity_body``: the user's function;
- ``between``: from one activity task's end to the next one's start (the event loop).

Each wrapper costs about a microsecond, so the total is a few µs above an
unmarked step. Transactions that only move leases or read are not in a step's
phases; they are counted apart (``other_tx``).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import Figures

PHASES = ("commit", "writer_sql", "writer_hop", "workflow_code", "step_hop", "fast_path", "activity",
          "activity_body", "between")


class Timeline:
    """Spans recorded by wrappers around the engine's methods, while installed."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, int, int]] = []
        self._undo: list[Callable[[], None]] = []

    # -- wrappers -------------------------------------------------------------------

    def _sync(self, kind: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        spans, clock = self.spans, time.perf_counter_ns

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spans.append((kind(*args) if callable(kind) else kind, t0, clock()))

        return wrapper

    def _async(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        spans, clock = self.spans, time.perf_counter_ns

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return await fn(*args, **kwargs)
            finally:
                spans.append((kind, t0, clock()))

        return wrapper

    def _patch(self, owner: Any, name: str, wrapped: Callable[..., Any]) -> None:
        had = name in vars(owner)
        old = vars(owner).get(name)
        setattr(owner, name, wrapped)
        self._undo.append(lambda: setattr(owner, name, old) if had else delattr(owner, name))

    @classmethod
    def install(cls, engine: Any) -> Timeline:
        """Wrap ``engine``'s store (a SQL store) and the engine's classes; until :meth:`uninstall`."""
        from retold.engine import _ahead
        from retold.engine._activity_worker import ActivityWorker
        from retold.runtime._steps import StepRunner

        self = cls()
        store = engine.store
        durable = store._d.begin
        self._patch(store, "_run", self._async("writer_call", store._run))
        self._patch(store, "_tx_in", self._sync(
            lambda begin, *_: "writer_tx" if begin == durable else "other_tx", store._tx_in))
        if hasattr(store, "_tx_inline"):  # SQLite: a transaction run on the loop's thread, no hop
            self._patch(store, "_tx_inline", self._sync("writer_tx", store._tx_inline))
        dialect = store._d.engine.dialect
        self._patch(dialect, "do_commit", self._sync("commit", dialect.do_commit))
        if hasattr(store._d, "_commit"):  # SQLite: COMMIT on the driver
            self._patch(store._d, "_commit", self._sync("commit", store._d._commit))
        # One attempt (a task may run several in a row: the next activity of a run is handed to it).
        self._patch(ActivityWorker, "_run_one", self._async("activity_task", ActivityWorker._run_one))
        self._patch(ActivityWorker, "_invoke", self._async("activity_body", ActivityWorker._invoke))
        self._patch(_ahead.RunAhead, "finish_activity", self._async("record", _ahead.RunAhead.finish_activity))
        self._patch(StepRunner, "run", self._async("step_call", StepRunner.run))
        self._patch(_ahead, "activate", self._sync("workflow_code", getattr(_ahead, "activate")))  # noqa: B009
        return self

    def uninstall(self) -> None:
        """Put every wrapped method back."""
        while self._undo:
            self._undo.pop()()

    # -- figures --------------------------------------------------------------------

    def steps(self) -> list[dict[str, float]]:
        """Per step, the phases in µs (and ``step``, its whole length); the last step, unended, is left out."""
        return steps_of(self.spans)

    def figures(self) -> Figures:
        """Mean and median of each phase over the steps, in µs (``timeline_<phase>_mean_us`` / ``_p50_us``)."""
        return figures_of(self.steps(), self.spans)


def steps_of(spans: list[tuple[str, int, int]]) -> list[dict[str, float]]:
    """Cut ``spans`` into steps at the starts of activity tasks; each step's phases in µs."""
    starts = sorted(t0 for kind, t0, _ in spans if kind == "activity_task")
    if len(starts) < 2:
        return []
    import bisect

    sums: list[dict[str, float]] = [{} for _ in starts[:-1]]
    for kind, t0, t1 in spans:
        index = bisect.bisect_right(starts, t0) - 1
        if 0 <= index < len(sums):
            sums[index][kind] = sums[index].get(kind, 0.0) + (t1 - t0) / 1000
    steps = []
    for i, got in enumerate(sums):
        total = (starts[i + 1] - starts[i]) / 1000
        g = got.get
        steps.append({
            "step": total,
            "commit": g("commit", 0.0),
            "writer_sql": g("writer_tx", 0.0) - g("commit", 0.0),
            "writer_hop": g("writer_call", 0.0) - g("writer_tx", 0.0),
            "workflow_code": g("workflow_code", 0.0),
            "step_hop": g("step_call", 0.0) - g("workflow_code", 0.0),
            "fast_path": g("record", 0.0) - g("step_call", 0.0) - g("writer_call", 0.0),
            "activity": g("activity_task", 0.0) - g("record", 0.0) - g("activity_body", 0.0),
            "activity_body": g("activity_body", 0.0),
            "between": total - g("activity_task", 0.0),
            "other_tx": g("other_tx", 0.0),
        })
    return steps


def figures_of(steps: list[dict[str, float]], spans: list[tuple[str, int, int]] | None = None) -> Figures:
    """Mean and median per phase, in µs."""
    if not steps:
        return {}
    figures: Figures = {"timeline_steps": len(steps)}
    for phase in ("step", *PHASES, "other_tx"):
        values = [s[phase] for s in steps]
        figures[f"timeline_{phase}_mean_us"] = statistics.fmean(values)
        figures[f"timeline_{phase}_p50_us"] = statistics.median(values)
    return figures


def render(figures: Figures) -> str:
    """The timeline as a text table (µs per step, mean and median)."""
    labels = {
        "step": "whole step", "commit": "durable COMMIT (driver)", "writer_sql": "SQL and plan on the writer",
        "writer_hop": "thread hop to the writer and back", "workflow_code": "workflow code (activate)",
        "step_hop": "thread hop to the step thread and back", "fast_path": "fast path bookkeeping (loop)",
        "activity": "activity machinery", "activity_body": "activity body", "between": "between activity tasks",
        "other_tx": "(apart: lease-only and read transactions)",
    }
    lines = [f"{'W3 step timeline':44} {'mean us':>9} {'p50 us':>9}"]
    for phase, label in labels.items():
        mean, p50 = figures.get(f"timeline_{phase}_mean_us"), figures.get(f"timeline_{phase}_p50_us")
        if mean is not None and p50 is not None:
            lines.append(f"{label:44} {mean:9.1f} {p50:9.1f}")
    return "\n".join(lines)
