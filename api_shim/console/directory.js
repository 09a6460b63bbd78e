// What the views need to name things: the account's lists, custom fields and segments,
// each read from the API once per view.

import { get, query } from "./api.js";
import { BUILT_IN_FIELDS } from "./language.js";

export async function lists() {
  return (await get("/api/v2/lists/")).items;
}

/** [[name, type], ...]: built-in fields, then the account's custom fields. */
export async function fields() {
  const custom = (await get("/api/v2/fields/")).items.map((f) => [f.key, f.data_type]);
  const builtIn = new Set(BUILT_IN_FIELDS.map(([name]) => name));
  return [...BUILT_IN_FIELDS, ...custom.filter(([name]) => !builtIn.has(name))];
}

const MAX_SEGMENT_PAGES = 10;

/** Every segment of the account (up to 1,000), by name. */
export async function segments() {
  const all = [];
  for (let page = 1; page <= MAX_SEGMENT_PAGES; page += 1) {
    const data = await get(`/api/v2/segments/${query({ page, page_size: 100, order_by: "name",
      ordering: "asc" })}`);
    all.push(...data.items);
    if (page >= data.pagination.total_pages) break;
  }
  return all;
}

/** ids of lists and segments -> names, for sentences. */
export function names(...collections) {
  const map = new Map();
  for (const items of collections) for (const item of items) map.set(item.id, item.name);
  return map;
}
