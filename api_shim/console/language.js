// What the v2 rule language offers (docs/rules.md): the built-in fields and their types,
// the operators each type allows, the condition kinds and their operators. Custom fields
// come from the API (GET /api/v2/fields/).

export const BUILT_IN_FIELDS = [
  ["email", "text"], ["name", "text"], ["first_name", "text"], ["last_name", "text"],
  ["company", "text"], ["status", "text"], ["country", "text"], ["city", "text"],
  ["language", "text"], ["tags", "list"], ["created_at", "datetime"],
  ["updated_at", "datetime"], ["opens_count", "number"], ["clicks_count", "number"],
  ["last_open_at", "datetime"], ["last_click_at", "datetime"],
];

export const OPERATORS = {
  text: ["equals", "not_equals", "contains", "not_contains", "starts_with", "in", "not_in",
    "is_null", "is_not_null"],
  number: ["equals", "not_equals", "gt", "gte", "lt", "lte", "in", "not_in", "is_null",
    "is_not_null"],
  datetime: ["gt", "gte", "lt", "lte", "within_days", "in_calendar",
    "anniversary_within_days", "is_null", "is_not_null"],
  boolean: ["equals", "not_equals", "is_null", "is_not_null"],
  list: ["has_any", "has_all", "has_none", "is_null", "is_not_null"],
};

export const OPERATOR_WORDS = {
  equals: "equals", not_equals: "does not equal", contains: "contains",
  not_contains: "does not contain", starts_with: "starts with", in: "is one of",
  not_in: "is none of", is_null: "is not set", is_not_null: "is set", gt: "is after",
  gte: "is at or after", lt: "is before", lte: "is at or before",
  within_days: "is within the last", in_calendar: "is in", has_any: "has any of",
  has_all: "has all of", has_none: "has none of",
  anniversary_within_days: "has its anniversary within",
};
const NUMBER_WORDS = { gt: "is greater than", gte: "is at least", lt: "is less than",
  lte: "is at most" };

export function operatorLabel(operator, type) {
  if (type === "number" && NUMBER_WORDS[operator]) return NUMBER_WORDS[operator];
  return OPERATOR_WORDS[operator] ?? operator;
}

/** What shape of value an operator of a type takes. */
export function valueShape(operator, type) {
  if (operator === "is_null" || operator === "is_not_null") return "none";
  if (operator === "in_calendar") return "period";
  if (operator === "within_days" || operator === "anniversary_within_days") return "days";
  if (["in", "not_in", "has_any", "has_all", "has_none"].includes(operator)) {
    return type === "number" ? "numbers" : "texts";
  }
  return type; // one value of the field's type: text, number, datetime, boolean
}

export const KINDS = [
  ["field", "Field"], ["activity", "Activity (opens, clicks)"],
  ["deliverability", "Deliverability"], ["membership", "List membership"],
  ["isp", "Mailbox provider"], ["segment", "Other segments"],
];
export const ACTIVITY_METRICS = ["open", "click"];
export const ACTIVITY_OPERATORS = ["ever", "never", "count_gte", "count_lte", "count_eq"];
export const DELIVERABILITY_METRICS = ["bounce", "complaint", "delivered", "unsubscribe"];
export const DELIVERABILITY_OPERATORS = ["ever", "count_gte", "count_lte", "count_eq"];
export const COUNT_WORDS = { ever: "at least once", never: "never", count_gte: "at least",
  count_lte: "at most", count_eq: "exactly" };
export const UNITS = ["day", "week", "month", "year"];
export const PALETTE = ["#7cb7de", "#cc9ccb", "#f0f080", "#ecd12d", "#dadabc", "#b6d8d5",
  "#065358", "#dbe3b4", "#c1cceb", "#944c6d", "#f7819b", "#f9c8cb"];

