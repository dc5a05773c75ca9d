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

/** Why a run is blocked: its workflow task keeps failing on an error of the code (a bad deploy). */
function blockedBox(blocked) {
  if (!blocked) return "";
  const fact = (k, v) => v === null || v === undefined || v === "" ? [] : [h("dt", {}, k), h("dd", {}, v)];
  return h("section", {id: "blocked", class: "blocked", role: "alert", "aria-labelledby": "blocked-h"},
    h("h2", {id: "blocked-h"}, "Blocked: the workflow task keeps failing"),
    h("p", {class: "blocked-error"}, h("strong", {}, blocked.type), ": ", blocked.message),
    h("dl", {class: "facts"},
      ...fact("Diverging event", blocked.seq === null || blocked.seq === undefined ? "" : h("span", {},
        h("a", {href: "#history", "data-seq": blocked.seq,
          onclick: (e) => { e.preventDefault(); showEvent(blocked.seq); }}, `#${blocked.seq}`))),
      ...fact("Attempts", String(blocked.attempts)),
      ...fact("Since", formatTime(blocked.since)),
      ...fact("Next retry", formatTime(blocked.retry_at)),
      ...fact("Code fingerprint", blocked.fingerprint ? h("code", {}, blocked.fingerprint) : "")),
    h("p", {class: "muted"}, "The run stays open with its history untouched. Roll the code back or deploy the fix "
      + "(retold.patched) and it resumes; or terminate it below."),
    blocked.details ? h("details", {}, h("summary", {}, "Traceback"), h("pre", {}, blocked.details)) : "");
}

function showEvent(seq) {
  const row = document.querySelector(`#history tr[data-seq="${seq}"]`);
  if (!row) return;
  row.scrollIntoView({block: "center"});
  row.classList.add("fresh");
}

