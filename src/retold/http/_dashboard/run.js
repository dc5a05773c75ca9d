// A run: its status, timeline, input and outcome, history, and the actions on it, followed live.

import {ApiError, AuthError, call, runPath} from "./api.js";
import {badge, formatDuration, formatTime, h, pretty, runLink} from "./dom.js";
import {follow} from "./sse.js";
import {buildTimeline, renderTimeline} from "./timeline.js";

const FINAL = new Set(["WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled", "WorkflowContinuedAsNew",
  "WorkflowTerminated"]);
// Fields every event has, or that the history table shows apart.
const COMMON = new Set(["seq", "at", "type"]);

/** A failure and its causes, outermost first. */
function failureChain(failure) {
  const items = [];
  for (let f = failure, depth = 0; f && depth < 20; f = f.cause, depth++) {
    items.push(h("li", {class: "failure"},
      h("strong", {}, f.type || "Error"), ": ", f.message || "",
      f.non_retryable ? h("span", {class: "muted"}, " (non-retryable)") : "",
      f.activity ? h("span", {class: "muted"}, ` in activity ${f.activity.name} (#${f.activity.seq})`) : "",
      f.child ? h("span", {class: "muted"}, ` in child ${f.child.workflow} (${f.child.workflow_id})`) : "",
      f.details ? h("details", {}, h("summary", {}, "Details"), h("pre", {}, f.details)) : ""));
  }
  return h("ol", {class: "causes", "aria-label": "Failure and its causes"}, items);
}

/** The payload of an event: decoded JSON, or the codec's bytes in base64 (pickled payloads). */
function payloadOf(event, field) {
  if (field in event) return h("pre", {class: "json"}, pretty(event[field]));
  if (`${field}_b64` in event) return h("p", {class: "muted"}, "Encoded by a binary codec (base64): ",
    h("code", {}, event[`${field}_b64`].slice(0, 200)));
  return h("p", {class: "muted"}, "none");
}

function eventDetails(event) {
  const rest = Object.fromEntries(Object.entries(event).filter(([k]) => !COMMON.has(k)));
  if (!Object.keys(rest).length) return "";
  const compact = JSON.stringify(rest);
  return h("pre", {class: "json"}, compact.length <= 100 ? compact : pretty(rest));
}

