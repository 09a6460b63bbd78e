// Pieces every view uses: headings that take focus, notices, error lists, pagers.

import { ApiError, budget, pollSlowdown } from "./api.js";
import { button, h, plural } from "./dom.js";

/** The view's heading; it takes focus on navigation so keyboard and screen reader users
 * start at the top of the new content. */
export function heading(text, ...extra) {
  return h("h1", { tabindex: "-1" }, text, ...extra);
}

export function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : undefined }, text);
}

export function unavailable(what) {
  return notice(`${what} is not available on this service version.`, "muted");
}

/** An error as a message; a 401 sends the user back to the key form. */
export function errorNotice(error) {
  if (error instanceof ApiError && error.status === 401) {
    document.dispatchEvent(new CustomEvent("console:unauthorized"));
  }
  if (error instanceof ApiError && error.status === 429) {
    const seconds = Math.max(1, Math.ceil((budget.retryAt - Date.now()) / 1000));
    return notice(`Too many requests with this key (the API allows ${budget.limit ?? "a few"
    } a minute). Try again in ${seconds} s; the pages refresh more slowly meanwhile.`, "warn");
  }
  if (error instanceof ApiError) {
    const items = error.errors.map((e) => h("li", {}, e.loc ? `${e.loc}: ${e.msg}` : e.msg));
    return h("div", { class: "notice error", role: "alert" },
      h("p", {}, `The API answered ${error.status || "nothing"}:`), h("ul", {}, items));
  }
  return notice(String(error?.message ?? error), "error");
}

/** Previous/next buttons and where we are; `go(page)` loads a page. */
export function pager(label, go) {
  const previous = button("Previous", () => go(-1));
  const next = button("Next", () => go(1));
  const where = h("span", { class: "pager-where", "aria-live": "polite" });
  const nav = h("nav", { class: "pager", "aria-label": label }, previous, where, next);
  nav.update = ({ page, total_pages: pages, total_count: total }, noun) => {
    previous.disabled = page <= 1;
    next.disabled = page >= pages;
    where.textContent = `Page ${pages ? page : 0} of ${pages} · ${plural(total, noun)}`;
  };
  return nav;
}

export function statusBadge(status) {
  return h("span", { class: `status status-${String(status).toLowerCase()}`, text: status });
}

export function swatch(color) {
  const el = h("span", { class: "swatch", "aria-hidden": "true" });
  if (color) el.style.backgroundColor = color;
  return el;
}

/** Calls `tick` again after each run, sooner while `busy()`, later when the key's request
 * budget runs low (and not before a 429's Retry-After); stops when the view goes. Paused while
 * the tab is hidden. */
export function poller(tick, { fast = 2000, slow = 15000, busy = () => false } = {}) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await tick();
      } catch {
        // the next tick retries; the view shows errors itself
      }
    }
    if (!stopped) timer = setTimeout(run, delay());
  };
  const delay = () => Math.max((busy() ? fast : slow) * pollSlowdown(),
    budget.retryAt - Date.now());
  timer = setTimeout(run, delay());
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
