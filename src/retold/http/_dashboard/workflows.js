// The workflows and activities the server hosts, and a form to start a run, checked against the JSON Schema.

import {ApiError, AuthError, call} from "./api.js";
import {h, runLink} from "./dom.js";
import {describe, validate} from "./schema.js";

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function params(list) {
  return list.map((p) => `${p.name}: ${p.type}${p.required ? "" : " = …"}`).join(", ");
}

/** One input per positional parameter: text for strings, JSON for the rest. */
function field(wf, param, schema, index) {
  const id = `arg-${wf.name}-${index}`;
  const isString = schema && schema.type === "string";
  const hint = describe(schema);
  const attrs = {id, name: param.name, "data-kind": isString ? "string" : "json", "aria-describedby": `${id}-hint`,
    required: param.required, spellcheck: "false", autocomplete: "off"};
  const input = isString || ["integer", "number", "boolean"].includes(schema?.type)
    ? h("input", {...attrs, placeholder: isString ? "" : hint})
    : h("textarea", {...attrs, rows: 3, placeholder: schema?.type === "object" ? "{}" : hint});
  return h("div", {class: "field"},
    h("label", {for: id}, param.name, param.required ? "" : " (optional)"),
    input, h("small", {id: `${id}-hint`, class: "muted"}, `${param.type} · ${hint}`));
}

function startForm(wf) {
  const schema = wf.args_schema || {type: "array"};
  const positional = wf.parameters.slice(0, (schema.prefixItems || []).length);
  const fields = positional.map((p, i) => field(wf, p, schema.prefixItems[i], i));
  const rest = schema.maxItems === undefined
    ? h("textarea", {id: `arg-${wf.name}-rest`, rows: 2, placeholder: "[]", "data-kind": "rest"}) : null;
  const workflowId = h("input", {id: `id-${wf.name}`, name: "id", autocomplete: "off", placeholder: "a new id"});
  const key = h("input", {id: `key-${wf.name}`, name: "idempotency-key", value: newKey(), autocomplete: "off"});
  const errors = h("ul", {class: "error", role: "alert"});

  function collect() {
    const args = [];
    const problems = [];
    let gap = null;
    fields.forEach((wrapper, i) => {
      const input = wrapper.querySelector("input, textarea");
      const raw = input.value;
      if (raw.trim() === "" && !(input.dataset.kind === "string" && positional[i].required)) {
        if (!positional[i].required) { gap ??= positional[i].name; return; }
        problems.push(`${positional[i].name}: a value is required`);
        return;
      }
      if (gap) { problems.push(`${positional[i].name}: give ${gap} too (arguments are positional)`); return; }
      if (input.dataset.kind === "string") { args.push(raw); return; }
      try { args.push(JSON.parse(raw)); } catch (error) {
        problems.push(`${positional[i].name}: not JSON (${error.message})`);
      }
    });
    if (rest && rest.value.trim()) {
      try {
        const more = JSON.parse(rest.value);
        if (!Array.isArray(more)) throw new Error("not an array");
        args.push(...more);
      } catch (error) { problems.push(`further arguments: ${error.message}`); }
    }
    if (!problems.length) {
      for (const e of validate(args, schema)) {
        const m = e.path.match(/^\$\[(\d+)\](.*)$/);
        const name = m && positional[Number(m[1])] ? positional[Number(m[1])].name + m[2] : e.path;
        problems.push(`${name}: ${e.message}`);
      }
    }
    return {args, problems};
  }

  const form = h("form", {class: "start", "data-workflow": wf.name, onsubmit: async (e) => {
    e.preventDefault();
    const {args, problems} = collect();
    errors.replaceChildren(...problems.map((p) => h("li", {}, p)));
    if (problems.length) return;
    const body = {args};
    if (workflowId.value.trim()) body.id = workflowId.value.trim();
    const extraHeaders = key.value.trim() ? {"Idempotency-Key": key.value.trim()} : {};
    try {
      const run = await call("POST", `workflows/${encodeURIComponent(wf.name)}/runs`, {body, extraHeaders});
      location.hash = runLink(run.run_id);
    } catch (error) {
      if (error instanceof AuthError) throw error;
      errors.replaceChildren(h("li", {}, error instanceof ApiError ? `${error.status}: ${error.message}` : error.message));
    }
  }},
  fields, rest ? h("div", {class: "field"}, h("label", {for: rest.id}, "Further arguments (JSON array)"), rest) : "",
  h("div", {class: "field"}, h("label", {for: workflowId.id}, "Workflow id (optional)"), workflowId),
  h("div", {class: "field"}, h("label", {for: key.id}, "Idempotency key"), key,
    h("small", {class: "muted"}, "Sending the same key and input again returns the same run.")),
  errors,
  h("button", {type: "submit"}, "Start run"));
  return form;
}

export async function workflowsPage(view, _route, {onAuthError}) {
  const registry = await call("GET", "workflows");
  view.append(h("h1", {}, "Workflows"));
  if (!registry.workflows.length) view.append(h("p", {class: "muted"}, "This server hosts no workflows."));
  for (const wf of registry.workflows) {
    const start = startForm(wf);
    view.append(h("section", {class: "card workflow", id: `wf-${wf.name}`, "data-workflow": wf.name},
      h("h2", {}, wf.name, h("span", {class: "muted sig"}, `(${params(wf.parameters)}) → ${wf.returns}`)),
      wf.description ? h("p", {}, wf.description) : "",
      h("p", {class: "muted"},
        wf.activities.length ? `Activities: ${wf.activities.join(", ")}. ` : "",
        wf.children.length ? `Children: ${wf.children.join(", ")}. ` : "",
        h("a", {href: `#/runs?workflow=${encodeURIComponent(wf.name)}`}, "Runs of this workflow")),
      wf.startable === false
        ? h("p", {class: "muted"}, `Hosted by ${wf.hosted_by} live engine${wf.hosted_by === 1 ? "" : "s"}; `
            + "this server does not have its code, so it cannot start it (serve it with --app).")
        : h("details", {}, h("summary", {}, "Start a run"), start)));
  }
  view.append(h("h2", {}, "Activities"),
    h("div", {class: "table-wrap"}, h("table", {class: "activities"},
      h("thead", {}, h("tr", {}, ["Name", "Parameters", "Returns", "Task queue", "Description"].map((c) =>
        h("th", {scope: "col"}, c)))),
      h("tbody", {}, registry.activities.map((a) => h("tr", {},
        h("td", {}, a.name), h("td", {}, params(a.parameters)), h("td", {}, a.returns), h("td", {}, a.task_queue),
        h("td", {}, a.description)))))));
  // An AuthError while starting: the app's sign-in form.
  window.addEventListener("unhandledrejection", onRejection);
  function onRejection(e) {
    if (e.reason instanceof AuthError) { e.preventDefault(); onAuthError(); }
  }
  return () => window.removeEventListener("unhandledrejection", onRejection);
}