export async function runPage(view, {id}, {onAuthError}) {
  let run = await call("GET", runPath(id));
  const events = [];
  let stream = null;
  let tick = null;
  let stopped = false;

  const header = h("div", {class: "title"});
  const facts = h("dl", {class: "facts"});
  const extra = h("div", {});
  const timeline = h("section", {"aria-labelledby": "timeline-h"});
  const io = h("div", {class: "io"});
  const historyBody = h("tbody", {});
  const follow_ = h("span", {class: "live muted", id: "follow"}, "");
  const actions = h("section", {class: "actions", "aria-labelledby": "actions-h"});

  view.append(header, facts, extra,
    h("section", {}, h("h2", {id: "timeline-h"}, "Timeline ", follow_), timeline),
    io, actions,
    h("section", {}, h("h2", {}, "History"),
      h("div", {class: "table-wrap"}, h("table", {class: "history", id: "history"},
        h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Details"].map((c) => h("th", {scope: "col"}, c)))),
        historyBody))));

  function renderHeader() {
    header.replaceChildren(h("h1", {}, run.workflow, " ", h("span", {class: "id"}, run.workflow_id)),
      h("span", {id: "run-status"}, badge(run.status)));
    const end = run.closed_at ? Date.parse(run.closed_at) : Date.now();
    const fact = (k, v) => v ? [h("dt", {}, k), h("dd", {}, v)] : [];
    facts.replaceChildren(
      ...fact("Run id", h("code", {}, run.run_id)),
      ...fact("Started", formatTime(run.started_at)),
      ...fact("Closed", run.closed_at ? formatTime(run.closed_at) : ""),
      ...fact("Duration", formatDuration((end - Date.parse(run.started_at)) / 1000)),
      ...fact("Events", String(run.event_count)),
      ...fact("Parent", run.parent_run_id ? h("a", {href: runLink(run.parent_run_id)}, run.parent_run_id) : ""),
      ...fact("Continued as", run.next_run_id ? h("a", {href: runLink(run.next_run_id)}, run.next_run_id) : ""));
    // Fields later versions of the API add (the blocked reason, pending work) are shown as they come.
    const known = new Set(["workflow_id", "run_id", "workflow", "status", "started_at", "closed_at", "event_count",
      "failure", "parent_run_id", "next_run_id", "result"]);
    const more = Object.entries(run).filter(([k, v]) => !known.has(k) && v !== null && v !== undefined
      && !(k === "pending" && !v.waiting_for?.length));  // a finished run waits for nothing
    extra.replaceChildren(...more.map(([k, v]) => h("section", {class: `extra extra-${k}`},
      h("h2", {}, k.replaceAll("_", " ")), h("pre", {class: "json"}, pretty(v)))));
  }

  function renderEvents(fresh) {
    const now = run.closed_at ? Date.parse(run.closed_at) / 1000 : Date.now() / 1000;
    timeline.replaceChildren(renderTimeline(buildTimeline(events), now, {childLink: runLink}));
    const started = events.find((e) => e.type === "WorkflowStarted");
    const outcome = events.find((e) => FINAL.has(e.type));
    const parts = [h("section", {}, h("h2", {}, "Input"), started ? payloadOf(started, "input") : "")];
    if (outcome?.type === "WorkflowCompleted") parts.push(h("section", {id: "result"}, h("h2", {}, "Result"),
      payloadOf(outcome, "result")));
    if (outcome?.type === "WorkflowFailed") parts.push(h("section", {id: "failure"}, h("h2", {}, "Failure"),
      failureChain(outcome.failure)));
    if (outcome?.type === "WorkflowCancelled") parts.push(h("section", {id: "cancelled"}, h("h2", {}, "Cancelled"),
      h("p", {}, events.filter((e) => e.type === "CancelRequested").map((e) => e.reason).filter(Boolean)
        .join("; ") || "No reason given.")));
    if (outcome?.type === "WorkflowTerminated") parts.push(h("section", {id: "terminated"}, h("h2", {}, "Terminated"),
      h("p", {}, outcome.reason || "No reason given.")));
    if (outcome?.type === "WorkflowTimedOut") parts.push(h("section", {id: "timed-out"}, h("h2", {}, "Timed out"),
      h("p", {}, `Its ${outcome.kind || "run"} timeout passed.`)));
    if (outcome?.type === "WorkflowContinuedAsNew") parts.push(h("section", {}, h("h2", {}, "Continued as new"),
      h("a", {href: runLink(outcome.new_run_id)}, outcome.new_run_id), payloadOf(outcome, "input")));
    io.replaceChildren(...parts);
    const t0 = events.length ? events[0].at : 0;
    for (const e of fresh) {
      historyBody.append(h("tr", {"data-seq": e.seq, "data-type": e.type},
        h("td", {class: "num"}, String(e.seq)),
        h("td", {title: formatTime(new Date(e.at * 1000))}, `+${formatDuration(e.at - t0)}`),
        h("td", {}, e.type), h("td", {}, eventDetails(e))));
    }
  }

  function renderActions() {
    const open = !run.closed_at;  // running or blocked: it still takes signals and a cancel
    const result = h("div", {id: "action-result", role: "status"});
    const show = (ok, text) => {
      result.className = ok ? "ok" : "error";
      result.replaceChildren(text);
    };
    const guard = (fn) => async (e) => {
      e.preventDefault();
      try { await fn(); } catch (error) {
        if (error instanceof AuthError) { onAuthError(); return; }
        show(false, error instanceof ApiError ? `${error.status}: ${error.message}` : error.message);
      }
    };
    const parseJson = (text, what) => {
      if (!text.trim()) return undefined;
      try { return JSON.parse(text); } catch (error) { throw new Error(`${what} is not JSON: ${error.message}`); }
    };

    const signalName = h("input", {id: "signal-name", required: true, autocomplete: "off"});
    const signalValue = h("textarea", {id: "signal-value", rows: 2, placeholder: "true", spellcheck: "false"});
    const signal = h("form", {id: "signal-form", onsubmit: guard(async () => {
      const value = parseJson(signalValue.value, "The value");
      await call("POST", runPath(run.run_id, "signals", signalName.value), {body: {value: value ?? null}});
      show(true, `Signal ${signalName.value} sent.`);
    })}, h("h3", {}, "Signal"),
    h("label", {for: "signal-name"}, "Name"), signalName,
    h("label", {for: "signal-value"}, "Value (JSON)"), signalValue,
    h("button", {type: "submit", disabled: !open}, "Send signal"));

    const queryName = h("input", {id: "query-name", required: true, autocomplete: "off"});
    const queryArgs = h("input", {id: "query-args", placeholder: "[]", spellcheck: "false"});
    const query = h("form", {id: "query-form", onsubmit: guard(async () => {
      const args = parseJson(queryArgs.value, "The arguments");
      if (args !== undefined && !Array.isArray(args)) throw new Error("The arguments must be a JSON array");
      const answer = await call("GET", runPath(run.run_id, "queries", queryName.value),
        {params: {args: args === undefined ? undefined : JSON.stringify(args)}});
      show(true, h("pre", {class: "json", id: "query-result"}, pretty(answer.result)));
    })}, h("h3", {}, "Query"),
    h("label", {for: "query-name"}, "Name"), queryName,
    h("label", {for: "query-args"}, "Arguments (JSON array)"), queryArgs,
    h("button", {type: "submit"}, "Ask"));

    const reason = h("input", {id: "cancel-reason", autocomplete: "off"});
    const cancel = h("form", {id: "cancel-form", onsubmit: guard(async () => {
      if (!await confirmDialog(`Cancel run ${run.workflow_id}? The workflow gets a cancellation and ends.`)) return;
      await call("POST", runPath(run.run_id, "cancel"), {body: reason.value ? {reason: reason.value} : {}});
      show(true, "Cancellation requested.");
    })}, h("h3", {}, "Cancel"),
    h("label", {for: "cancel-reason"}, "Reason"), reason,
    h("button", {type: "submit", class: "danger", disabled: !open}, "Cancel run…"));

    actions.replaceChildren(h("h2", {id: "actions-h"}, "Actions"),
      h("div", {class: "action-forms"}, signal, query, cancel), result);
  }

  let pending = [];
  let scheduled = false;
  function onEvent(event) {
    events.push(event);
    pending.push(event);
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }
  async function flush() {
    scheduled = false;
    const fresh = pending;
    pending = [];
    const last = fresh[fresh.length - 1];
    run = {...run, event_count: Math.max(run.event_count, last ? last.seq : 0)};
    if (fresh.some((e) => FINAL.has(e.type))) {
      try { run = await call("GET", runPath(run.run_id)); } catch { /* keep what we have */ }
      if (stopped) return;
      renderActions();
    }
    renderHeader();
    renderEvents(fresh);
  }

  renderHeader();
  renderActions();
  renderEvents([]);
  stream = follow(run.run_id, {
    onEvent,
    // The run became blocked, or no longer is: its status and the reason, shown as the API gives them.
    onStatus: (data) => { run = {...run, ...data}; renderHeader(); },
    done: () => events.some((e) => FINAL.has(e.type)),
    onState: (state) => {
      if (state instanceof AuthError) { onAuthError(); return; }
      follow_.textContent = state instanceof Error ? `· not following: ${state.message}`
        : {live: "· live", reconnecting: "· reconnecting…", ended: ""}[state] ?? "";
      follow_.dataset.state = state instanceof Error ? "error" : state;
    },
  });
  // Open bars grow while the run is running.
  tick = setInterval(() => { if (run.status === "running" && !document.hidden) { renderHeader(); renderEvents([]); } },
    1000);
  return () => { stopped = true; stream.stop(); clearInterval(tick); };
}

/** Ask in the page's <dialog>; resolves true when confirmed, false on "Keep it" or Escape. */
function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  const form = dialog.querySelector("form");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    // The button pressed, not the dialog's close event: a close still queued from the last
    // time it was shown must not answer this question.
    const done = (ok) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      resolve(ok);
    };
    const onSubmit = (e) => done(e.submitter?.value === "ok");
    const onCancel = () => done(false);
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
  });
}
