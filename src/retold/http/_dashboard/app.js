// The dashboard's shell: hash routes (#/runs, #/runs/<id>, #/workflows), sign-in, keyboard shortcuts.

import {AuthError, call, getToken, setToken} from "./api.js";
import {h} from "./dom.js";
import {runsPage} from "./runs.js";
import {runPage} from "./run.js";
import {workflowsPage} from "./workflows.js";

const main = document.getElementById("main");
const signOut = document.getElementById("sign-out");
let cleanup = () => {};

/** The route in the URL fragment: {page, id, params}. */
function route() {
  const hash = location.hash.replace(/^#/, "") || "/runs";
  const [path, query = ""] = hash.split("?", 2);
  const params = Object.fromEntries(new URLSearchParams(query));
  const run = path.match(/^\/runs\/(.+)$/s);
  if (run) return {page: "run", id: decodeURIComponent(run[1]), params};
  if (path === "/workflows") return {page: "workflows", params};
  return {page: "runs", params};
}

async function show() {
  cleanup();
  cleanup = () => {};
  const current = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    const here = link.dataset.nav === current.page || (current.page === "run" && link.dataset.nav === "runs");
    if (here) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const pages = {runs: runsPage, run: runPage, workflows: workflowsPage};
  const view = h("div", {class: "page", "data-page": current.page});
  main.replaceChildren(view);
  try {
    cleanup = (await pages[current.page](view, current, {onAuthError: signIn})) || (() => {});
  } catch (error) {
    if (error instanceof AuthError) signIn();
    else view.replaceChildren(h("p", {class: "error", role: "alert"}, `Could not load this page: ${error.message}`));
  }
}

/** The sign-in form, in place of any data: shown when the server refuses the request's token. */
function signIn() {
  cleanup();
  cleanup = () => {};
  const had = Boolean(getToken());
  setToken("");
  signOut.hidden = true;
  const input = h("input", {id: "token", name: "token", type: "password", autocomplete: "current-password",
    required: true, "aria-describedby": "token-help"});
  const message = h("p", {class: "error", role: "alert", id: "login-error"},
    had ? "That token was refused." : "");
  const form = h("form", {class: "login", id: "login", onsubmit: async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    try {
      await call("GET", "workflows");
    } catch (error) {
      setToken("");
      message.textContent = error instanceof AuthError ? "That token was refused." : error.message;
      input.select();
      return;
    }
    signOut.hidden = false;
    show();
  }},
    h("h1", {}, "Sign in"),
    h("p", {id: "token-help"}, "This server needs a bearer token (retold serve --token)."),
    h("label", {for: "token"}, "Token"), input, message,
    h("button", {type: "submit"}, "Sign in"));
  main.replaceChildren(form);
  input.focus();
}

signOut.addEventListener("click", () => { setToken(""); signIn(); });

// Keyboard: g r runs, g w workflows, / the first filter or search field.
let pendingG = false;
document.addEventListener("keydown", (e) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (pendingG) {
    pendingG = false;
    if (e.key === "r") location.hash = "#/runs";
    else if (e.key === "w") location.hash = "#/workflows";
    return;
  }
  if (e.key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1000); }
  else if (e.key === "/") {
    const field = main.querySelector("[data-shortcut='/']");
    if (field) { e.preventDefault(); field.focus(); }
  }
});

window.addEventListener("hashchange", () => { show(); main.focus({preventScroll: true}); });

// Start: one request tells whether a token is needed (401) before any page shows data.
(async () => {
  try {
    await call("GET", "workflows");
  } catch (error) {
    if (error instanceof AuthError) { signIn(); return; }
  }
  signOut.hidden = !getToken();
  show();
})();
