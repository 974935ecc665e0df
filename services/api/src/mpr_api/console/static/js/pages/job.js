// One job: its fields, live progress, why it failed, its timeline, attempts and FFmpeg log, its output
// played in the page and downloadable (a package from the moment it can be played, while it encodes);
// cancel and retry.

import { api, optional, ApiError } from "../api.js";
import { $, h, show, message, badge, progressBar, setProgress, announce, table, row } from "../dom.js";
import { bytes, duration, eta, estimate, speed, when, shortId } from "../format.js";
import { subscribe } from "../events.js";
import { JOB_EVENTS, eventStatus, isRetryable, isTerminal } from "../contract.js";
import { mediaElement, kindOf, release } from "../player.js";

const jobId = $("#job-id").dataset.jobId;
let job = null;
let live = { progress: 0, speed: null, eta: null };
let shownOutput = null;
// The package's master playlist playing since it became playable: { key, figure }. Its completion
// keeps that player (the same playlist, grown to its end) and adds the others beside it.
let playing = null;
const timeline = [];

function field(label, value) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) return null;
  return [h("dt", {}, label), h("dd", {}, value)];
}

function summary(j) {
  const src = j.source_key;
  return h(
    "section",
    { class: "card", "aria-labelledby": "summary-h" },
    h("h2", { id: "summary-h" }, "Summary"),
    h("div", { class: "progress-box", id: "progress" },
      progressBar(j.status === "completed" ? 100 : live.progress || j.progress, "Job progress"),
      h("p", { class: "muted", id: "progress-text" }, progressText(j))),
    h(
      "dl",
      { class: "meta" },
      field("Status", h("span", { id: "status" }, badge(j.status))),
      field("Kind", j.kind),
      field("Source", h("a", { href: `/console/assets?prefix=${encodeURIComponent(src)}` }, `${j.source_bucket ? j.source_bucket + "/" : ""}${src}`)),
      field("Preset", j.preset),
      field("Priority", j.priority),
      field("Template", j.template),
      field("Rule", j.rule),
      field("Start", j.start !== null && j.start !== undefined ? `${duration(j.start)} (${j.start} s)` : null),
      field("End", j.end !== null && j.end !== undefined ? `${duration(j.end)} (${j.end} s)` : null),
      field("Output", j.output_key ? `${j.output_bucket ? j.output_bucket + "/" : ""}${j.output_key}` : null),
      field("Output size", j.output_size ? bytes(j.output_size) : null),
      field("Kept?", j.keep ? h("span", { id: "keep-outcome", class: j.keep.kept ? "" : "not-kept" }, keepText(j.keep)) : null),
      field("Worker", h("span", { id: "worker" }, j.worker || "")),
      field("Attempts", String(j.attempts || 0)),
      field("Retries", j.retries ? String(j.retries) : null),
      field("Package", j.parent_id ? h("a", { href: `/console/jobs/${encodeURIComponent(j.parent_id)}` }, j.parent_id) : null),
      field("Rendition", j.rendition),
      field("Loudness", j.loudness ? `${j.loudness.input_i} LUFS in → ${j.loudness.target_i} LUFS` : null),
      field("Quality", j.quality ? qualityText(j.quality) : null),
    ),
  );
}

/** keep_if's verdict as one line: "Not kept: output 412 kB/s > source 300 kB/s" (the API's wording). */
function keepText(k) {
  return `${k.kept ? "Kept" : "Not kept"}: ${k.detail || k.keep_if}`;
}

/** A metric as "mean (min …, 5th percentile …)"; PSNR in dB, where 100 stands for identical frames. */
function metricText(m, digits, unit = "") {
  return `${m.mean.toFixed(digits)}${unit} (min ${m.min.toFixed(digits)}, 5th percentile ${m.p5.toFixed(digits)})`;
}

