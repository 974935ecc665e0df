// Dashboard: queue depth per class, running jobs with live progress and ETA, the workers running them,
// and the failures of the last 24 hours, all kept current by the event stream.

import { api, optional, ApiError } from "../api.js";
import { $, h, show, message, table, row, badge, progressBar, setProgress } from "../dom.js";
import { ago, eta, estimate, speed, shortId } from "../format.js";
import { subscribe } from "../events.js";
import { JOB_EVENTS, eventStatus, isTerminal } from "../contract.js";

const DAY = 86400;
const running = new Map(); // job id -> {job fields + live progress}
let failures = [];

// --- queues ---------------------------------------------------------------------------------------
const QUEUE_COLUMNS = [{ label: "Class" }, { label: "State" }, { label: "Pending", num: true }, { label: "In flight", num: true }, { label: "Oldest waiting", num: true }, { label: "" }];

function queueRows(answer) {
  return (answer.queues || []).map((q) => {
    const action = q.paused ? "resume" : "pause";
    const count = (n) => (n === null || n === undefined ? "unknown" : String(n));
    return row(QUEUE_COLUMNS, [
      q.priority,
      badge(q.paused ? "paused" : "running"),
      count(q.pending),
      count(q.in_flight),
      q.oldest_waiting_seconds ? eta(q.oldest_waiting_seconds) : "",
      h("button", { type: "button", class: "small", onclick: () => setQueue(q.priority, action), "aria-label": `${action} the ${q.priority} queue` }, action),
    ]);
  });
}

async function setQueue(name, action) {
  try {
    await api(`/api/queues/${encodeURIComponent(name)}/${action}`, { method: "POST" });
  } catch (e) {
    show($("#queues"), message(`Could not ${action} ${name}: ${e.detail || e.message}`, "error"));
    return;
  }
  loadQueues();
}

let queueTimer = null;
async function loadQueues() {
  const box = $("#queues");
  let queues;
  try {
    queues = await optional("/api/queues");
  } catch (e) {
    show(box, message(`Queues: ${e.detail || e.message}`, "error"));
    return;
  }
  if (queues === null) {
    const queued = await api("/api/jobs?status=queued&limit=1");
    show(box, message(`${queued.total} job(s) queued. Depth per class is unavailable on this API (no /api/queues).`));
    return;
  }
  show(box, table(QUEUE_COLUMNS, queueRows(queues), { caption: "Depth per priority class" }));
}
// Job events change the depths: read them again, at most once every two seconds.
function queuesChanged() {
  if (queueTimer) return;
  queueTimer = setTimeout(() => {
    queueTimer = null;
    loadQueues();
  }, 2000);
}

// --- running jobs and workers ---------------------------------------------------------------------
const RUN_COLUMNS = [{ label: "Job" }, { label: "Kind" }, { label: "Source", cls: "key" }, { label: "Progress" }, { label: "Speed", num: true }, { label: "ETA", num: true }, { label: "Worker" }];

function etaOf(job) {
  if (job.eta !== undefined && job.eta !== null) return job.eta;
  return estimate(job.progress, job.started_at);
}

function runningRow(job) {
  return row(
    RUN_COLUMNS,
    [
      h("a", { href: `/console/jobs/${encodeURIComponent(job.id)}`, title: job.id }, shortId(job)),
      job.kind || "",
      job.source_key || "",
      progressBar(job.progress, `Progress of job ${job.id}`),
      h("span", { class: "speed" }, speed(job.speed)),
      h("span", { class: "eta" }, eta(etaOf(job))),
      h("span", { class: "worker" }, job.worker || ""),
    ],
    { "data-job-id": job.id },
  );
}

function renderRunning() {
  const box = $("#running");
  if (!running.size) show(box, message("No job is running."));
  else show(box, table(RUN_COLUMNS, [...running.values()].map(runningRow), { caption: `${running.size} running` }));
  renderWorkers();
}

function updateRunningRow(job) {
  const tr = $(`#running tr[data-job-id="${CSS.escape(job.id)}"]`);
  if (!tr) return renderRunning();
  setProgress(tr, job.progress);
  tr.querySelector(".speed").textContent = speed(job.speed);
  tr.querySelector(".eta").textContent = eta(etaOf(job));
  const worker = tr.querySelector(".worker");
  if (worker.textContent !== (job.worker || "")) {
    worker.textContent = job.worker || "";
    renderWorkers();
  }
}

