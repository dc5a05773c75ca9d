"""Tables and timelines for the terminal (rich)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

import retold
from retold.history.export import Event, event_to_dict

__all__ = ["console", "describe_table", "event_details", "pending_table", "runs_table", "timeline"]

STATUS_STYLES = {
    "running": "cyan", "blocked": "bold magenta", "completed": "green", "failed": "bold red",
    "cancelled": "yellow", "continued": "blue", "terminated": "red", "timed_out": "red",
}

# Activity options and trace headers never decide anything the reader needs here.
_HIDDEN = {"seq", "at", "type", "options", "headers"}
_PAYLOADS = {"input", "result", "value"}  # shown as JSON, so that "5" and 5 differ


def console(*, stderr: bool = False) -> Console:
    """A console; into a pipe or file, no colour and no wrapping (ids stay whole for grep)."""
    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out = Console(stderr=stderr, highlight=False, width=100_000, no_color=True)
    return out


def status_text(status: str) -> Text:
    """A run status, coloured."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _took(run: retold.RunDescription) -> str:
    if run.closed_at is None:
        return ""
    return f"{(run.closed_at - run.started_at).total_seconds():.3f}s"


def runs_table(runs: list[retold.RunDescription]) -> Table:
    """One row per run."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("WORKFLOW ID", "WORKFLOW", "STATUS", "STARTED", "TOOK", "EVENTS", "RUN ID"):
        table.add_column(column, overflow="fold", justify="right" if column == "EVENTS" else "left")
    for run in runs:
        table.add_row(run.workflow_id, run.workflow, status_text(run.status), _when(run.started_at), _took(run),
                      str(run.event_count), run.run_id)
    return table


def describe_table(run: retold.RunDescription) -> Table:
    """A run's status and timings, one field per line."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("workflow id", run.workflow_id), ("run id", run.run_id), ("workflow", run.workflow),
        ("status", status_text(run.status)), ("started", _when(run.started_at)),
    ]
    if run.closed_at is not None:
        rows += [("closed", _when(run.closed_at)), ("took", _took(run))]
    rows.append(("events", str(run.event_count)))
    if run.failure:
        rows.append(("failure", Text(run.failure, style="red")))
    blocked = run.blocked
    if blocked is not None:
        rows.append(("blocked by", Text(f"{blocked.type}: {blocked.message}", style="magenta")))
        if blocked.seq is not None:
            rows.append(("diverged at", f"event {blocked.seq}"))
        rows += [("attempts", f"{blocked.attempts} failed since {_when(blocked.since)}"),
                 ("next retry", f"{_when(blocked.retry_at)} (at once on other code)"),
                 ("failed on code", blocked.fingerprint or "")]
    if run.parent_run_id:
        rows.append(("parent run", run.parent_run_id))
    if run.next_run_id:
        rows.append(("continued as", run.next_run_id))
    for attr, held in run.search_attributes.items():
        rows.append((f"attr {attr}", held.isoformat() if isinstance(held, datetime) else repr(held)))
    if run.memo is not None:
        rows.append(("memo", Text(orjson.dumps(run.memo).decode())))
    for i, line in enumerate(run.pending.waiting_for if run.pending else ()):
        stuck = "no running worker hosts it" in line
        rows.append(("waiting for" if i == 0 else "", Text(line.removeprefix("waiting for "),
                                                          style="bold red" if stuck else "")))
    for name, value in rows:
        table.add_row(name, value)
    return table


def pending_table(pending: retold.PendingWork) -> Table | None:
    """A running run's pending activities, timers, children and unprocessed signals (None if it has none)."""
    rows: list[tuple[str, str, str, str]] = []
    for a in pending.activities:
        parts = [f"queue={a.queue}", f"attempt={a.attempt}" + (f"/{a.max_attempts}" if a.max_attempts else ""),
                 f"scheduled={_when(a.scheduled_at)}"]
        if a.started_at is not None:
            parts.append(f"started={_when(a.started_at)}")
        if a.worker is not None:
            parts.append(f"worker={a.worker}")
        if a.next_retry_at is not None:
            parts.append(f"next_retry={_when(a.next_retry_at)}")
        if a.last_failure:
            parts.append(f"last_failure={_short(a.last_failure)}")
        if not a.hosted and a.worker is None:
            parts.append("NOT HOSTED by any running worker")
        rows.append(("activity", str(a.seq), a.activity, "  ".join(parts)))
    rows += [("timer", str(t.seq), "", f"due={_when(t.fire_at)}") for t in pending.timers]
    rows += [("child", "" if c.seq is None else str(c.seq), c.workflow,
              f"workflow_id={c.workflow_id}  run_id={c.run_id}") for c in pending.children]
    rows += [("signal", "" if s.seq is None else str(s.seq), s.name,
              "in the inbox" if s.received_at is None else f"received={_when(s.received_at)}")
             for s in pending.signals]
    if not rows:
        return None
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("PENDING", "#", "NAME", "DETAILS"):
        table.add_column(column, overflow="fold", justify="right" if column == "#" else "left")
    for row in rows:
        table.add_row(*row)
    return table


def _short(value: Any, limit: int = 80, *, as_json: bool = False) -> str:
    text = value if isinstance(value, str) and not as_json else orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _decoded(codec: retold.Codec, data: bytes) -> Any:
    try:
        value = codec.decode(data)
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (retold.PayloadError, TypeError) as exc:
        return f"<cannot decode with {codec.name}: {exc}>"
    return value


def event_details(event: Event, codec: retold.Codec | None = None) -> str:
    """The fields of an event that a reader wants, as ``key=value`` pairs.

    With ``codec``, payloads are shown decoded (an encrypting codec's, say).
    """
    parts = []
    fields = event_to_dict(event)
    if codec is not None:
        for key in _PAYLOADS:
            data = getattr(event, key, None)
            if isinstance(data, bytes):
                fields.pop(f"{key}_b64", None)
                fields[key] = _decoded(codec, data)
    for key, value in fields.items():
        if key in _HIDDEN or (key not in _PAYLOADS and value in (None, "")):
            continue
        if key == "failure" and isinstance(value, dict):
            kind = value.get("type")
            parts.append(f"failure={kind + ': ' if kind else ''}{_short(value.get('message', ''))}")
            continue
        parts.append(f"{key}={_short(value, as_json=key in _PAYLOADS)}")
    return "  ".join(parts)


def timeline(history: retold.History, codec: retold.Codec | None = None) -> Table:
    """A history as a table: event number, time since the start, type, details (payloads decoded with ``codec``)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("+TIME", justify="right")
    table.add_column("EVENT")
    table.add_column("DETAILS", overflow="fold")
    start = history[0].at if len(history) else 0.0
    for event in history:
        style = "red" if "Failed" in event.type or "TimedOut" in event.type or "Terminated" in event.type else ""
        table.add_row(
            str(event.seq), f"{event.at - start:.3f}s", Text(event.type, style=style), event_details(event, codec)
        )
    return table