function qualityText(q) {
  return [
    q.psnr ? `PSNR ${metricText(q.psnr, 2, " dB")}` : "",
    q.ssim ? `SSIM ${metricText(q.ssim, 4)}` : "",
    q.vmaf ? `VMAF ${metricText(q.vmaf, 1)}` : "",
    q.width && q.height ? `at ${q.width}×${q.height}` : "",
    `over ${q.frames} frames`,
  ].filter(Boolean).join(" · ");
}

/** A package: each video rendition's quality against the source, one row per rung. */
function renderQuality(j) {
  const rungs = Object.entries(j.rendition_quality || {});
  $("#quality-section").hidden = !rungs.length;
  if (!rungs.length) return;
  const cols = [{ label: "Rendition" }, { label: "Size" }, { label: "PSNR (dB): mean, min, 5th pct.", num: true }, { label: "SSIM: mean, min, 5th pct.", num: true }, { label: "Frames", num: true }];
  const triple = (m, d) => (m ? `${m.mean.toFixed(d)} · ${m.min.toFixed(d)} · ${m.p5.toFixed(d)}` : "not measured");
  show(
    $("#quality"),
    table(cols, rungs.map(([name, q]) => row(cols, [name, q.width && q.height ? `${q.width}×${q.height}` : "", triple(q.psnr, 2), triple(q.ssim, 4), String(q.frames)]))),
    ...ladderTable(j.chosen_ladder),
  );
}

/** A per-title package: the ladder its analysis chose, a line per rung (CRF, caps, prediction, why). */
function ladderTable(ladder) {
  if (!ladder) return [];
  const cols = [{ label: `Per-title rung (target ${ladder.metric.toUpperCase()} ${ladder.target})` }, { label: "CRF", num: true }, { label: "Max rate" }, { label: "Predicted", num: true }, { label: "Why" }];
  const predicted = (r) => (r.predicted_kbps != null ? `${Math.round(r.predicted_kbps)} kb/s at ${r.predicted_quality}` : "");
  return [table(cols, ladder.rungs.map((r) => row(cols, [r.kept ? r.name : `${r.name} (dropped)`, r.crf != null ? String(r.crf) : "", r.max_rate || "", predicted(r), r.reason])))];
}

function progressText(j) {
  if (j.status === "queued") return "Waiting for a worker.";
  if (j.status !== "running") return "";
  const left = live.eta ?? estimate(live.progress || j.progress, j.started_at);
  return [
    `${Math.floor(live.progress || j.progress)}% done`,
    live.speed || j.speed ? `at ${speed(live.speed || j.speed)}` : "",
    left !== null && left !== undefined ? `about ${eta(left)} left` : "",
  ].filter(Boolean).join(", ");
}

function renderFailure(j) {
  const box = $("#failure");
  box.hidden = j.status !== "failed";
  if (j.status === "failed") {
    $("#failure-reason").textContent = j.failure_reason || "failed";
    $("#failure-error").textContent = j.error || "No error message was recorded.";
  }
}

function renderActions(j) {
  $("#cancel").hidden = isTerminal(j.status);
  $("#retry").hidden = !isRetryable(j.status);
  $("#move").hidden = j.status !== "queued" || Boolean(j.parent_id);
  $("#move-to").value = j.priority || "normal";
}

function outputLinks(j, url) {
  // A package (or HLS job) names a playlist; its DASH manifest sits beside it under the same signed
  // folder link, so that URL is made relative to the playlist's.
  const links = [{ url, key: j.output_key }];
  for (const key of j.output_keys || []) {
    if (key === j.output_key) continue;
    if (/\.mpd$/i.test(key) && j.output_key && key.split("/").slice(0, -1).join("/") === j.output_key.split("/").slice(0, -1).join("/")) {
      links.push({ url: new URL(key.split("/").pop(), url).href, key });
    }
  }
  return links;
}

function player(j, l, options) {
  const kind = kindOf(l.url);
  const label = kind === "hls" ? "HLS" : kind === "dash" ? "DASH" : kind === "image" ? "Image" : "Output";
  return h("figure", {}, mediaElement(l.url, `${label} output of job ${j.id}`, options), h("figcaption", { class: "muted" }, `${label}: ${l.key}`));
}

