// Small DOM helpers: elements are built with h() and text is always set as text, never as
// HTML, so names and emails from the API cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";
let lastId = 0;

/** A unique element id, for label/for and aria-describedby pairs. */
export function uid(prefix = "c") {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked" || key === "selected") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h("button", {type: "button", onClick}, "Save") */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Like Node.append, but arrays are flattened and null, undefined and false are skipped. */
export function add(el, ...children) {
  append(el, children);
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled control: the label is always visible and tied to the control by id. */
export function field(labelText, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const parts = [h("label", { for: id, text: labelText }), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId, text: hint }));
  }
  return h("div", { class: "field" }, parts);
}

export function select(options, value, attrs = {}) {
  const el = h("select", attrs);
  for (const option of options) {
    const [optionValue, label] = Array.isArray(option) ? option : [option, option];
    el.append(h("option", { value: optionValue, selected: optionValue === value, text: label }));
  }
  return el;
}

export function button(text, onClick, attrs = {}) {
  return h("button", { type: "button", onClick, ...attrs }, text);
}

const counts = new Intl.NumberFormat();
export function formatCount(n) {
  return n === null || n === undefined ? "–" : counts.format(n);
}

/** "1 member", "2 members". */
export function plural(n, word) {
  return `${formatCount(n)} ${word}${n === 1 ? "" : "s"}`;
}

const times = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : times.format(date);
}

/** A <time> element: the local time as text, the exact instant in its title. */
export function timeEl(iso) {
  return h("time", { datetime: iso ?? undefined, title: iso ?? undefined }, formatTime(iso));
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** "12 seconds ago", "3 minutes ago": how old an instant is, for freshness. */
export function ago(iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  if (Number.isNaN(seconds)) return "";
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(seconds, "second");
}

export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

/** Announce a message to screen readers through the page's polite live region. */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = message;
}
