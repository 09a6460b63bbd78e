// One segment: what it is (status, counts, freshness), its rules as a readable tree, its
// count history, its latest membership changes (followed live), its members (paged), and
// the way into explain.

import { ApiError, del, get, offers, post, query } from "./api.js";
import { historyChart } from "./chart.js";
import * as directory from "./directory.js";
import { add, ago, announce, button, debounce, field, formatCount, h, plural, replace, timeEl } from "./dom.js";
import { contactForm } from "./explain.js";
import { renderTree } from "./tree.js";
import { errorNotice, heading, pager, poller, statusBadge, swatch, unavailable } from "./ui.js";

const BUILDING = new Set(["PENDING", "RUNNING"]);
const HISTORY_DAYS = 30;
const CHANGES_SHOWN = 20;
const CHANGES_PAGE = 1000;
const CHANGES_PAGES_PER_TICK = 10;

function summary(segment, listNames) {
  const rows = [
    ["Status", statusBadge(segment.status)],
    ["Contacts", formatCount(segment.total_count)],
    ["Fresh as of", !("fresh_as_of" in segment) ? "not reported" : segment.fresh_as_of
      ? [timeEl(segment.fresh_as_of), ` (${ago(segment.fresh_as_of)})`] : "not yet known"],
    ["Last built", "last_built_at" in segment ? timeEl(segment.last_built_at) : "not reported"],
    ["Timezone", segment.timezone ?? "UTC"],
    ["Lists", segment.contact_list_ids.map((id) => listNames.get(id) ?? id).join(", ")],
    ["Created", timeEl(segment.created_at)],
    ["Updated", timeEl(segment.updated_at)],
  ];
  if (segment.error_reason) rows.splice(1, 0, ["Why it failed", segment.error_reason]);
  return rows.flatMap(([term, detail]) => [h("dt", {}, term), h("dd", {}, detail)]);
}

function membersSection(segmentId) {
  const state = { page: 1, search: "" };
  const search = h("input", { type: "search", autocomplete: "off" });
  const tbody = h("tbody");
  const status = h("div");
  const pages = pager("Member pages", (step) => {
    state.page += step;
    load();
  });
  async function load() {
    try {
      const data = await get(`/api/v2/segments/${segmentId}/contacts/${query({
        page: state.page, page_size: 25, search: state.search })}`);
      replace(tbody, data.items.map((c) => h("tr", {},
        h("th", { scope: "row", dataset: { label: "Email" } }, c.email),
        h("td", { dataset: { label: "Name" } }, c.name ?? ""),
        h("td", { dataset: { label: "Status" } }, c.status),
        h("td", { dataset: { label: "Added" } }, timeEl(c.added_at)),
        h("td", { dataset: { label: "Why" } }, h("a", {
          href: `#/segments/${segmentId}/explain/${c.id}`, "aria-label": `Explain ${c.email}`,
        }, "Explain")))));
      pages.update(data.pagination, "member");
      replace(status, data.items.length ? null
        : h("p", { class: "muted" }, "No members (a segment shows members once DONE)."));
    } catch (error) {
      replace(status, errorNotice(error));
    }
  }
  search.addEventListener("input", debounce(() => {
    state.search = search.value.trim();
    state.page = 1;
    load();
  }, 250));
  const section = h("section", { "aria-labelledby": "members-title" },
    h("h2", { id: "members-title" }, "Members"),
    h("div", { class: "toolbar", role: "search" }, field("Search email or name", search)),
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Members"),
      h("thead", {}, h("tr", {}, ["Email", "Name", "Status", "Added", "Why"].map((c) =>
        h("th", { scope: "col", text: c })))),
      tbody)),
    status, pages);
  return { section, load };
}