function stopPlaying() {
  if (!playing) return;
  release(playing.figure.querySelector("video"));
  playing.figure.remove();
  playing = null;
}

/** A package that can be played before it completes: its master playlist plays, growing as it encodes. */
function renderPlayable(j) {
  const box = $("#output");
  if (!j.playable_url || isTerminal(j.status)) {
    // not playable (yet, or any more: a run that fails or is cancelled leaves no files)
    stopPlaying();
    box.hidden = true;
    return;
  }
  if (playing && playing.key === j.playable_key) return;
  stopPlaying();
  const figure = player(j, { url: j.playable_url, key: j.playable_key }, { autoplay: true });
  playing = { key: j.playable_key, figure };
  shownOutput = null;
  box.hidden = false;
  show($("#players"), figure);
  show($("#downloads"), h("span", { class: "muted", id: "encoding-note" }, "Still encoding: it plays as far as it is encoded, and on to the end once the package completes."));
  announce("The package can be played now");
}

function renderOutput(j, url) {
  const box = $("#output");
  if (j.status !== "completed" || !url) {
    renderPlayable(j);
    return;
  }
  if (shownOutput === url) return;
  shownOutput = url;
  box.hidden = false;
  const links = outputLinks(j, url);
  const kept = playing && links.some((l) => l.key === playing.key) ? playing : null;
  if (kept) {
    // already playing this playlist: left alone (not reloaded), the other outputs join it
    $("#players").append(...links.filter((l) => l.key !== kept.key).map((l) => player(j, l)));
  } else {
    stopPlaying();
    show($("#players"), links.map((l) => player(j, l)));
  }
  const download = [h("a", { href: url, download: j.output_key.split("/").pop(), class: "button", id: "download" }, "Download output")];
  if ((j.output_keys || []).length > 1) download.push(h("span", { class: "muted" }, ` · ${j.output_keys.length} files written`));
  show($("#downloads"), download);
}

function addTimeline(at, text) {
  if (!at) return;
  if (timeline.some((t) => t.at === at && t.text === text)) return;
  timeline.push({ at, text });
  timeline.sort((a, b) => a.at - b.at);
  show($("#timeline"), timeline.map((t) => h("li", {}, h("time", { datetime: new Date(t.at * 1000).toISOString() }, when(t.at)), " — ", t.text)));
}

function jobTimeline(j) {
  addTimeline(j.created_at, "queued");
  addTimeline(j.started_at, `started${j.worker ? ` on ${j.worker}` : ""}`);
  // playable before it completed (else it was playable from its completion, already on the timeline)
  if (j.playable_at && !(j.status === "completed" && j.playable_at >= j.finished_at)) addTimeline(j.playable_at, "playable");
  if (isTerminal(j.status)) addTimeline(j.finished_at || j.updated_at, j.status + (j.status === "failed" && j.failure_reason ? ` (${j.failure_reason})` : ""));
}

const ATTEMPT_COLUMNS = [{ label: "#" }, { label: "Worker" }, { label: "Started" }, { label: "Ended" }, { label: "Outcome" }, { label: "Reason" }, { label: "Error" }];
const PART_COLUMN = { label: "Part" };

function attemptsOf(log) {
  if (!log) return [];
  return Array.isArray(log) ? log : log.attempts || log.items || [];
}

/** A package does its work in its children: their attempts are its attempts, each named by its part. */
async function childAttempts(j) {
  const logs = await Promise.all(
    (j.children || []).map((id) =>
      optional(`/api/jobs/${encodeURIComponent(id)}/log`)
        .then((log) => ({ id, log }))
        .catch(() => ({ id, log: null })),
    ),
  );
  return logs.flatMap(({ id, log }) => attemptsOf(log).map((a) => ({ ...a, part: shortId({ id, parent_id: j.id }) })));
}

