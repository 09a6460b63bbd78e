// The segment list: search, ordering and pages as GET /api/v2/segments/ offers them, with
// status and counts kept live by polling (fast while a build runs).

import { get, query } from "./api.js";
import { add, announce, debounce, field, formatCount, h, replace, select, timeEl } from "./dom.js";
import { errorNotice, heading, pager, poller, statusBadge, swatch } from "./ui.js";

const ORDER_BY = [["updated_at", "Last updated"], ["created_at", "Created"], ["name", "Name"],
  ["total_count", "Contacts"]];
const BUILDING = new Set(["PENDING", "RUNNING"]);
const COLUMNS = ["Name", "Status", "Contacts", "Updated"];

function stateFrom(params) {
  return {
    search: params.get("search") ?? "",
    order_by: ORDER_BY.some(([v]) => v === params.get("order_by"))
      ? params.get("order_by") : "updated_at",
    ordering: params.get("ordering") === "asc" ? "asc" : "desc",
    page: Math.max(1, Number.parseInt(params.get("page") ?? "1", 10) || 1),
  };
}

function row(item) {
  const link = h("a", { href: `#/segments/${item.id}` }, swatch(item.color), item.name);
  const cells = [link, statusBadge(item.status), formatCount(item.total_count),
    timeEl(item.updated_at)];
  return h("tr", { dataset: { id: item.id } },
    cells.map((cell, i) => h(i ? "td" : "th", { scope: i ? undefined : "row",
      dataset: { label: COLUMNS[i] }, class: i === 2 ? "num" : undefined }, cell)));
}

export async function listView(root, route) {
  const state = stateFrom(route.query);
  const searchInput = h("input", { type: "search", value: state.search, autocomplete: "off" });
  const orderBy = select(ORDER_BY, state.order_by);
  const ordering = select([["desc", "Descending"], ["asc", "Ascending"]], state.ordering);
  const tbody = h("tbody");
  const problem = h("div");
  const empty = h("p", { class: "muted", hidden: true });
  const live = h("p", { class: "muted small" });
  const pages = pager("Segment pages", (step) => {
    state.page += step;
    refresh();
  });
  const known = new Map(); // id -> status, for announcing finished builds
  let items = [];

  const table = h("table", { class: "segments" },
    h("caption", { class: "visually-hidden", text: "Segments" }),
    h("thead", {}, h("tr", {}, COLUMNS.map((c, i) => h("th", { scope: "col",
      class: i === 2 ? "num" : undefined, text: c })))),
    tbody);

  function remember() {
    const params = new URLSearchParams();
    if (state.search) params.set("search", state.search);
    if (state.order_by !== "updated_at") params.set("order_by", state.order_by);
    if (state.ordering !== "desc") params.set("ordering", state.ordering);
    if (state.page > 1) params.set("page", String(state.page));
    const text = params.toString();
    // replaceState: the address follows the view (bookmarkable) without a re-render.
    history.replaceState(null, "", `#/${text ? `?${text}` : ""}`);
  }

  function announceFinished(next) {
    for (const item of next) {
      const before = known.get(item.id);
      if (before && BUILDING.has(before) && !BUILDING.has(item.status)) {
        announce(`${item.name} is ${item.status}${item.status === "DONE"
          ? `: ${formatCount(item.total_count)} contacts` : ""}`);
      }
      known.set(item.id, item.status);
    }
  }

  async function refresh() {
    if (!root.isConnected) return; // the user has moved on to another page
    remember();
    try {
      const data = await get(`/api/v2/segments/${query({ page: state.page, page_size: 25,
        search: state.search, order_by: state.order_by, ordering: state.ordering })}`);
      if (data.items.length === 0 && state.page > 1 && data.pagination.total_pages > 0) {
        state.page = data.pagination.total_pages;
        return refresh();
      }
      items = data.items;
      announceFinished(items);
      // Rows are replaced only where they changed, so keyboard focus on a link stays put.
      const rows = [...tbody.rows];
      items.forEach((item, i) => {
        const fresh = row(item);
        if (!rows[i] || rows[i].outerHTML !== fresh.outerHTML) {
          if (rows[i]) rows[i].replaceWith(fresh);
          else add(tbody, fresh);
        }
      });
      rows.slice(items.length).forEach((r) => r.remove());
      empty.hidden = items.length > 0;
      empty.textContent = state.search ? `No segment name contains “${state.search}”.`
        : "No segments yet. Create one with New segment.";
      pages.update(data.pagination, "segment");
      live.textContent = `Updated ${new Date().toLocaleTimeString()}${
        items.some((i) => BUILDING.has(i.status)) ? " · builds running, refreshing every 2 s"
          : ""}`;
      replace(problem);
    } catch (error) {
      replace(problem, errorNotice(error));
    }
  }

  const research = debounce(() => {
    state.search = searchInput.value.trim();
    state.page = 1;
    refresh();
  }, 250);
  searchInput.addEventListener("input", research);
  for (const control of [orderBy, ordering]) {
    control.addEventListener("change", () => {
      state.order_by = orderBy.value;
      state.ordering = ordering.value;
      state.page = 1;
      refresh();
    });
  }

  document.title = "Segments · Segments console";
  add(root, 
    h("div", { class: "title-row" }, heading("Segments"),
      h("a", { class: "button primary", href: "#/new" }, "New segment")),
    h("div", { class: "toolbar", role: "search" },
      field("Search by name", searchInput),
      field("Sort by", orderBy),
      field("Order", ordering)),
    problem,
    h("div", { class: "table-wrap" }, table),
    empty, pages, live);
  await refresh();
  return poller(refresh, { busy: () => items.some((i) => BUILDING.has(i.status)) });
}