/** What an open run waits for: activities, timers, children, signals not yet consumed. */
function pendingWork(pending) {
  if (!pending) return "";
  const activities = pending.activities || [], timers = pending.timers || [], children = pending.children || [];
  const signals = pending.signals || [];
  if (!activities.length && !timers.length && !children.length && !signals.length && !pending.waiting_for?.length) {
    return "";
  }
  const table = (id, heads, rows) => rows.length ? h("div", {class: "table-wrap"},
    h("table", {id, class: "pending"},
      h("thead", {}, h("tr", {}, heads.map((c) => h("th", {scope: "col"}, c)))), h("tbody", {}, rows))) : "";
  const attempts = (a) => a.max_attempts ? `${a.attempt} of ${a.max_attempts}` : String(a.attempt);
  const state = (a) => a.worker ? `running on ${a.worker}`
    : a.next_retry_at ? `retry at ${formatTime(a.next_retry_at)}` : a.hosted ? "not started yet" : "no running worker hosts it";
  return h("section", {id: "pending", "aria-labelledby": "pending-h"},
    h("h2", {id: "pending-h"}, "Pending work"),
    pending.waiting_for?.length ? h("ul", {class: "waiting-for"},
      pending.waiting_for.map((line) => h("li", {}, line))) : "",
    activities.length ? h("h3", {}, "Activities") : "",
    table("pending-activities",
      ["#", "Activity", "Queue", "Attempt", "State", "Started", "Last failure", "Lease holder"],
      activities.map((a) => h("tr", {"data-seq": a.seq, "data-activity": a.activity, "data-attempt": a.attempt},
        h("td", {class: "num"}, String(a.seq)), h("td", {}, a.activity), h("td", {}, a.queue),
        h("td", {class: "num"}, attempts(a)), h("td", {class: a.hosted || a.worker ? "" : "error"}, state(a)),
        h("td", {}, formatTime(a.started_at)), h("td", {class: "last-failure"}, a.last_failure || ""),
        h("td", {}, a.worker ? h("code", {}, a.worker) : "")))),
    timers.length ? h("h3", {}, "Timers") : "",
    table("pending-timers", ["#", "Fires at", "In"], timers.map((t) => h("tr", {"data-seq": t.seq},
      h("td", {class: "num"}, String(t.seq)), h("td", {}, formatTime(t.fire_at)),
      h("td", {}, formatDuration((Date.parse(t.fire_at) - Date.now()) / 1000))))),
    children.length ? h("h3", {}, "Child workflows") : "",
    table("pending-children", ["#", "Workflow", "Id"], children.map((c) => h("tr", {"data-seq": c.seq ?? ""},
      h("td", {class: "num"}, c.seq === null ? "" : String(c.seq)), h("td", {}, c.workflow),
      h("td", {}, h("a", {href: runLink(c.run_id)}, c.workflow_id))))),
    signals.length ? h("h3", {}, "Signals received, not yet consumed") : "",
    table("pending-signals", ["#", "Name", "Received"], signals.map((g) => h("tr", {"data-name": g.name},
      h("td", {class: "num"}, g.seq === null ? "" : String(g.seq)), h("td", {}, g.name),
      h("td", {}, formatTime(g.received_at))))));
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
      ...fact("Continued as", run.next_run_id ? h("a", {href: runLink(run.next_run_id)}, run.next_run_id) : ""),
      ...fact("Attributes", Object.entries(run.search_attributes || {})
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ")));
    extra.replaceChildren(blockedBox(run.blocked), pendingWork(run.pending));
    // Fields later versions of the API add are shown as they come.
    const known = new Set(["workflow_id", "run_id", "workflow", "status", "started_at", "closed_at", "event_count",
      "failure", "parent_run_id", "next_run_id", "result", "blocked", "pending", "search_attributes"]);
    const more = Object.entries(run).filter(([k, v]) => !known.has(k) && v !== null && v !== undefined);
    extra.append(...more.map(([k, v]) => h("section", {class: `extra extra-${k}`},
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

    const why = h("input", {id: "terminate-reason", autocomplete: "off"});
    const terminate = h("form", {id: "terminate-form", onsubmit: guard(async () => {
      if (!await confirmDialog(`Terminate run ${run.workflow_id} now? Its code does not run again: pending `
        + "activities and timers are dropped, and it ends as terminated.")) return;
      await call("POST", runPath(run.run_id, "terminate"), {body: why.value ? {reason: why.value} : {}});
      show(true, "Terminated.");
      try { run = await call("GET", runPath(run.run_id)); renderHeader(); } catch { /* the stream tells */ }
    })}, h("h3", {}, "Terminate"),
    h("label", {for: "terminate-reason"}, "Reason"), why,
    h("p", {class: "muted hint"}, "Ends the run at once without running its code (for a stuck or blocked run)."),
    h("button", {type: "submit", class: "danger", disabled: !open}, "Terminate run…"));

    actions.replaceChildren(h("h2", {id: "actions-h"}, "Actions"),
      h("div", {class: "action-forms"}, signal, query, cancel, terminate), result);
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
    else refreshSoon();
    renderHeader();
    renderEvents(fresh);
  }

  // An open run's pending work and blocked reason change without events (retries, leases): look again
  // after new events, and every few seconds while the page shows.
  let refreshing = null;
  function refreshSoon() {
    if (refreshing || run.closed_at) return;
    refreshing = setTimeout(async () => {
      try {
        const fresh = await call("GET", runPath(run.run_id));
        if (!stopped && !run.closed_at) {
          run = {...fresh, event_count: Math.max(run.event_count, fresh.event_count)};
          renderHeader();
        }
      } catch { /* keep what we have; the stream reports trouble */ }
      refreshing = null;
    }, 500);
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
  let ticks = 0;
  tick = setInterval(() => {
    if (document.hidden || run.closed_at) return;
    if (run.status === "running") { renderHeader(); renderEvents([]); }
    if (++ticks % 5 === 0) refreshSoon();
  }, 1000);
  return () => { stopped = true; stream.stop(); clearInterval(tick); clearTimeout(refreshing); };
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