async function loadAttempts() {
  let log;
  try {
    log = await optional(`/api/jobs/${encodeURIComponent(jobId)}/log`);
  } catch (e) {
    show($("#attempts"), message(e.detail || e.message, "error"));
    return;
  }
  if (log === null) {
    show($("#attempts"), message("The attempts log is unavailable on this API (no /api/jobs/{id}/log)."));
    return;
  }
  const own = attemptsOf(log).map((a) => ({ ...a, part: "" }));
  const parts = job && (job.children || []).length ? await childAttempts(job) : [];
  const attempts = [...own, ...parts];
  if (!attempts.length) {
    const ended = job && isTerminal(job.status);
    show($("#attempts"), message(ended ? "No attempt was recorded for this job." : "No attempt has ended yet."));
    return;
  }
  own.forEach((a, i) => addTimeline(a.ended_at, `attempt ${a.attempt ?? i + 1} ${a.outcome}${a.worker ? ` on ${a.worker}` : ""}${a.reason ? ` (${a.reason})` : ""}`));
  const cols = parts.length ? [PART_COLUMN, ...ATTEMPT_COLUMNS] : ATTEMPT_COLUMNS;
  const cells = (a, i) => [String(a.attempt ?? i + 1), a.worker || "", when(a.started_at), when(a.ended_at), badge(a.outcome || ""), a.reason || "", a.error || ""];
  show(
    $("#attempts"),
    parts.length ? message(`A package runs in its parts: the attempts of its ${job.children.length} parts.`) : null,
    table(cols, attempts.map((a, i) => row(cols, parts.length ? [a.part || "package", ...cells(a, i)] : cells(a, i)))),
    attempts.map((a, i) =>
      a.log ? h("details", {}, h("summary", {}, `FFmpeg log of ${a.part ? `${a.part}, ` : ""}attempt ${a.attempt ?? i + 1}`), h("pre", { class: "log", tabindex: "0" }, a.log)) : null,
    ),
  );
}

let childrenShown = 0;

async function loadChildren(j) {
  childrenShown = (j.children || []).length;
  if (!childrenShown) return;
  $("#children-section").hidden = false;
  const children = await Promise.all(j.children.map((id) => api(`/api/jobs/${encodeURIComponent(id)}`).then((r) => r.job).catch(() => ({ id, status: "unknown", progress: 0 }))));
  const cols = [{ label: "Rendition" }, { label: "Status" }, { label: "Progress" }, { label: "PSNR / SSIM (mean)" }];
  const quality = (c) => (c.quality && c.quality.psnr && c.quality.ssim ? `${c.quality.psnr.mean.toFixed(2)} dB / ${c.quality.ssim.mean.toFixed(4)}` : "");
  show(
    $("#children"),
    table(cols, children.map((c) => row(cols, [h("a", { href: `/console/jobs/${encodeURIComponent(c.id)}`, title: c.id }, c.rendition || shortId(c)), h("span", { class: "status" }, badge(c.status)), progressBar(c.status === "completed" ? 100 : c.progress, `Progress of ${c.rendition || shortId(c)}`), quality(c)], { "data-job-id": c.id }))),
  );
}

async function fetchJob() {
  try {
    return await api(`/api/jobs/${encodeURIComponent(jobId)}`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) show($("#job"), message(e.status === 404 ? `There is no job ${jobId}.` : e.detail || e.message, "error"));
    return null;
  }
}

async function load() {
  const r = await fetchJob();
  if (r) render(r);
  return r;
}

function render(r) {
  job = r.job;
  if (job.status !== "running") live = { progress: job.progress, speed: null, eta: null };
  show($("#job"), summary(job));
  renderFailure(job);
  renderActions(job);
  renderOutput(job, r.output_url);
  jobTimeline(job);
  renderQuality(job);
  // a package's children appear once a transcoder has taken it
  if ((job.children || []).length !== childrenShown) loadChildren(job);
}

