// The public HTTP API, with the bearer token the user gave (kept for this tab only).

const TOKEN_KEY = "retold.token";

/** Raised when the server wants a (valid) token: the app shows the sign-in form. */
export class AuthError extends Error {}

/** An answer other than 2xx: `status` and the problem document's `detail`. */
export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.body = body;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Request headers: the token, if any, and more. */
export function headers(extra = {}) {
  const token = getToken();
  return token ? {Authorization: `Bearer ${token}`, ...extra} : {...extra};
}

/** A path relative to the page (the app may be mounted under a prefix; index.html has a <base>). */
export function url(path, params = {}) {
  const u = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(key, value);
  }
  return u.toString();
}

/** Call the API; returns the parsed JSON (null for an empty body). */
export async function call(method, path, {params, body, extraHeaders, signal} = {}) {
  const init = {method, headers: headers(extraHeaders), signal};
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url(path, params), init);
  if (response.status === 401) throw new AuthError("a valid token is required");
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const detail = (data && data.detail) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail, data);
  }
  return data;
}

/** The path of a run's route: ids may hold "/" and anything else, so encode them. */
export function runPath(id, ...rest) {
  return ["runs", encodeURIComponent(id), ...rest.map(encodeURIComponent)].join("/");
}
