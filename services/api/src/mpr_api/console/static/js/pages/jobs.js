// Jobs: newest first, filtered by status, a page at a time (the API paginates); rows follow the event
// stream live; failed jobs can be retried all at once. A package's children on the page are grouped
// under its row, collapsed; a child whose package is on another page is listed by itself.

import { api, ApiError } from "../api.js";
import { $, h, show, message, table, row, badge, progressBar, setProgress, pager, announce } from "../dom.js";
import { ago, shortId } from "../format.js";
import { subscribe } from "../events.js";
import { JOB_EVENTS, eventStatus } from "../contract.js";

const LIMIT = 25;
const COLUMNS = [{ label: "Job" }, { label: "Kind" }, { label: "Source", cls: "key" }, { label: "Status" }, { label: "Progress" }, { label: "Priority" }, { label: "Created" }];
const params = new URLSearchParams(location.search);
const status = params.get("status") || "";
const offset = Math.max(0, Number(params.get("offset")) || 0);
const shown = new Map(); // id -> row

function jobRow(job, children = []) {
  const link = h("a", { href: `/console/jobs/${encodeURIComponent(job.id)}`, title: job.id }, shortId(job));
  const toggle = children.length
    ? h("button", { type: "button", class: "link children-toggle", "aria-expanded": "false", "data-children-of": job.id }, `▸ ${children.length} part${children.length > 1 ? "s" : ""}`)
    : null;
  const tr = row(
    COLUMNS,
    [
      h("span", {}, link, toggle ? " " : null, toggle),
      job.kind,
      job.source_key,
      h("span", { class: "status" }, badge(job.status)),
      progressBar(job.status === "completed" ? 100 : job.progress, `Progress of job ${job.id}`),
      job.priority || "normal",
      h("time", { datetime: new Date(job.created_at * 1000).toISOString(), title: new Date(job.created_at * 1000).toLocaleString() }, ago(job.created_at)),
    ],
    { "data-job-id": job.id, "data-status": job.status, ...(job.parent_id ? { "data-parent-id": job.parent_id } : {}) },
  );
  shown.set(job.id, tr);
  if (toggle) {
    const rows = children.map((c) => {
      const [child] = jobRow(c);
      child.hidden = true;
      child.classList.add("child");
      return child;
    });
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      toggle.textContent = `${open ? "▾" : "▸"} ${children.length} part${children.length > 1 ? "s" : ""}`;
      rows.forEach((r) => (r.hidden = !open));
    });
    return [tr, ...rows];
  }
  return [tr];
}

/** The page's rows: each job, with the children of a package on the page grouped under it. */
function rows(jobs) {
  const here = new Set(jobs.map((j) => j.id));
  const kids = new Map();
  for (const j of jobs) {
    if (j.parent_id && here.has(j.parent_id)) kids.set(j.parent_id, [...(kids.get(j.parent_id) || []), j]);
  }
  return jobs.filter((j) => !(j.parent_id && here.has(j.parent_id))).flatMap((j) => jobRow(j, kids.get(j.id) || []));
}

async function load() {
  const q = new URLSearchParams({ limit: String(LIMIT), offset: String(offset) });
  if (status) q.set("status", status);
  let page;
  try {
    page = await api(`/api/jobs?${q}`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) show($("#jobs"), message(e.detail || e.message, "error"));
    return;
  }
  shown.clear();
  if (!page.items.length) show($("#jobs"), message(status ? `No ${status} jobs.` : "No jobs yet."));
  else show($("#jobs"), table(COLUMNS, rows(page.items.map((i) => i.job)), { caption: `Jobs${status ? ` (${status})` : ""}` }));
  pager($("#pager"), page, (next) => {
    const p = new URLSearchParams(location.search);
    p.set("offset", String(next));
    location.search = p.toString();
  });
}

let reloadTimer = null;
function reloadSoon() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    load();
  }, 1000);
}

function onEvent(type, e) {
  const tr = shown.get(e.job_id);
  const newStatus = eventStatus(type);
  if (!tr) {
    // a job this page does not show: a new one belongs on the first page when it matches the filter
    if (type === "job.queued" && offset === 0 && (!status || status === "queued")) reloadSoon();
    return;
  }
  if (status && newStatus !== status) {
    reloadSoon();
    return;
  }
  if (tr.dataset.status !== newStatus) {
    tr.dataset.status = newStatus;
    tr.querySelector(".status").replaceChildren(badge(newStatus));
    if (newStatus !== "running") announce(`Job ${e.job_id.slice(0, 8)} ${newStatus}`);
  }
  if (type === "job.progress") setProgress(tr, e.progress ?? 0);
  if (type === "job.completed") setProgress(tr, 100);
}

function setupFilter() {
  const select = $("#status");
  select.value = status;
  $("#filter").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (select.value) p.set("status", select.value);
    location.search = p.toString();
  });
  const retry = $("#retry-failed");
  retry.hidden = status !== "failed";
  retry.addEventListener("click", async () => {
    const out = $("#bulk-result");
    retry.disabled = true;
    try {
      const r = await api("/api/retries", { method: "POST", body: { status: "failed" } });
      const skipped = r.skipped?.length ? `, ${r.skipped.length} skipped (${r.skipped[0].detail})` : "";
      out.textContent = `${r.retried.length} failed job(s) sent to run again${skipped}${r.more ? "; more match: retry again for the rest" : ""}.`;
      reloadSoon();
    } catch (e) {
      out.textContent = e.status === 404 ? "Bulk retry is unavailable on this API." : `Bulk retry refused: ${e.detail || e.message}`;
    } finally {
      out.hidden = false;
      retry.disabled = false;
    }
  });
}

setupFilter();
subscribe({ types: JOB_EVENTS }, onEvent);
load();