// The mailbox providers the service is seeded with (docs/rules.md, isp): names to show
// beside ids. Any other id is shown as a number.
export const ISP_NAMES = { 1: "Gmail", 2: "Outlook", 3: "Yahoo", 4: "iCloud", 5: "AOL", 6: "GMX",
  7: "Web.de", 8: "Orange", 9: "Comcast", 10: "Proton", 11: "Yandex", 12: "Mail.ru",
  13: "Zoho", 14: "T-Online", 15: "Free", 16: "SFR", 17: "Libero", 18: "Virgilio",
  19: "Seznam", 20: "Wirtualna Polska", 21: "Onet", 22: "QQ Mail", 23: "NetEase", 24: "Naver",
  25: "Verizon", 26: "AT&T", 27: "Cox" };

export function ispName(id) {
  return ISP_NAMES[id] ? `${ISP_NAMES[id]} (${id})` : `provider ${id}`;
}

/** A node's shape: "any", "all", "not" or "condition". */
export function nodeShape(node) {
  if (node && typeof node === "object") {
    for (const shape of ["any", "all", "not"]) if (shape in node) return shape;
  }
  return "condition";
}

export function periodText(period) {
  if (!period || typeof period !== "object") return JSON.stringify(period);
  const { unit, offset } = period;
  if (offset === 0) return `this ${unit}`;
  if (offset === -1) return `the previous ${unit}`;
  return `the ${unit} ${-offset} ${unit}s ago`;
}

function windowText(window) {
  if (!window) return "";
  if (window.mode === "last") return ` in the last ${window.days} days`;
  if (window.mode === "more_than") return ` more than ${window.days} days ago`;
  if (window.mode === "calendar") return ` in ${periodText(window)}`;
  return "";
}

function quoted(value) {
  if (Array.isArray(value)) return value.map(quoted).join(", ");
  return typeof value === "string" ? `“${value}”` : JSON.stringify(value);
}

function countText(condition, noun) {
  const times = condition.value === 1 ? "time" : "times";
  const how = condition.operator.startsWith("count_")
    ? `${COUNT_WORDS[condition.operator]} ${condition.value} ${times}`
    : COUNT_WORDS[condition.operator] ?? condition.operator;
  return `${noun} ${how}${windowText(condition.days_window)}`;
}

function campaignsText(condition) {
  const include = condition.include_campaign_ids ?? [];
  const exclude = condition.exclude_campaign_ids ?? [];
  if (include.length) return ` (only campaigns ${include.join(", ")})`;
  if (exclude.length) return ` (not campaigns ${exclude.join(", ")})`;
  return "";
}

function fieldValueText(condition) {
  const { operator, value } = condition;
  if (operator === "is_null" || operator === "is_not_null") return "";
  if (operator === "within_days") return ` ${value} days`;
  if (operator === "anniversary_within_days") return ` the next ${value} days`;
  if (operator === "in_calendar") return ` ${periodText(value)}`;
  return ` ${quoted(value)}`;
}

/**
 * A condition as a sentence. `names` maps list and segment ids to names, `types` field names
 * to types (for operator words).
 */
export function conditionText(condition, names = new Map(), types = new Map()) {
  const named = (ids) => (ids ?? []).map((id) => names.get(id) ?? id).join(", ");
  switch (condition?.kind) {
    case "field":
      return `${condition.field} ${operatorLabel(condition.operator,
        types.get(condition.field))}${fieldValueText(condition)}`;
    case "activity":
      return countText(condition, condition.metric === "open" ? "opened" : "clicked") +
        campaignsText(condition);
    case "deliverability":
      return countText(condition, `had ${condition.metric} events`);
    case "membership":
      return `${condition.operator === "in" ? "is on" : "is on none of"} the lists ${named(
        condition.list_ids)}`;
    case "isp":
      return `mailbox provider ${condition.operator === "in" ? "is" : "is not"} ${(
        condition.values ?? []).map(ispName).join(" or ")}`;
    case "segment":
      return `${condition.operator === "in" ? "is in" : "is in none of"} the segments ${named(
        condition.segment_ids)}`;
    default:
      return JSON.stringify(condition);
  }
}

export const GROUP_WORDS = { any: "Any of these", all: "All of these", not: "Not" };