function renderWorkers() {
  const byWorker = new Map();
  for (const job of running.values()) {
    if (!job.worker) continue;
    if (!byWorker.has(job.worker)) byWorker.set(job.worker, []);
    byWorker.get(job.worker).push(job);
  }
  const box = $("#workers");
  if (!byWorker.size) {
    show(box, message("No worker is running a job."));
    return;
  }
  show(
    box,
    h(
      "ul",
      {},
      [...byWorker.entries()].map(([worker, jobs]) =>
        h("li", {}, h("strong", {}, worker), ": ", jobs.map((j, i) => [i ? ", " : "", h("a", { href: `/console/jobs/${encodeURIComponent(j.id)}` }, `${j.kind} ${shortId(j)}`)])),
      ),
    ),
  );
}

// --- failures -------------------------------------------------------------------------------------
const FAIL_COLUMNS = [{ label: "Job" }, { label: "Kind" }, { label: "Source", cls: "key" }, { label: "Reason" }, { label: "Error" }, { label: "When" }];

function renderFailures() {
  const since = Date.now() / 1000 - DAY;
  const recent = failures.filter((j) => (j.finished_at || j.updated_at) >= since);
  const box = $("#failures");
  if (!recent.length) {
    show(box, message("No job failed in the last 24 hours."));
    return;
  }
  show(
    box,
    table(
      FAIL_COLUMNS,
      recent.map((j) =>
        row(FAIL_COLUMNS, [
          h("a", { href: `/console/jobs/${encodeURIComponent(j.id)}`, title: j.id }, shortId(j)),
          j.kind || "",
          j.source_key || "",
          badge(j.failure_reason || "failed"),
          j.error || "",
          ago(j.finished_at || j.updated_at),
        ]),
      ),
      { caption: `${recent.length} failed` },
    ),
    h("p", {}, h("a", { href: "/console/jobs?status=failed" }, "All failed jobs")),
  );
}

// --- live -----------------------------------------------------------------------------------------
const ended = new Set(); // jobs seen ending: a progress report still in flight must not bring them back

function onEvent(type, e) {
  const id = e.job_id;
  if (type === "job.progress") {
    if (ended.has(id) || (e.status && e.status !== "running")) return;
    const isNew = !running.has(id);
    const job = running.get(id) || { id, kind: e.kind, progress: 0, started_at: e.at };
    Object.assign(job, { progress: e.progress ?? job.progress, speed: e.speed, eta: e.eta, worker: e.worker || job.worker });
    running.set(id, job);
    if (!isNew) {
      updateRunningRow(job);
      return;
    }
    renderRunning();
    // a job this page has not listed: its source, and whether it is still running at all
    api(`/api/jobs/${encodeURIComponent(id)}`)
      .then((r) => {
        if (isTerminal(r.job.status)) {
          ended.add(id);
          if (running.delete(id)) renderRunning();
          return;
        }
        Object.assign(job, { ...r.job, progress: job.progress, speed: job.speed, eta: job.eta, worker: job.worker || r.job.worker });
        renderRunning();
      })
      .catch(() => {});
    return;
  }
  if (isTerminal(eventStatus(type))) {
    ended.add(id);
    if (running.delete(id)) renderRunning();
    if (type === "job.failed") {
      api(`/api/jobs/${encodeURIComponent(id)}`)
        .then((r) => {
          failures = [r.job, ...failures.filter((j) => j.id !== r.job.id)];
          renderFailures();
        })
        .catch(() => {});
    }
  }
  queuesChanged();
}

async function main() {
  subscribe({ types: JOB_EVENTS }, onEvent);
  loadQueues();
  try {
    const [runningPage, failedPage] = await Promise.all([
      api("/api/jobs?status=running&limit=200"),
      api("/api/jobs?status=failed&limit=200"),
    ]);
    for (const { job } of runningPage.items) if (!running.has(job.id)) running.set(job.id, job);
    failures = failedPage.items.map((i) => i.job);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) show($("#running"), message(e.detail || e.message, "error"));
    return;
  }
  renderRunning();
  renderFailures();
}

main();
