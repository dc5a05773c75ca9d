"""What the harness shows: the rows of the table, medians with min-max, the ratio."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from _common import Figures


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure of a workload, in a unit.

    Attributes:
        workload: W1... W7.
        key: the figure's name in the workload's JSON.
        label: what the figure is, for people.
        unit: the unit shown, after ``scale``.
        scale: shown value = stored value * scale.
        better: ``lower`` or ``higher``; only for reading the ratio.
    """

    workload: str
    key: str
    label: str
    unit: str
    scale: float = 1.0
    better: str = "lower"


def rows(sizes: dict[str, Any]) -> list[Row]:
    """Every row the harness can show, for these sizes."""
    w1, w2, w3, w5 = sizes["W1"], sizes["W2"], sizes["W3"], sizes["W5"]
    table = [
        Row("W1", "workflows_per_s", f"{w1} x 3 no-op activities at once: throughput", "workflows/s", better="higher"),
        Row("W1", "steps_per_s", "same: activities per second", "steps/s", better="higher"),
        Row("W1", "p50_ms", "same: start-to-result p50", "ms"),
        Row("W1", "p99_ms", "same: start-to-result p99", "ms"),
        Row("W1", "cpu_ms_per_workflow", "same: CPU per workflow (getrusage, the process)", "ms"),
        Row("W2", "p50_ms", f"{w2} one at a time: start-to-result p50", "ms"),
        Row("W2", "p99_ms", "same: p99", "ms"),
        Row("W2", "cpu_ms_per_workflow", "same: CPU per workflow", "ms"),
        Row("W3", "ms_per_step", f"one workflow of {w3} activities: per activity (mean)", "ms"),
        Row("W3", "ms_per_step_p50", "same: median step", "ms"),
        Row("W3", "cpu_ms_per_step", "same: CPU per step", "ms"),
    ]
    for n in sizes["W4_replay"]:
        table.append(Row("W4", f"replay_us_per_activity_{n}", f"replay in memory, {n} activities", "us/activity"))
    for n in sizes["W4_recover"]:
        table.append(Row("W4", f"recover_ms_{n}", f"recover from the store, {n} steps done", "ms"))
    if sizes["W4_recover"]:
        # Per step only for the longest history: for short ones the difference
        # is within the noise of starting an engine (the JSON has them all).
        n = max(sizes["W4_recover"])
        table.append(Row("W4", f"recover_us_per_step_{n}", f"same, ({n} steps - 0 steps) / {n}", "us/step"))
    table += [
        Row("W5", "seconds", f"{w5} x 3 x 50 ms, SIGKILL, restart: until all done", "s"),
        Row("W5", "completed_before_kill", "activities completed before the kill", "count", better="higher"),
        Row("W5", "rerun_completed", "completed activities run again after restart", "count"),
    ]
    for count in sizes["W6"]:
        table.append(Row("W6", f"rss_bytes_per_run_{count}", f"{count} runs waiting for a signal: RSS/run", "kB",
                         scale=1e-3))
    table += [
        Row("W7", "bytes_per_workflow", f"database per completed workflow (of {w1}, minus empty db)", "kB",
            scale=1e-3),
        Row("W7", "gross_bytes_per_workflow", "same, whole file / workflows", "kB", scale=1e-3),
    ]
    for count in sizes.get("W8_workers", []):
        w8 = sizes.get("W8", 0)
        table += [
            Row("W8", f"workflows_per_s_{count}", f"{w8} x 3 activities, {count} worker processes: throughput",
                "workflows/s", better="higher"),
            Row("W8", f"cpu_ms_per_workflow_{count}", "same: CPU per workflow, all retold processes", "ms"),
            Row("W8", f"db_cpu_ms_per_workflow_{count}", "same: CPU per workflow, PostgreSQL backends", "ms"),
            Row("W8", f"commits_per_workflow_{count}", "same: commits per workflow (pg_stat_database)", "count"),
        ]
    return table


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of the repetitions."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: Sequence[Figures]) -> dict[str, dict[str, float]]:
    """Per numeric figure, the stats over the repetitions that produced it."""
    keys = {k for run in runs for k, v in run.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {k: stats([run[k] for run in runs if k in run]) for k in sorted(keys)}


def fmt(value: float) -> str:
    """Three significant digits or so, never scientific notation."""
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(summary: dict[str, float] | None, scale: float) -> str:
    """``median (min-max)``, scaled."""
    if summary is None:
        return "n/a"
    if summary["n"] == 1 or summary["min"] == summary["max"]:
        return fmt(summary["median"] * scale)
    return f"{fmt(summary['median'] * scale)} ({fmt(summary['min'] * scale)}-{fmt(summary['max'] * scale)})"


def table_lines(table: list[Row], summaries: dict[str, dict[str, dict[str, dict[str, float]]]],
                systems: list[str]) -> list[dict[str, Any]]:
    """The table as data: one dict per row that has a figure for some system."""
    lines = []
    for row in table:
        values = {s: summaries.get(s, {}).get(row.workload, {}).get(row.key) for s in systems}
        if not any(values.values()):
            continue
        line: dict[str, Any] = {"workload": row.workload, "figure": row.label, "key": row.key, "unit": row.unit,
                                "better": row.better, "scale": row.scale}
        for system, summary in values.items():
            line[system] = summary
        if len(systems) == 2:
            a, b = values[systems[0]], values[systems[1]]
            line["ratio"] = a["median"] / b["median"] if a and b and b["median"] else None
        lines.append(line)
    return lines


def _print(title: str, headers: list[str], body: list[list[str]], out: TextIO) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        out.write(f"{title}\n")
        widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
        for r in [headers, *body]:
            out.write("  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                                for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() + "\n")
        return
    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i >= 3 else "left")
    for r in body:
        table.add_row(*r)
    Console(file=out, width=200).print(table)


def render(lines: list[dict[str, Any]], systems: list[str], floor: dict[str, dict[str, float]] | None,
           out: TextIO) -> None:
    """Print the table (with rich when it is installed), then the floor."""
    headers = ["", "figure", "unit", *systems]
    if len(systems) == 2:
        headers.append(f"{systems[0]}/{systems[1]}")
    body = []
    for line in lines:
        cells = [line["workload"], line["figure"], line["unit"]]
        cells += [cell(line[s], line["scale"]) for s in systems]
        if len(systems) == 2:
            cells.append("" if line.get("ratio") is None else f"{line['ratio']:.2f}")
        body.append(cells)
    _print("median (min-max) of the repetitions", headers, body, out)
    if floor:
        rows_per_s = floor.get("batched_rows_per_s")
        per_workflow = floor.get("events_per_workflow", {}).get("median", 8.0)
        _print("physical floor, same disk, same run", ["", "figure", "unit", "value"], [
            ["floor", "one durable commit (1 row)", "ms", cell(floor.get("commit_ms"), 1.0)],
            ["floor", "same: commits per second", "commits/s", cell(floor.get("commits_per_s"), 1.0)],
            ["floor", "batched insert of the events, 1,000 rows per commit", "rows/s", cell(rows_per_s, 1.0)],
            ["floor", f"same, in 3-activity workflows ({per_workflow:.0f} events each)", "workflows/s",
             cell(rows_per_s, 1 / per_workflow)],
        ], out)


def render_sql_counts(profile: dict[str, dict[str, Any]], systems: list[str], out: TextIO) -> None:
    """``--profile``: what each system asks of the database, per step or per workflow."""
    body = []
    for workload, unit in (("W1", "workflow"), ("W3", "step")):
        for name in ("statements", "transactions", "write_transactions", "synced_commits"):
            key = f"{name}_per_{unit}"
            values = [profile.get(s, {}).get(f"{workload}_sql", {}).get(key) for s in systems]
            if any(v is not None for v in values):
                body.append([workload, f"{name.replace('_', ' ')} per {unit}", "count",
                             *("n/a" if v is None else f"{v:.2f}" for v in values)])
    if body:
        _print("SQL per unit of work (counted through SQLAlchemy's events)", ["", "figure", "unit", *systems],
               body, out)


def markdown(lines: list[dict[str, Any]], systems: list[str], floor: dict[str, dict[str, float]] | None) -> str:
    """The same table as Markdown, for docs/performance.md."""
    headers = ["", "figure", "unit", *systems] + ([f"{systems[0]}/{systems[1]}"] if len(systems) == 2 else [])
    out = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for line in lines:
        cells = [line["workload"], line["figure"], line["unit"], *(cell(line.get(s), line["scale"]) for s in systems)]
        if len(systems) == 2:
            cells.append("" if line.get("ratio") is None else f"{line['ratio']:.2f}")
        out.append("| " + " | ".join(cells) + " |")
    if floor:
        for key, label, unit in (("commit_ms", "one durable commit (1 row)", "ms"),
                                 ("batched_rows_per_s", "batched insert of the events, 1,000 rows per commit",
                                  "rows/s")):
            out.append(f"| floor | {label} | {unit} | {cell(floor.get(key), 1.0)} |" + " |" * (len(headers) - 4))
    return "\n".join(out)