async function historySection(segmentId) {
  const body = h("div");
  const section = h("section", { "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, `Count, last ${HISTORY_DAYS} days`), body);
  if (!(await offers("history"))) {
    add(body, unavailable("The count history"));
    return { section, load: async () => {} };
  }
  async function load() {
    const until = new Date();
    const since = new Date(until.getTime() - HISTORY_DAYS * 86400_000);
    try {
      const data = await get(`/api/v2/segments/${segmentId}/history/${query({
        since: since.toISOString(), until: until.toISOString() })}`);
      replace(body, historyChart(data.points, { since, until, label: "Contacts over time" }));
    } catch (error) {
      replace(body, errorNotice(error));
    }
  }
  return { section, load };
}

// A 410 names the oldest seq still kept in a header (and in its message).
function oldestKept(error) {
  const header = error.headers.get("Segments-Oldest-Seq");
  const numbers = header ? [header] : error.errors.map((e) => e.msg).join(" ").match(/\d+/g);
  return numbers ? Number(numbers.at(-1)) : null;
}

function changeRow(item, segmentId) {
  if (item.change === "initial") {
    return h("tr", {}, h("td", { dataset: { label: "Change" } }, "first build"),
      h("td", { dataset: { label: "Contact" } }, plural(item.total_count, "member")),
      h("td", { dataset: { label: "Cause" } }, "build"),
      h("td", { dataset: { label: "When" } }, timeEl(item.at)));
  }
  return h("tr", {},
    h("td", { dataset: { label: "Change" } }, h("span", { class: `change ${item.change}` },
      item.change)),
    h("td", { dataset: { label: "Contact" } }, h("a", {
      href: `#/segments/${segmentId}/explain/${item.contact_id}` }, item.contact_id)),
    h("td", { dataset: { label: "Cause" } }, item.cause),
    h("td", { dataset: { label: "When" } }, timeEl(item.at)));
}

async function changesSection(segmentId) {
  const body = h("div");
  const section = h("section", { "aria-labelledby": "changes-title" },
    h("h2", { id: "changes-title" }, "Latest changes"), body);
  if (!(await offers("changes"))) {
    add(body, unavailable("The membership changes feed"));
    return { section, load: async () => {} };
  }
  let after = 0;
  let latest = [];
  const tbody = h("tbody");
  const empty = h("p", { class: "muted" }, "No membership changes recorded yet.");
  replace(body, h("p", { class: "muted small" },
    "Followed live: contacts entering and leaving as the data changes."),
  h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden" }, "Latest membership changes, newest first"),
    h("thead", {}, h("tr", {}, ["Change", "Contact", "Cause", "When"].map((c) =>
      h("th", { scope: "col", text: c })))),
    tbody)), empty);
  async function load() {
    // The feed is read forward from a cursor; the newest items are the tail.
    for (let i = 0; i < CHANGES_PAGES_PER_TICK; i += 1) {
      let data;
      try {
        data = await get(`/api/v2/segments/${segmentId}/changes/${query({ after,
          limit: CHANGES_PAGE })}`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 410 && oldestKept(error) !== null) {
          after = Math.max(0, oldestKept(error) - 1);
          continue;
        }
        replace(body, errorNotice(error));
        return;
      }
      latest = [...latest, ...data.items].slice(-CHANGES_SHOWN);
      after = data.next_after;
      if (data.items.length < CHANGES_PAGE) break;
    }
    replace(tbody, [...latest].reverse().map((item) => changeRow(item, segmentId)));
    empty.hidden = latest.length > 0;
  }
  return { section, load };
}

export async function segmentView(root, route) {
  const [segmentId] = route.params;
  let [segment, lists, fieldList, others] = await Promise.all([
    get(`/api/v2/segments/${segmentId}/`), directory.lists(), directory.fields(),
    directory.segments()]);
  const names = directory.names(lists, others);
  const listNames = directory.names(lists);
  document.title = `${segment.name} · Segments console`;

  const facts = h("dl", { class: "facts" }, summary(segment, listNames));
  const problem = h("div");
  const members = membersSection(segmentId);
  const history = await historySection(segmentId);
  const changes = await changesSection(segmentId);
  const rebuild = button("Rebuild now", async () => {
    try {
      segment = await post(`/api/v2/segments/${segmentId}/rebuild/`);
      replace(facts, summary(segment, listNames));
      announce("Rebuild requested");
    } catch (error) {
      replace(problem, errorNotice(error));
    }
  });
  const remove = button("Delete", async () => {
    if (!window.confirm(`Delete the segment “${segment.name}”? This cannot be undone.`)) return;
    try {
      await del(`/api/v2/segments/${segmentId}/`);
      announce(`Deleted ${segment.name}`);
      location.hash = "#/";
    } catch (error) {
      replace(problem, errorNotice(error));
    }
  }, { class: "danger" });

  add(root, 
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Segments"), " › ", segment.name),
    h("div", { class: "title-row" }, heading(swatch(segment.color), segment.name),
      h("div", { class: "actions" },
        h("a", { class: "button primary", href: `#/segments/${segmentId}/edit` }, "Edit"),
        rebuild, remove)),
    segment.description ? h("p", {}, segment.description) : null,
    problem,
    h("div", { class: "columns" },
      h("section", { "aria-labelledby": "facts-title" },
        h("h2", { id: "facts-title" }, "Status"), facts),
      h("section", { "aria-labelledby": "explain-title" },
        h("h2", { id: "explain-title" }, "Why is a contact in it, or not?"),
        contactForm(segmentId, "", "Explain a contact"))),
    h("section", { "aria-labelledby": "rules-title" },
      h("h2", { id: "rules-title" }, "Rules"),
      renderTree(segment.rules_json, { names, types: new Map(fieldList), label: "Rules" })),
    history.section, changes.section, members.section);

  await Promise.all([members.load(), history.load(), changes.load()]);
  let stamp = `${segment.status} ${segment.fresh_as_of} ${segment.total_count}`;
  const stopSegment = poller(async () => {
    try {
      segment = await get(`/api/v2/segments/${segmentId}/`);
    } catch (error) {
      replace(problem, errorNotice(error));
      return;
    }
    replace(problem);
    replace(facts, summary(segment, listNames));
    const next = `${segment.status} ${segment.fresh_as_of} ${segment.total_count}`;
    if (next !== stamp) {
      if (segment.status === "DONE" && !stamp.startsWith("DONE")) {
        announce(`${segment.name} is DONE: ${formatCount(segment.total_count)} contacts`);
      }
      stamp = next;
      await Promise.all([members.load(), history.load()]);
    }
  }, { fast: 2000, slow: 10000, busy: () => BUILDING.has(segment.status) });
  const stopChanges = poller(changes.load, { slow: 10000 });
  const redraw = debounce(history.load, 300); // the chart is drawn for the window's width
  window.addEventListener("resize", redraw);
  return () => {
    stopSegment();
    stopChanges();
    redraw.cancel();
    window.removeEventListener("resize", redraw);
  };
}
