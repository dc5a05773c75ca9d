// A run's history as a Gantt chart: one row per activity, timer, child and update, plus signals and the run.

import {formatDuration, h} from "./dom.js";

const CLOSES_ACTIVITY = {ActivityCompleted: "completed", ActivityFailed: "failed", ActivityTimedOut: "timed out",
  ActivityCancelRequested: "cancelled"};
const CLOSES_CHILD = {ChildWorkflowCompleted: "completed", ChildWorkflowFailed: "failed"};
const CLOSES_RUN = {WorkflowCompleted: "completed", WorkflowFailed: "failed", WorkflowCancelled: "cancelled",
  WorkflowContinuedAsNew: "continued", WorkflowTerminated: "terminated", WorkflowTimedOut: "timed out"};

/**
 * The chart's rows from a history: [{kind, label, start, end, status, attempts, seq, marks}], times in
 * seconds since the epoch; `end` null while open. Signals and cancel requests are marks (points in time).
 */
export function buildTimeline(events) {
  const rows = [];
  const bySeq = new Map();
  const signalRows = new Map();
  let run = null;
  for (const e of events) {
    switch (e.type) {
      case "WorkflowStarted":
        run = {kind: "workflow", label: e.workflow, start: e.at, end: null, status: "running", seq: e.seq, marks: []};
        rows.push(run);
        break;
      case "ActivityScheduled":
        bySeq.set(e.seq, rows[rows.push({kind: "activity", label: e.activity, start: e.at, end: null,
          status: "running", seq: e.seq, attempts: null, marks: []}) - 1]);
        break;
      case "ActivityCompleted": case "ActivityFailed": case "ActivityTimedOut": case "ActivityCancelRequested": {
        const row = bySeq.get(e.scheduled);
        if (row && row.end === null) {
          row.end = e.at;
          row.status = CLOSES_ACTIVITY[e.type];
          if (e.attempt) row.attempts = e.attempt;
          if (e.failure) row.failure = e.failure.message;
        }
        break;
      }
      case "TimerStarted":
        bySeq.set(e.seq, rows[rows.push({kind: "timer", label: `timer ${formatDuration(e.duration)}`, start: e.at,
          end: null, due: e.at + e.duration, status: "running", seq: e.seq, marks: []}) - 1]);
        break;
      case "TimerFired": case "TimerCancelled": {
        const row = bySeq.get(e.started);
        if (row && row.end === null) { row.end = e.at; row.status = e.type === "TimerFired" ? "fired" : "cancelled"; }
        break;
      }
      case "ChildWorkflowStarted":
        bySeq.set(e.seq, rows[rows.push({kind: "child", label: `${e.workflow} (${e.workflow_id})`, start: e.at,
          end: null, status: "running", seq: e.seq, runId: e.run_id, marks: []}) - 1]);
        break;
      case "ChildWorkflowCompleted": case "ChildWorkflowFailed": {
        const row = bySeq.get(e.started);
        if (row && row.end === null) {
          row.end = e.at;
          row.status = e.cancelled ? "cancelled" : CLOSES_CHILD[e.type];
        }
        break;
      }
      case "SignalReceived": {
        let row = signalRows.get(e.name);
        if (!row) {
          row = {kind: "signal", label: `signal ${e.name}`, start: e.at, end: e.at, status: "received", seq: e.seq,
            marks: []};
          signalRows.set(e.name, row);
          rows.push(row);
        }
        row.marks.push({at: e.at, seq: e.seq, label: `signal ${e.name} (#${e.seq})`});
        row.end = e.at;
        break;
      }
      case "UpdateAccepted":
        bySeq.set(e.seq, rows[rows.push({kind: "update", label: `update ${e.name}`, start: e.at, end: null,
          status: "running", seq: e.seq, marks: []}) - 1]);
        break;
      case "UpdateCompleted": {
        const row = bySeq.get(e.accepted);
        if (row && row.end === null) {
          row.end = e.at;
          row.status = e.failure ? "failed" : "completed";
          if (e.failure) row.failure = e.failure.message;
        }
        break;
      }
      case "CancelRequested":
        if (run) run.marks.push({at: e.at, seq: e.seq, label: `cancel requested (#${e.seq})${e.reason ? ": " + e.reason : ""}`});
        break;
      default:
        if (run && CLOSES_RUN[e.type]) { run.end = e.at; run.status = CLOSES_RUN[e.type]; }
    }
  }
  return rows;
}

function describe(row, now) {
  const end = row.end ?? now;
  const parts = [row.status];
  if (row.kind !== "signal") parts.push(formatDuration(end - row.start));
  if (row.attempts) parts.push(`${row.attempts} attempt${row.attempts === 1 ? "" : "s"}`);
  if (row.kind === "signal") parts.push(`${row.marks.length} received`);
  if (row.failure) parts.push(row.failure);
  return parts.join(" · ");
}

/** Draw the rows into a chart element; `now` (seconds) closes the open bars. */
export function renderTimeline(rows, now, {childLink} = {}) {
  if (!rows.length) return h("p", {class: "muted"}, "No events yet.");
  const start = rows[0].start;
  const end = Math.max(now, ...rows.map((r) => r.end ?? now), ...rows.map((r) => r.due ?? start));
  const span = Math.max(end - start, 0.001);
  const pct = (t) => `${(((t - start) / span) * 100).toFixed(3)}%`;
  const width = (a, b) => `max(3px, ${(((b - a) / span) * 100).toFixed(3)}%)`;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) =>
    h("span", {class: "tick", style: {left: `${f * 100}%`}}, `+${formatDuration(span * f)}`));
  return h("div", {class: "timeline", role: "list", "aria-label": "Timeline"},
    h("div", {class: "axis", "aria-hidden": "true"}, h("span", {class: "label"}), h("span", {class: "track"}, ticks)),
    rows.map((row) => {
      const text = describe(row, now);
      const label = row.kind === "child" && childLink
        ? h("a", {href: childLink(row.runId)}, row.label) : row.label;
      const track = h("span", {class: "track"});
      if (row.kind === "signal") {
        for (const mark of row.marks) {
          track.append(h("span", {class: "mark", title: mark.label, style: {left: pct(mark.at)}}));
        }
      } else {
        const attrs = {class: `bar ${row.kind} status-${row.status.replace(" ", "-")}`,
          title: `${row.label}: ${text}`,
          style: {left: pct(row.start), width: width(row.start, row.end ?? now)}};
        track.append(h("span", attrs, row.attempts > 1 ? `×${row.attempts}` : ""));
        if (row.due && row.end === null) {
          track.append(h("span", {class: "due", title: "due", style: {left: pct(row.due)}}));
        }
        for (const mark of row.marks) {
          track.append(h("span", {class: "mark cancel", title: mark.label, style: {left: pct(mark.at)}}));
        }
      }
      return h("div", {class: "row", role: "listitem", dataset: {kind: row.kind, name: row.label,
        status: row.status, attempts: row.attempts ?? "", seq: row.seq,
        start: row.start, end: row.end ?? ""}},
        h("span", {class: "label"}, h("span", {class: `kind ${row.kind}`}, row.kind), " ", label,
          h("span", {class: "sr-only"}, `: ${text}`)),
        track);
    }));
}
