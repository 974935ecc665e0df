// Submit a job from presets (or a stored template): the source plays in the page, and a trim's in and out
// points (a thumbnail's frame) are taken from the player's position.

import { api, optional, ApiError, keyPath } from "../api.js";
import { $, h, clearErrors, fieldError, formError } from "../dom.js";

const form = $("#new-job");
const video = $("#source-player");
const params = new URLSearchParams(location.search);
let presets = [];

function fillPresets() {
  const kind = form.kind.value;
  const fitting = presets.filter((p) => p.kinds.includes(kind));
  const select = form.preset;
  const previous = select.value;
  select.replaceChildren(...fitting.map((p) => h("option", { value: p.name, selected: p.default_for.includes(kind) }, `${p.name}${p.default_for.includes(kind) ? " (default)" : ""}`)));
  if (fitting.some((p) => p.name === previous)) select.value = previous;
  describePreset();
}

function describePreset() {
  const p = presets.find((x) => x.name === form.preset.value);
  $("#preset-help").textContent = p ? `${p.description} (${p.extension || "media"})` : "";
}

function fitKind() {
  const kind = form.kind.value;
  $("#start-label").textContent = kind === "thumbnail" ? "Frame time (s)" : "Start (s)";
  $("#set-start").textContent = kind === "thumbnail" ? "Use player position" : "Set in from player";
  $("#end-field").hidden = kind === "thumbnail";
  $("#storyboard-label").hidden = kind !== "package";
  if (kind !== "package") form.storyboard.checked = false;
  $("#encryption-label").hidden = kind !== "package";
  $("#encryption_cenc-label").hidden = kind !== "package";
  if (kind !== "package") form.encryption.checked = form.encryption_cenc.checked = false;
  fillPresets();
}

let suggestTimer = null;
function suggest() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    const prefix = form.source_key.value;
    try {
      const page = await api(`/api/assets?limit=20&prefix=${encodeURIComponent(prefix)}`);
      $("#source-suggestions").replaceChildren(...page.items.map((a) => h("option", { value: a.key })));
    } catch {
      /* suggestions are a convenience: typing a key still works */
    }
  }, 250);
}

function loadSource() {
  const key = form.source_key.value.trim();
  if (!key) return;
  const url = `/media/in/${keyPath(key)}`;
  if (video.dataset.src !== url) {
    video.dataset.src = url;
    video.src = url;
  }
}

function numberOrNull(input) {
  const v = input.value.trim();
  return v === "" ? null : Number(v);
}

/** Checks the browser can make before asking the API (which checks everything again). */
function check(body) {
  const problems = [];
  if (!body.source_key) problems.push(["source_key", "Choose the source: a key in the input bucket."]);
  for (const name of ["start", "end"]) {
    const v = body[name];
    if (v !== null && v !== undefined && (!Number.isFinite(v) || v < 0)) problems.push([name, `${name} must be a number of seconds, 0 or more.`]);
  }
  if (body.start != null && body.end != null && body.end <= body.start) problems.push(["end", "end must be after start."]);
  if (body.kind === "trim" && body.start == null && body.end == null) problems.push(["start", "A trim needs a start and/or an end: set them from the player."]);
  return problems;
}

async function submit(ev) {
  ev.preventDefault();
  clearErrors(form);
  const body = {
    kind: form.kind.value,
    source_key: form.source_key.value.trim(),
    priority: form.priority.value,
  };
  if (form.preset.value) body.preset = form.preset.value;
  if (!$("#template-field").hidden && form.template.value) body.template = form.template.value;
  const start = numberOrNull(form.start);
  const end = body.kind === "thumbnail" ? null : numberOrNull(form.end);
  if (start !== null) body.start = start;
  if (end !== null) body.end = end;
  if (form.output_key.value.trim()) body.output_key = form.output_key.value.trim();
  if (form.loudnorm.checked) body.loudnorm = true;
  if (form.storyboard.checked) body.storyboard = true;
  if (form.encryption.checked) body.encryption = form.encryption.value;
  if (form.encryption_cenc.checked) body.encryption = form.encryption_cenc.value;
  const problems = check(body);
  if (problems.length) {
    for (const [name, text] of problems) fieldError(form, name, text);
    form.querySelector(`[name="${problems[0][0]}"]`).focus();
    return;
  }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const r = await api("/api/jobs", { method: "POST", body });
    location.assign(`/console/jobs/${encodeURIComponent(r.job.id)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status !== 401) formError(form, e);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  form.kind.addEventListener("change", fitKind);
  // one encryption at most: checking one method unchecks the other
  form.encryption.addEventListener("change", () => form.encryption.checked && (form.encryption_cenc.checked = false));
  form.encryption_cenc.addEventListener("change", () => form.encryption_cenc.checked && (form.encryption.checked = false));
  form.preset.addEventListener("change", describePreset);
  form.source_key.addEventListener("input", suggest);
  form.source_key.addEventListener("change", loadSource);
  $("#set-start").addEventListener("click", () => {
    form.start.value = video.currentTime.toFixed(3);
    form.start.focus();
  });
  $("#set-end").addEventListener("click", () => {
    form.end.value = video.currentTime.toFixed(3);
    form.end.focus();
  });
  form.addEventListener("submit", submit);
  if (params.get("kind")) form.kind.value = params.get("kind");
  if (params.get("source")) {
    form.source_key.value = params.get("source");
    loadSource();
  }
  try {
    presets = await api("/api/presets");
  } catch (e) {
    formError(form, e);
  }
  fitKind();
  const templates = await optional("/api/templates").catch(() => null);
  const list = Array.isArray(templates) ? templates : templates?.items || [];
  if (list.length) {
    $("#template-field").hidden = false;
    form.template.append(...list.map((t) => h("option", { value: t.name }, t.name)));
  }
}

main();
