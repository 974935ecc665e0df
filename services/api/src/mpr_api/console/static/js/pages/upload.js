// Upload: files dropped (or chosen) go straight to the input bucket through presigned URLs, one PUT or a
// multipart upload of several parts at once, each with its progress bar; each is registered as soon as
// it is complete.

import { api, ApiError } from "../api.js";
import { $, h, announce, fieldError, clearErrors } from "../dom.js";
import { bytes } from "../format.js";

const FILES_AT_ONCE = 2;
const PARTS_AT_ONCE = 3;
const URLS_PER_CALL = 100;
const form = $("#upload-form");
const list = $("#uploads");
const queue = [];
let active = 0;
let done = 0;
let failed = 0;

/** The folder as a key prefix: no leading slash, one trailing slash (or nothing). */
export function folderPrefix(value) {
  const v = value.trim().replace(/^\/+/, "").replace(/\/{2,}/g, "/");
  return v && !v.endsWith("/") ? `${v}/` : v;
}

function summary() {
  const total = list.children.length;
  $("#upload-summary").textContent = `${total} file(s): ${done} registered, ${failed} failed, ${total - done - failed} in progress.`;
}

function put(url, body, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    if (contentType) xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded));
    xhr.addEventListener("load", () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`storage answered ${xhr.status}`))));
    xhr.addEventListener("error", () => reject(new Error("the connection to storage failed")));
    xhr.addEventListener("abort", () => reject(new Error("aborted")));
    xhr.send(body);
  });
}

function item(file, key) {
  const bar = h("progress", { max: String(file.size || 1), value: "0", "aria-label": `Upload of ${key}` });
  const status = h("span", { class: "state" }, "waiting");
  const li = h("li", { "data-key": key }, h("div", { class: "name" }, key), h("div", { class: "progress" }, bar, h("span", { class: "muted" }, bytes(file.size))), status);
  list.append(li);
  summary();
  return {
    li,
    progress(loaded) {
      bar.value = Math.min(loaded, file.size);
    },
    state(text, cls = "") {
      status.className = `state ${cls}`;
      status.replaceChildren(...(Array.isArray(text) ? text : [text]));
    },
  };
}

async function sendParts(file, target, row) {
  const loaded = new Map();
  const report = () => row.progress([...loaded.values()].reduce((a, b) => a + b, 0));
  const numbers = Array.from({ length: target.parts }, (_, i) => i + 1);
  for (let i = 0; i < numbers.length; i += URLS_PER_CALL) {
    const batch = numbers.slice(i, i + URLS_PER_CALL);
    const { parts } = await api("/api/uploads/parts", { method: "POST", body: { key: target.key, size: file.size, upload_id: target.upload_id, numbers: batch } });
    const pending = [...parts];
    const worker = async () => {
      while (pending.length) {
        const part = pending.shift();
        const start = (part.number - 1) * target.part_size;
        await put(part.url, file.slice(start, start + part.size), null, (n) => {
          loaded.set(part.number, n);
          report();
        });
        loaded.set(part.number, part.size);
        report();
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARTS_AT_ONCE, pending.length) }, worker));
  }
}

async function upload(file, key, row) {
  row.state("starting…");
  const target = await api("/api/uploads", { method: "POST", body: { key, size: file.size } });
  row.state(target.parts ? `uploading in ${target.parts} parts…` : "uploading…");
  try {
    if (target.parts) await sendParts(file, target, row);
    else await put(target.url, file, target.content_type, (n) => row.progress(n));
  } catch (e) {
    if (target.upload_id) api("/api/uploads/abort", { method: "POST", body: { key, upload_id: target.upload_id } }).catch(() => {});
    throw e;
  }
  row.progress(file.size);
  row.state("registering…");
  const body = { key, size: file.size };
  if (target.upload_id) body.upload_id = target.upload_id;
  return api("/api/uploads/complete", { method: "POST", body });
}

async function next() {
  while (active < FILES_AT_ONCE && queue.length) {
    const { file, key, row } = queue.shift();
    active += 1;
    upload(file, key, row)
      .then((result) => {
        if (result.asset) {
          done += 1;
          row.state(["registered: ", h("a", { href: `/console/assets/${result.asset.id}` }, "open the asset")], "ok");
          row.li.dataset.state = "registered";
        } else {
          failed += 1;
          row.state(result.error || "uploaded, but the scan did not register it (is it a media file?)", "error");
          row.li.dataset.state = "failed";
        }
      })
      .catch((e) => {
        failed += 1;
        row.state(e instanceof ApiError ? e.detail : e.message, "error");
        row.li.dataset.state = "failed";
      })
      .finally(() => {
        active -= 1;
        summary();
        if (!active && !queue.length) announce(`Uploads finished: ${done} registered, ${failed} failed.`, { urgent: true });
        next();
      });
  }
}

function add(files) {
  clearErrors(form);
  const prefix = folderPrefix(form.folder.value);
  if (prefix.split("/").some((part) => part === "..")) {
    fieldError(form, "folder", "A folder cannot contain '..'.");
    form.folder.focus();
    return;
  }
  for (const file of files) {
    const key = prefix + file.name;
    queue.push({ file, key, row: item(file, key) });
  }
  announce(`${files.length} file(s) added to the uploads.`, { urgent: true });
  next();
}

function main() {
  const zone = $("#dropzone");
  const input = $("#files");
  input.addEventListener("change", () => {
    add([...input.files]);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) add(files);
  });
  form.addEventListener("submit", (e) => e.preventDefault());
}

main();
