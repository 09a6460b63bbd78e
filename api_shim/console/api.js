// Every call of the console goes through here: the public HTTP API, with the key the user
// pasted in the X-API-Key header. The key lives in this tab's sessionStorage only (never a
// URL, a cookie or storage that outlives the tab), so it goes when the tab closes.

const KEY_NAME = "segments.console.apiKey";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_NAME),
  set: (key) => sessionStorage.setItem(KEY_NAME, key),
  clear: () => sessionStorage.removeItem(KEY_NAME),
};

/** An answer other than 2xx, with the API's error items ({loc, msg, type}). */
export class ApiError extends Error {
  constructor(status, errors, headers = new Headers()) {
    super(errors.map((e) => e.msg).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
    this.headers = headers;
  }
}

// The key's request budget as the API's rate-limit headers last told it: background polling
// slows down as it runs low, and waits out a 429's Retry-After, so that what the user does
// keeps working.
export const budget = { limit: null, remaining: null, retryAt: 0 };

function track(response) {
  const limit = Number.parseInt(response.headers.get("X-RateLimit-Limit") ?? "", 10);
  const remaining = Number.parseInt(response.headers.get("X-RateLimit-Remaining") ?? "", 10);
  if (Number.isFinite(limit)) budget.limit = limit;
  if (Number.isFinite(remaining)) budget.remaining = remaining;
  if (response.status === 429) {
    const seconds = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    budget.retryAt = Date.now() + (Number.isFinite(seconds) ? seconds : 5) * 1000;
  }
}

/** How much longer than usual background polling should wait now. */
export function pollSlowdown() {
  if (!budget.limit || budget.remaining === null) return 1;
  const share = budget.remaining / budget.limit;
  if (share > 0.5) return 1;
  return share > 0.25 ? 3 : 8;
}

export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = apiKey.get();
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, [{ loc: null, msg: "The service did not answer.", type: "network" }]);
  }
  track(response);
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const errors = Array.isArray(data?.errors)
      ? data.errors
      : [{ loc: null, msg: response.statusText || "request failed", type: "http" }];
    throw new ApiError(response.status, errors, response.headers);
  }
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});
export const patch = (path, body) => call("PATCH", path, body);
export const del = (path) => call("DELETE", path);

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// Which operations this service offers, read once from its OpenAPI document (public, no
// key). The console asks before calling an endpoint a version may not have, so an older
// service shows "not available" instead of failing requests.
const FEATURES = {
  explain: ["get", "/api/v2/segments/{}/contacts/{}/explain"],
  preview: ["post", "/api/v2/segments/preview"],
  changes: ["get", "/api/v2/segments/{}/changes"],
  history: ["get", "/api/v2/segments/{}/history"],
};
let operations = null;

function normalise(path) {
  return path.replace(/\{[^}]*\}/g, "{}").replace(/\/$/, "");
}

async function loadOperations() {
  const spec = await call("GET", "/openapi.json");
  const found = new Set();
  for (const [path, item] of Object.entries(spec.paths ?? {})) {
    for (const method of Object.keys(item)) found.add(`${method} ${normalise(path)}`);
  }
  return found;
}

/** True when the service offers the feature (one of FEATURES' names). */
export async function offers(feature) {
  operations ??= loadOperations().catch(() => new Set());
  const [method, path] = FEATURES[feature];
  return (await operations).has(`${method} ${path}`);
}

/** An error that means "this endpoint is not here" (an older service). */
export function isMissingEndpoint(error) {
  return error instanceof ApiError && (error.status === 405 ||
    (error.status === 404 && error.errors.every((e) => e.loc === null)));
}
