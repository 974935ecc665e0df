// How numbers, times and sizes read on the console.

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** Seconds as h:mm:ss.s or m:ss.s */
export function duration(s) {
  if (s === null || s === undefined || Number.isNaN(Number(s))) return "";
  const total = Number(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = (total % 60).toFixed(total < 60 ? 1 : 0).padStart(total < 60 ? 4 : 2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** Seconds still to go, e.g. "2 min 5 s" */
export function eta(s) {
  if (s === null || s === undefined || !Number.isFinite(Number(s)) || s < 0) return "";
  const t = Math.round(Number(s));
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${t % 60} s`;
  return `${Math.floor(t / 3600)} h ${Math.floor((t % 3600) / 60)} min`;
}

/** An epoch time (seconds) as local date and time. */
export function when(epoch) {
  if (!epoch) return "";
  return new Date(epoch * 1000).toLocaleString();
}

export function ago(epoch) {
  if (!epoch) return "";
  const s = Math.max(0, Date.now() / 1000 - epoch);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function speed(x) {
  return x ? `${Number(x).toFixed(2)}×` : "";
}

/** Seconds left from progress (0-100) made since ``startedAt`` (epoch seconds), when the event gives none. */
export function estimate(progress, startedAt, now = Date.now() / 1000) {
  if (!startedAt || !progress || progress <= 0 || progress >= 100) return null;
  const elapsed = now - startedAt;
  return (elapsed * (100 - progress)) / progress;
}

/** A job's id, short enough for a list, that still tells a package from its children: a child's id is
 * its package's id and a name ("<package>-720p", "<package>-storyboard"), shown as "a1b2c3d4…/720p". */
export function shortId(job) {
  const parent = job.parent_id;
  if (parent && job.id.startsWith(`${parent}-`)) return `${parent.slice(0, 8)}…/${job.id.slice(parent.length + 1)}`;
  if (parent) return `${job.id.slice(0, 20)}…`;
  return job.id.length > 12 ? job.id.slice(0, 12) : job.id;
}
