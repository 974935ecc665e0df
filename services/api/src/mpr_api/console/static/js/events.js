// The API's event stream (GET /api/events, Server-Sent Events): live job progress and new assets, with
// no polling. EventSource sends the session cookie and resumes by itself (Last-Event-ID).

const statusEl = () => document.getElementById("live-status");

function setStatus(state, text) {
  const el = statusEl();
  if (!el) return;
  el.className = `live-status ${state}`;
  el.textContent = text;
}

/**
 * Call ``onEvent(type, data)`` for each event of ``types`` (for ``jobIds`` only, when given), and
 * ``onOpen()`` once the stream is connected: what happened before that is not in it (a stream without a
 * cursor starts now), so a page reads again then what it read before subscribing.
 * Returns the EventSource (close() it to stop).
 */
export function subscribe({ types, jobIds = [], onOpen = null }, onEvent) {
  const q = new URLSearchParams();
  q.set("types", types.join(","));
  for (const id of jobIds) q.append("job_id", id);
  const url = `/api/events?${q}`;
  const source = new EventSource(url);
  for (const type of types) {
    source.addEventListener(type, (e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      onEvent(type, data, e.lastEventId);
    });
  }
  let opened = false;
  source.addEventListener("open", () => {
    setStatus("on", "Live");
    // reconnections resume after the last event seen (Last-Event-ID): only the first open can miss any
    if (!opened && onOpen) onOpen();
    opened = true;
  });
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) {
      setStatus("off", "Reconnecting…");
      return;
    }
    // Closed for good: the stream answered something else than an event stream. Say what.
    let status = 0;
    try {
      const controller = new AbortController();
      const r = await fetch(url, { signal: controller.signal, credentials: "same-origin" });
      status = r.status;
      controller.abort();
    } catch {
      status = 0;
    }
    if (status === 404) setStatus("off", "Live updates unavailable on this API");
    else if (status === 401) location.assign(`/console/sign-in?expired=1&next=${encodeURIComponent(location.pathname)}`);
    else setStatus("off", "Live updates stopped: reload the page");
  });
  setStatus("off", "Connecting…");
  return source;
}
