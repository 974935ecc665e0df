// The REST API as the console calls it: same origin, the session cookie, and the session's CSRF token on
// every request that changes something (the API refuses a cookie-authenticated change without it).

const csrf = document.querySelector('meta[name="mpr-csrf"]')?.content || "";

export class ApiError extends Error {
  /** ``field``: the request's field the error concerns, as the API's error body names it (or null). */
  constructor(status, detail, field = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.field = field;
  }
}

function signIn() {
  const next = location.pathname + location.search;
  location.assign(`/console/sign-in?expired=1&next=${encodeURIComponent(next)}`);
}

/** fetch + JSON, errors as ApiError (401 sends the browser to the sign-in page). */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!["GET", "HEAD"].includes(method)) headers["X-MPR-CSRF"] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (r.status === 401) {
    signIn();
    throw new ApiError(401, "signed out");
  }
  if (r.status === 204) return null;
  let data = null;
  try {
    data = await r.json();
  } catch {
    data = null;
  }
  if (!r.ok) throw new ApiError(r.status, data?.detail || `${r.status} ${r.statusText}`, data?.field || null);
  return data;
}

/** The answer, or null when the API has no such route (a feature this API does not have). */
export async function optional(path, options) {
  try {
    return await api(path, options);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
}

/** A key as a URL path: each segment encoded, the slashes kept. */
export function keyPath(key) {
  return key.split("/").map(encodeURIComponent).join("/");
}
