// Assets: searched by key prefix, a page at a time (the catalog paginates: 10,000 assets stay fast);
// new assets announced as the event stream registers them.

import { api, ApiError } from "../api.js";
import { $, h, show, message, table, row, pager, fieldError, clearErrors } from "../dom.js";
import { bytes, duration, ago } from "../format.js";
import { subscribe } from "../events.js";

const form = $("#search");
const params = new URLSearchParams(location.search);
const prefix = params.get("prefix") || "";
const name = params.get("name") || "";
const limit = [25, 50, 100].includes(Number(params.get("limit"))) ? Number(params.get("limit")) : 50;
const offset = Math.max(0, Number(params.get("offset")) || 0);
const COLUMNS = [{ label: "Key", cls: "key" }, { label: "Type" }, { label: "Duration", num: true }, { label: "Picture" }, { label: "Codecs" }, { label: "Size", num: true }, { label: "Probe" }, { label: "Registered" }];

function assetRow(a) {
  const i = a.info || {};
  return row(COLUMNS, [
    h("a", { href: `/console/assets/${a.id}` }, a.key),
    a.media_type || "",
    duration(i.duration),
    i.width ? `${i.width}×${i.height}${i.fps ? ` @ ${Math.round(i.fps * 100) / 100}` : ""}` : "",
    [i.video_codec, i.audio_codec].filter(Boolean).join(" + "),
    bytes(a.size),
    a.probe_error ? h("span", { class: "error", title: a.probe_error }, a.probe_status) : a.probe_status,
    ago(a.created_at),
  ]);
}

async function load() {
  const q = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (prefix) q.set("prefix", prefix);
  if (name) q.set("name", name);
  let page;
  try {
    page = await api(`/api/assets?${q}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) {
      fieldError(form, "prefix", e.detail);
      show($("#assets"), message("Fix the search above.", "muted"));
    } else if (!(e instanceof ApiError && e.status === 401)) show($("#assets"), message(e.detail || e.message, "error"));
    return;
  }
  if (!page.items.length) show($("#assets"), message(prefix || name ? "No asset matches this search." : "No assets yet: upload some or scan the bucket."));
  else show($("#assets"), table(COLUMNS, page.items.map(assetRow), { caption: `Assets ${offset + 1}–${offset + page.items.length} of ${page.total}` }));
  pager($("#pager"), page, (next) => go({ offset: String(next) }));
}

function go(changes) {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === "" || v === null) p.delete(k);
    else p.set(k, v);
  }
  location.search = p.toString();
}

function main() {
  form.prefix.value = prefix;
  form.name.value = name;
  form.limit.value = String(limit);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors(form);
    const value = form.prefix.value;
    if (value.split("/").includes("..")) {
      fieldError(form, "prefix", "A prefix cannot contain '..'.");
      form.prefix.focus();
      return;
    }
    go({ prefix: value, name: form.name.value, limit: form.limit.value, offset: "" });
  });
  let fresh = 0;
  subscribe({ types: ["asset.registered"] }, (_type, e) => {
    if (prefix && !String(e.key || "").startsWith(prefix)) return;
    if (name && !String(e.key || "").toLowerCase().includes(name.toLowerCase())) return;
    fresh += 1;
    const note = $("#new-assets");
    note.hidden = false;
    note.replaceChildren(`${fresh} new asset(s) registered. `, h("a", { href: location.href }, "Show them"));
  });
  load();
}

main();
