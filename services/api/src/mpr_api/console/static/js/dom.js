// Small DOM helpers: build elements, show errors next to fields, announce to screen readers.

/** h("a", {href: "/x", class: "y"}, "text", child…): an element; null/false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** Replace what ``el`` shows. */
export function show(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  el.removeAttribute("aria-busy");
}

export function message(text, cls = "muted") {
  return h("p", { class: cls }, text);
}

export function fieldError(form, name, text) {
  const input = form.querySelector(`[name="${name}"]`);
  const box = form.querySelector(`#${name}-error`);
  if (!input || !box) return false;
  box.textContent = text;
  box.hidden = false;
  input.setAttribute("aria-invalid", "true");
  return true;
}

export function clearErrors(form) {
  for (const box of form.querySelectorAll(".error")) {
    box.hidden = true;
    box.textContent = "";
  }
  for (const input of form.querySelectorAll('[aria-invalid="true"]')) input.removeAttribute("aria-invalid");
}

/** Show ``error`` next to its field (or at the top of the form) and move the focus there. */
export function formError(form, error, topId = "form-error") {
  const field = error.field;
  if (field && fieldError(form, field, error.detail || error.message)) {
    form.querySelector(`[name="${field}"]`)?.focus();
    return;
  }
  const top = form.querySelector(`#${topId}`);
  if (top) {
    top.textContent = error.detail || error.message;
    top.hidden = false;
    top.focus?.();
  }
}

let announceTimer = null;
/** Say ``text`` through the polite live region (throttled: progress must not flood a screen reader). */
export function announce(text, { urgent = false } = {}) {
  const region = document.getElementById("announcer");
  if (!region) return;
  if (announceTimer && !urgent) return;
  region.textContent = text;
  announceTimer = setTimeout(() => (announceTimer = null), urgent ? 0 : 5000);
}

export function table(columns, rows, { caption, stack = true } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: stack ? "stack" : "" },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : "" }, c.label)))),
      h("tbody", {}, rows),
    ),
  );
}

/** A row of cells, each labelled with its column (read on a phone's width, where the header is hidden). */
export function row(columns, cells, attrs = {}) {
  return h(
    "tr",
    attrs,
    cells.map((c, i) =>
      h("td", { "data-label": columns[i].label, class: [columns[i].num ? "num" : "", columns[i].cls || ""].join(" ").trim() || null }, c),
    ),
  );
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

export function progressBar(value, label) {
  const bar = h("progress", { max: "100", value: String(value ?? 0), "aria-label": label });
  return h("div", { class: "progress" }, bar, h("span", {}, `${Math.floor(value ?? 0)}%`));
}

export function setProgress(container, value) {
  const bar = container.querySelector("progress");
  const text = container.querySelector(".progress span");
  if (bar) bar.value = value;
  if (text) text.textContent = `${Math.floor(value)}%`;
}

/** Pages: « previous, "page n of m", next » as links that keep the other query parameters. */
export function pager(nav, { total, limit, offset }, onGo) {
  const pages = Math.max(1, Math.ceil(total / limit));
  const page = Math.floor(offset / limit) + 1;
  const prev = h("button", { type: "button", disabled: offset <= 0, onclick: () => onGo(Math.max(0, offset - limit)) }, "Previous");
  const next = h("button", { type: "button", disabled: offset + limit >= total, onclick: () => onGo(offset + limit) }, "Next");
  show(nav, prev, h("span", { "aria-live": "polite" }, `Page ${page} of ${pages} (${total} in all)`), next);
}
