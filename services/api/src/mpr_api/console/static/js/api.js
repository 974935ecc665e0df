// The REST API as the console calls it: same origin, the session cookie, and the session's CSRF token on
// every request that changes something (the API refuses a cookie-authenticated change without it).

const csrf = document.querySelector('meta[name="mpr-csrf"]')?.content || "";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.field = fieldOf(detail);
  }
}

// Fields of the API's request bodies that an error message may name first ("start: must be …",
// "end must be greater than start", "Validation failed for POST /api/jobs: source_key: …").
export const FIELDS = [
  "source_key", "output_key", "kind", "preset", "start", "end", "priority", "template", "loudnorm",
  "storyboard", "job_id", "key", "size", "prefix", "name", "url", "events", "secret", "filter",
];

/** The form field an API error is about, or null: the first known field name the message leads with. */
export function fieldOf(detail) {
  if (typeof detail !== "string") return null;
  const text = detail.replace(/^Validation failed for [A-Z]+ [^:]*:\s*/, "");
  const m = text.match(/^([a-z_]+)(?:\[\d+\])?(?::|\s+(?:must|is|belongs|has|needs)\b)/);
  if (m && FIELDS.includes(m[1])) return m[1];
  const named = text.match(/\b(source_key|output_key|preset|start|end|loudnorm|template|priority)\b/);
  return named ? named[1] : null;
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
  if (!r.ok) throw new ApiError(r.status, (data && data.detail) || `${r.status} ${r.statusText}`);
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
