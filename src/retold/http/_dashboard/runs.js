// The runs table: filters and paging in the URL fragment, refreshed live while the page is visible.

import {AuthError, call, url} from "./api.js";
import {badge, formatDuration, formatTime, h, runLink} from "./dom.js";

const FALLBACK_STATUSES = ["running", "blocked", "completed", "failed", "cancelled", "continued", "terminated", "timed_out"];

/** The statuses the server can filter by, from its OpenAPI document (so new ones show up here). */
async function statuses() {
  try {
    const doc = await (await fetch(url("openapi.json"))).json();
    const param = doc.paths["/runs"].get.parameters.find((p) => p.name === "status");
    return param.schema.enum;
  } catch {
    return FALLBACK_STATUSES;
  }
}
const PAGE = 25;
const REFRESH_MS = 2000;

/** datetime-local value (local time) to ISO 8601 in UTC, which the API wants. */
function toIso(local) {
  return local ? new Date(local).toISOString() : "";
}

function duration(run, now) {
  const start = Date.parse(run.started_at);
  const end = run.closed_at ? Date.parse(run.closed_at) : now;
  return formatDuration((end - start) / 1000);
}

export async function runsPage(view, {params}, {onAuthError}) {
  const filters = {
    status: params.status || "", workflow: params.workflow || "", id_prefix: params.id_prefix || "",
    started_after: params.started_after || "", started_before: params.started_before || "",
  };
  const offset = Math.max(0, Number.parseInt(params.offset || "0", 10) || 0);
  const [registry, known] = await Promise.all([call("GET", "workflows"), statuses()]);

  function go(changes) {
    const next = {...filters, offset: String(offset), ...changes};
    const query = new URLSearchParams(Object.entries(next).filter(([k, v]) => v && !(k === "offset" && v === "0")));
    location.hash = `#/runs${query.size ? "?" + query : ""}`;
  }

  const select = (name, label, options) => h("label", {},
    label, h("select", {name, onchange: (e) => go({[name]: e.target.value, offset: "0"})},
      h("option", {value: ""}, "any"),
      options.map((o) => h("option", {value: o, selected: o === filters[name]}, o))));
  const text = (name, label, attrs) => h("label", {},
    label, h("input", {name, value: filters[name], onchange: (e) => go({[name]: e.target.value.trim(), offset: "0"}),
      ...attrs}));
  const when = (name, label) => h("label", {},
    label, h("input", {name, type: "datetime-local", step: 1,
      value: filters[name] ? localValue(filters[name]) : "",
      onchange: (e) => go({[name]: toIso(e.target.value), offset: "0"})}));

  const form = h("form", {class: "filters", role: "search", "aria-label": "Filter runs",
    onsubmit: (e) => e.preventDefault()},
    select("status", "Status", known),
    select("workflow", "Workflow", registry.workflows.map((w) => w.name)),
    text("id_prefix", "Id starts with", {type: "search", placeholder: "order-", "data-shortcut": "/"}),
    when("started_after", "Started after"),
    when("started_before", "Started before"),
    h("button", {type: "button", class: "quiet", onclick: () => { location.hash = "#/runs"; }}, "Clear"));

  const body = h("tbody", {});
  const live = h("span", {class: "live muted", id: "live", "aria-live": "off"}, "");
  const prev = h("button", {type: "button", class: "quiet", disabled: offset === 0,
    onclick: () => go({offset: String(Math.max(0, offset - PAGE))})}, "← Newer");
  const next = h("button", {type: "button", class: "quiet", disabled: true,
    onclick: () => go({offset: String(offset + PAGE)})}, "Older →");
  const empty = h("p", {class: "muted", hidden: true}, "No runs match.");

  view.append(
    h("div", {class: "title"}, h("h1", {}, "Runs"), live),
    form,
    h("div", {class: "table-wrap"}, h("table", {class: "runs", id: "runs"},
      h("thead", {}, h("tr", {},
        ["Status", "Workflow", "Id", "Started", "Closed", "Duration"].map((c) => h("th", {scope: "col"}, c)))),
      body)),
    empty,
    h("nav", {class: "pager", "aria-label": "Pages"}, prev,
      h("span", {class: "muted"}, `${offset + 1}–`), next));

  const seen = new Set();
  let first = true;
  let timer = null;
  let stopped = false;

  async function refresh() {
    timer = null;
    if (stopped) return;
    if (!document.hidden) {
      try {
        const page = await call("GET", "runs", {params: {
          ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), limit: PAGE, offset}});
        if (stopped) return;
        render(page);
        live.textContent = `Live · updated ${formatTime(new Date()).slice(11)}`;
      } catch (error) {
        if (stopped) return;
        if (error instanceof AuthError) { onAuthError(); return; }
        live.textContent = `Not updating: ${error.message}`;
      }
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function render(page) {
    const now = Date.now();
    const rows = page.runs.map((run) => {
      const fresh = !first && !seen.has(run.run_id);
      seen.add(run.run_id);
      return h("tr", {class: fresh ? "fresh" : undefined, "data-run-id": run.run_id, "data-workflow-id": run.workflow_id,
        "data-status": run.status},
        h("td", {}, badge(run.status)),
        h("td", {}, run.workflow),
        h("td", {class: "id"}, h("a", {href: runLink(run.run_id), title: `run ${run.run_id}`}, run.workflow_id)),
        h("td", {}, h("time", {datetime: run.started_at}, formatTime(run.started_at))),
        h("td", {}, run.closed_at ? h("time", {datetime: run.closed_at}, formatTime(run.closed_at)) : ""),
        h("td", {class: "num"}, duration(run, now)));
    });
    first = false;
    body.replaceChildren(...rows);
    empty.hidden = rows.length > 0;
    next.disabled = !page.next;
    prev.nextElementSibling.textContent = rows.length ? `${offset + 1}–${offset + rows.length}` : "";
  }

  await refresh();
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}

/** An ISO string as a datetime-local value in the browser's zone. */
function localValue(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