function onEvent(type, e) {
  if (e.job_id !== jobId) {
    const tr = $(`#children tr[data-job-id="${CSS.escape(e.job_id)}"]`);
    if (tr) {
      if (type === "job.progress") setProgress(tr, e.progress ?? 0);
      else if (type !== "job.queued") {
        tr.querySelector(".status").replaceChildren(badge(eventStatus(type)));
        if (type === "job.completed") setProgress(tr, 100);
      }
    }
    return;
  }
  if (type === "job.progress" && job && !isTerminal(job.status)) {
    live = { progress: e.progress ?? live.progress, speed: e.speed, eta: e.eta };
    if (job.status !== "running") {
      job.status = "running";
      $("#status").replaceChildren(badge("running"));
      renderActions(job);
      addTimeline(e.at, `running${e.worker ? ` on ${e.worker}` : ""}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ""}`);
    }
    if (e.worker) $("#worker").textContent = e.worker;
    setProgress($("#progress"), live.progress);
    $("#progress-text").textContent = progressText(job);
    return;
  }
  if (type === "job.playable" && job && !isTerminal(job.status)) {
    addTimeline(e.at, "playable");
    playable(0);
    return;
  }
  const ended = eventStatus(type);
  if (isTerminal(ended) && job && !isTerminal(job.status)) {
    announce(`Job ${ended}${e.reason ? `: ${e.reason}` : ""}`, { urgent: true });
    $("#status").replaceChildren(badge(ended));
    if (ended === "completed") setProgress($("#progress"), 100);
    settle(ended, 0);
  }
}

// The event can arrive before the catalog has recorded it: read the job again until it has its link.
async function playable(tries) {
  const r = await fetchJob();
  if (!r) return;
  if (!r.job.playable_url && !isTerminal(r.job.status) && tries < 20) {
    setTimeout(() => playable(tries + 1), 250 * (tries + 1));
    return;
  }
  render(r);
}

// The event can arrive before the catalog has recorded it: read the job again until it says so too.
async function settle(status, tries) {
  const r = await fetchJob();
  if (!r) return;
  if (r.job.status !== status && tries < 20) {
    setTimeout(() => settle(status, tries + 1), 250 * (tries + 1));
    return;
  }
  render(r);
  loadAttempts();
}

async function act(path, label, body) {
  const out = $("#action-result");
  out.textContent = `${label}…`;
  try {
    await api(path, { method: "POST", body });
    out.textContent = `${label}: done.`;
  } catch (e) {
    out.textContent = e.status === 404 && !path.endsWith("/cancel") ? `${label} is unavailable on this API.` : `${label} refused: ${e.detail || e.message}`;
    return;
  }
  shownOutput = null;
  stopPlaying();
  const r = await load();
  if (r) loadAttempts();
}

async function main() {
  $("#cancel").addEventListener("click", () => act(`/api/jobs/${encodeURIComponent(jobId)}/cancel`, "Cancel"));
  $("#retry").addEventListener("click", () => act(`/api/jobs/${encodeURIComponent(jobId)}/retry`, "Retry"));
  $("#move").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(`/api/jobs/${encodeURIComponent(jobId)}/move`, "Move", { priority: $("#move-to").value });
  });
  const r = await load();
  if (!r) return;
  // Connected: read the job again, in case it moved on between the first read and the stream's start.
  // An event published just before the stream started is not in it, and the catalog may not have
  // ingested it yet at this read: read a few more times (0.5 s to 4 s apart) until the job moves (or
  // can be played).
  const onOpen = async (tries = 0) => {
    const again = await fetchJob();
    if (again && (again.job.status !== job.status || Boolean(again.job.playable_url) !== Boolean(job.playable_url))) {
      render(again);
      loadAttempts();
    } else if (again && !isTerminal(again.job.status) && tries < 4) {
      setTimeout(() => onOpen(tries + 1), 500 * 2 ** tries);
    }
  };
  subscribe({ types: JOB_EVENTS, jobIds: [jobId, ...(job.children || [])], onOpen }, onEvent);
  loadAttempts();
}

main();
