// Templates, rules, webhooks and dead letters, over their APIs: each item listed with its definition as
// JSON, created or replaced from a form (errors shown next to the field that caused them), deleted;
// rules tried with a dry run; dead letters replayed.

import { api, optional, ApiError } from "../api.js";
import { $, h, show, message, table, row, clearErrors, fieldError, announce } from "../dom.js";
import { when } from "../format.js";

const box = $("#admin");
const base = box.dataset.api;
const section = box.dataset.section;

const enc = encodeURIComponent;
const compact = (value) => {
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 197)}…` : text;
};

// What differs between the sections: how an item is named and shown, and how it is written.
const SECTIONS = {
  templates: {
    singular: "template",
    idLabel: "Name",
    idHelp: "Letters, digits, '-', '_' and '.'; the template's name in jobs and rules.",
    idRequired: true,
    id: (t) => t.name,
    body: (t) => t.template,
    extra: (t) => `revision ${t.revision}`,
    example: { kind: "transcode", preset: "h264-720p", output_key: "web/{path}.mp4", priority: "normal" },
    save: (id, body) => api(`${base}/${enc(id)}`, { method: "PUT", body }),
  },
  rules: {
    singular: "rule",
    idLabel: "Rule id (optional)",
    idHelp: "Empty: a new rule with a generated id; an id: that rule is created or replaced.",
    idRequired: false,
    id: (r) => r.id,
    body: (r) => r.rule,
    extra: (r) => `revision ${r.revision}${r.rule.enabled === false ? ", disabled" : ""}`,
    example: { template: "web-720p", prefix: "incoming/", conditions: [{ field: "height", op: ">=", value: 720 }] },
    save: (id, body) => (id ? api(`${base}/${enc(id)}`, { method: "PUT", body }) : api(base, { method: "POST", body })),
    dryRun: true,
  },
  webhooks: {
    singular: "webhook",
    idLabel: "Webhook id (to change one)",
    idHelp: "Empty: a new subscription (its signing secret is shown once); an id: those fields of it change.",
    idRequired: false,
    id: (w) => w.id,
    body: ({ id, created_at, secret_rotated_at, ...rest }) => rest,
    extra: (w) => `${w.active ? "active" : "paused"}, since ${when(w.created_at)}`,
    example: { url: "https://example.com/mpr-hook", types: ["job.completed", "job.failed"], key_prefix: "", description: "" },
    save: (id, body) => (id ? api(`${base}/${enc(id)}`, { method: "PATCH", body }) : api(base, { method: "POST", body })),
  },
  "dead-letters": { singular: "dead letter", id: (d) => d.seq, readOnly: true },
};
const S = SECTIONS[section];

function status(text) {
  const el = $("#admin-status");
  el.textContent = text;
  el.hidden = !text;
}

// --- dead letters -----------------------------------------------------------------------------------
const DL_COLUMNS = [{ label: "Seq" }, { label: "Given up by" }, { label: "Subject" }, { label: "Error" }, { label: "Job" }, { label: "When" }, { label: "" }];

function deadLetterRow(d) {
  const action = d.replayed
    ? h("span", { class: "muted" }, `replayed ${when(d.replayed.at)}`)
    : d.replayable
      ? h("button", { type: "button", class: "small", onclick: () => replay(d.seq), "aria-label": `Replay dead letter ${d.seq}` }, "Replay")
      : h("span", { class: "muted" }, "not a job request");
  return row(DL_COLUMNS, [
    String(d.seq),
    d.dlq_subject || "",
    d.subject || "",
    h("span", {}, d.error || "", h("details", {}, h("summary", {}, "payload"), h("pre", { class: "log", tabindex: "0" }, d.payload || ""))),
    d.job_id ? h("a", { href: `/console/jobs/${enc(d.job_id)}` }, d.job_id.slice(0, 12)) : "",
    when(d.at),
    action,
  ]);
}

async function replay(seq) {
  try {
    const r = await api(`${base}/${seq}/replay`, { method: "POST" });
    announce(`Dead letter ${seq} replayed.`, { urgent: true });
    await load();
    status(`Dead letter ${seq} published again${r?.job_id ? ` as job ${r.job_id}` : ""}.`);
  } catch (e) {
    status(`Replay refused: ${e.detail || e.message}`);
  }
}

// --- templates, rules, webhooks ---------------------------------------------------------------------
const COLUMNS = [{ label: "Name" }, { label: "Definition", cls: "key" }, { label: "State" }, { label: "" }];

function itemRow(item) {
  const id = String(S.id(item));
  return row(COLUMNS, [
    h("strong", {}, id),
    h("code", {}, compact(S.body(item))),
    S.extra(item),
    h(
      "span",
      { class: "actions" },
      h("button", { type: "button", class: "small", onclick: () => edit(item), "aria-label": `Edit ${S.singular} ${id}` }, "Edit"),
      h("button", { type: "button", class: "small danger", onclick: () => remove(id), "aria-label": `Delete ${S.singular} ${id}` }, "Delete"),
    ),
  ]);
}

async function remove(id) {
  if (!confirm(`Delete ${S.singular} ${id}?`)) return;
  try {
    await api(`${base}/${enc(id)}`, { method: "DELETE" });
    announce(`${S.singular} ${id} deleted.`, { urgent: true });
    await load();
  } catch (e) {
    status(`Delete refused: ${e.detail || e.message}`);
  }
}

function edit(item) {
  const form = $("#admin-form");
  form.item_id.value = S.id(item);
  form.definition.value = JSON.stringify(S.body(item), null, 2);
  form.definition.focus();
}

function editor() {
  const form = h(
    "form",
    { id: "admin-form", class: "card form", novalidate: true },
    h("h2", {}, `Create or change a ${S.singular}`),
    h("div", { class: "field" },
      h("label", { for: "item_id" }, S.idLabel),
      h("input", { id: "item_id", name: "item_id", autocomplete: "off", spellcheck: "false", "aria-describedby": "item_id-help item_id-error" }),
      h("p", { id: "item_id-help", class: "help" }, S.idHelp),
      h("p", { id: "item_id-error", class: "error", hidden: true })),
    h("div", { class: "field" },
      h("label", { for: "definition" }, "Definition (JSON)"),
      h("textarea", { id: "definition", name: "definition", spellcheck: "false", "aria-describedby": "definition-help definition-error" }),
      h("p", { id: "definition-help", class: "help" }, `For example: ${JSON.stringify(S.example)}`),
      h("p", { id: "definition-error", class: "error", hidden: true })),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Save"),
      S.dryRun ? h("button", { type: "button", onclick: dryRun }, "Dry run") : null),
    h("pre", { id: "admin-result", class: "log", hidden: true, tabindex: "0" }),
  );
  form.addEventListener("submit", save);
  return form;
}

function parsed(form) {
  clearErrors(form);
  if (S.idRequired && !form.item_id.value.trim()) {
    fieldError(form, "item_id", `A ${S.singular} needs a name.`);
    form.item_id.focus();
    return null;
  }
  try {
    const value = JSON.parse(form.definition.value);
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("a JSON object is needed: { … }");
    return value;
  } catch (e) {
    fieldError(form, "definition", `Not valid JSON: ${e.message}`);
    form.definition.focus();
    return null;
  }
}

function showResult(value) {
  const out = $("#admin-result");
  out.textContent = value ? JSON.stringify(value, null, 2) : "";
  out.hidden = !value;
}

function refused(form, e) {
  if (!(e instanceof ApiError) || e.status === 401) return;
  const onId = e.status === 404 || /\b(name|id)\b/.test(String(e.detail).split(":")[0]);
  const name = onId && form.item_id.value ? "item_id" : "definition";
  fieldError(form, name, e.detail || e.message);
  form.querySelector(`[name="${name}"]`).focus();
}

async function save(ev) {
  ev.preventDefault();
  const form = ev.target;
  const body = parsed(form);
  if (!body) return;
  let answer;
  try {
    answer = await S.save(form.item_id.value.trim(), body);
  } catch (e) {
    refused(form, e);
    return;
  }
  announce(`${S.singular} saved.`, { urgent: true });
  // a new webhook's signing secret is shown once: keep it on screen
  showResult(answer?.secret ? { secret: answer.secret, note: "Shown once: give it to the receiver now." } : null);
  await load();
}

async function dryRun() {
  const form = $("#admin-form");
  const body = parsed(form);
  if (!body) return;
  try {
    showResult(await api(`${base}/dry-run`, { method: "POST", body }));
  } catch (e) {
    showResult(null);
    refused(form, e);
  }
}

// --- the page -----------------------------------------------------------------------------------------
async function load() {
  let answer;
  try {
    answer = await optional(base);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) show(box, message(e.detail || e.message, "error"));
    return;
  }
  if (answer === null) {
    show(box, message(`${section === "dead-letters" ? "Dead letters are" : `${S.singular[0].toUpperCase()}${S.singular.slice(1)}s are`} unavailable on this API (no ${base}).`, "notice"));
    return;
  }
  const items = Array.isArray(answer) ? answer : answer.items || [];
  const name = section.replace("-", " ");
  const list = items.length
    ? S.readOnly
      ? table(DL_COLUMNS, items.map(deadLetterRow), { caption: `${items.length} ${name}, newest first` })
      : table(COLUMNS, items.map(itemRow), { caption: `${items.length} ${name}` })
    : message(`No ${name} yet.`);
  show(box, $("#admin-status") || h("p", { id: "admin-status", class: "notice", role: "status", hidden: true }), list, S.readOnly ? null : $("#admin-form") || editor());
}

load();
