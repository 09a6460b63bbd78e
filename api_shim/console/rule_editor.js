// The rule builder's tree: nested any/all/not groups and conditions of every kind, edited in
// place. Value edits change the model and call `changed()`; structural edits (add, remove,
// wrap, a new kind or field type) re-render the tree and keep focus where it was.

import { add, button, field, h, select, uid } from "./dom.js";
import {
  ACTIVITY_METRICS, ACTIVITY_OPERATORS, COUNT_WORDS, DELIVERABILITY_METRICS,
  DELIVERABILITY_OPERATORS, ISP_NAMES, KINDS, nodeShape, OPERATORS, operatorLabel, UNITS,
  valueShape,
} from "./language.js";

const MATCH = [["all", "All of these (AND)"], ["any", "Any of these (OR)"]];
const WINDOW_MODES = [["", "At any time"], ["last", "In the last N days"],
  ["more_than", "More than N days ago"], ["calendar", "In a calendar period"]];

/** A new condition of a kind, valid as it stands where the account's data allows. */
export function newCondition(kind, context) {
  switch (kind) {
    case "activity":
      return { kind, metric: "open", operator: "ever", days_window: { mode: "last", days: 30 } };
    case "deliverability":
      return { kind, metric: "bounce", operator: "ever",
        days_window: { mode: "last", days: 30 } };
    case "membership":
      return { kind, operator: "in", list_ids: context.lists.slice(0, 1).map((l) => l.id) };
    case "isp":
      return { kind, operator: "in", values: [1] };
    case "segment":
      return { kind, operator: "in", segment_ids: context.segments.slice(0, 1).map((s) => s.id) };
    default:
      return { kind: "field", field: "status", operator: "equals", value: "subscribed" };
  }
}

// --- values: the text in a control <-> the JSON the API takes ------------------------------

function parseNumber(text) {
  const trimmed = text.trim();
  const number = Number(trimmed);
  // Anything that is not a number is sent as typed: the API's 400 then points at it.
  return trimmed !== "" && Number.isFinite(number) ? number : trimmed;
}

function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

function showValue(value) {
  if (value === undefined || value === null) return "";
  return Array.isArray(value) ? value.join("\n") : String(value);
}

function defaultValue(shape, previous) {
  const first = Array.isArray(previous) ? previous[0] : previous;
  switch (shape) {
    case "none": return undefined;
    case "period": return { unit: "month", offset: 0 };
    case "days": return Number.isInteger(first) && first >= 0 ? first : 30;
    case "texts": return first !== undefined && typeof first !== "object" ? [String(first)] : [];
    case "numbers": return typeof first === "number" ? [first] : [];
    case "boolean": return true;
    case "number": return typeof first === "number" ? first : 0;
    default: return typeof first === "string" ? first : "";
  }
}

/** Which campaign filter a condition uses: "include", "exclude" or "" (none). */
function campaignFilter(node) {
  if (node.include_campaign_ids?.length) return "include";
  if (node.exclude_campaign_ids?.length) return "exclude";
  if (Array.isArray(node.include_campaign_ids)) return "include";
  return Array.isArray(node.exclude_campaign_ids) ? "exclude" : "";
}

// --- the editor ------------------------------------------------------------------------------

export class RuleEditor {
  /** context: {lists, segments, fields: [[name, type]], selfId}; changed(): after any edit. */
  constructor(rules, context, locations, changed) {
    this.rules = rules;
    this.context = context;
    this.types = new Map(context.fields);
    this.locations = locations;
    this.changed = changed;
    this.root = h("div", { class: "rule-editor" });
    this.render();
  }

  setRules(rules) {
    this.rules = rules;
    this.restructure();
  }

  /** Re-render after a structural change, keeping focus on the same control if it lives. */
  restructure(focusLoc) {
    const loc = focusLoc ?? document.activeElement?.dataset?.loc;
    this.render();
    const target = loc && this.locations.find(loc);
    if (target) target.control.focus();
    this.changed();
  }

  render() {
    this.locations.clear();
    this.root.replaceChildren(this.node(this.rules, "rules_json", {
      replace: (node) => { this.rules = node; },
      root: true,
    }));
  }

  // A node, with how its parent replaces or removes it.
  node(node, loc, slot) {
    const shape = nodeShape(node);
    if (shape === "any" || shape === "all") return this.group(node, shape, loc, slot);
    if (shape === "not") return this.not(node, loc, slot);
    return this.condition(node, loc, slot);
  }

  nodeTools(node, loc, slot) {
    if (slot.root) return [];
    const tools = [];
    if (slot.move) {
      tools.push(button("Move up", () => slot.move(-1), { class: "quiet small",
        "aria-label": `Move ${loc} up`, disabled: slot.first }));
      tools.push(button("Move down", () => slot.move(1), { class: "quiet small",
        "aria-label": `Move ${loc} down`, disabled: slot.last }));
    }
    if (nodeShape(node) !== "not") {
      tools.push(button("Negate", () => {
        slot.replace({ not: node });
        this.restructure(`${loc}.not`);
      }, { class: "quiet small", "aria-label": `Negate ${loc} (wrap it in NOT)` }));
    }
    if (slot.remove) {
      tools.push(button("Remove", () => {
        slot.remove();
        this.restructure();
      }, { class: "quiet small danger", "aria-label": `Remove ${loc}` }));
    }
    return tools;
  }

  group(node, shape, loc, slot) {
    const children = node[shape];
    const match = select(MATCH, shape);
    const box = h("fieldset", { class: `group ${shape}` });
    const legend = h("legend", {}, slot.root ? "Rules" : "Group");
    this.locations.add(loc, match, legend);
    match.addEventListener("change", () => {
      const next = { [match.value]: children };
      slot.replace(next);
      this.restructure(loc);
    });
    const items = h("ol", { class: "children" });
    children.forEach((child, i) => {
      const childLoc = `${loc}.${shape}[${i}]`;
      add(items, h("li", {}, this.node(child, childLoc, {
        replace: (next) => { children[i] = next; },
        remove: children.length > 1 ? () => children.splice(i, 1) : null,
        move: children.length > 1 ? (step) => {
          const [moved] = children.splice(i, 1);
          children.splice(i + step, 0, moved);
          this.restructure(`${loc}.${shape}[${i + step}]`);
        } : null,
        first: i === 0,
        last: i === children.length - 1,
      })));
    });
    const adding = (made, focus) => () => {
      children.push(made());
      this.restructure(`${loc}.${shape}[${children.length - 1}]${focus}`);
    };
    add(box, legend,
      h("div", { class: "node-head" }, field(slot.root ? "Contacts match" : "This group matches",
        match), h("div", { class: "tools" }, this.nodeTools(node, loc, slot))),
      items,
      h("div", { class: "tools add" },
        button("Add condition", adding(() => newCondition("field", this.context), ".kind"),
          { "aria-label": `Add a condition to ${loc}` }),
        button("Add group", adding(() => ({ any: [newCondition("field", this.context)] }), ""),
          { "aria-label": `Add a group to ${loc}` })));
    return box;
  }

  not(node, loc, slot) {
    const legend = h("legend", {}, "NOT: contacts that do not match");
    const unwrap = button("Remove NOT", () => {
      slot.replace(node.not);
      this.restructure(loc);
    }, { class: "quiet small", "aria-label": `Remove the NOT at ${loc}, keep what it holds` });
    const box = h("fieldset", { class: "group not" }, legend,
      h("div", { class: "tools" }, unwrap, this.nodeTools(node, loc, slot)),
      this.node(node.not, `${loc}.not`, { replace: (next) => { node.not = next; } }));
    this.locations.add(loc, unwrap, legend);
    return box;
  }

  condition(node, loc, slot) {
    const kind = select(KINDS, node.kind);
    kind.addEventListener("change", () => {
      slot.replace(newCondition(kind.value, this.context));
      this.restructure(`${loc}.kind`);
    });
    const kindField = field("Condition kind", kind);
    this.locations.add(`${loc}.kind`, kind, kindField);
    this.locations.add(loc, kind, kindField);
    const body = h("div", { class: "condition-body" });
    const builders = {
      field: () => this.fieldCondition(node, loc, body),
      activity: () => this.countCondition(node, loc, body, ACTIVITY_METRICS, ACTIVITY_OPERATORS),
      deliverability: () => this.countCondition(node, loc, body, DELIVERABILITY_METRICS,
        DELIVERABILITY_OPERATORS),
      membership: () => this.idsCondition(node, loc, body, "list_ids", "Lists",
        this.context.lists.map((l) => [l.id, `${l.name} (${l.members_count.toLocaleString()})`])),
      isp: () => this.ispCondition(node, loc, body),
      segment: () => this.idsCondition(node, loc, body, "segment_ids", "Segments",
        this.context.segments.filter((s) => s.id !== this.context.selfId)
          .map((s) => [s.id, s.name])),
    };
    (builders[node.kind] ?? builders.field)();
    return h("div", { class: "condition" },
      h("div", { class: "node-head" }, kindField, h("div", { class: "tools" },
        this.nodeTools(node, loc, slot))),
      body);
  }

  control(loc, label, control, hint) {
    const wrapper = field(label, control, hint);
    this.locations.add(loc, control, wrapper);
    return wrapper;
  }

  bind(control, apply, restructure = false) {
    control.addEventListener(control.tagName === "SELECT" ? "change" : "input", () => {
      apply(control.value);
      if (restructure) this.restructure();
      else this.changed();
    });
    return control;
  }

  fieldCondition(node, loc, body) {
    const fieldSelect = h("select");
    const builtIn = h("optgroup", { label: "Built-in fields" });
    const custom = h("optgroup", { label: "Custom fields" });
    const known = new Set(this.context.fields.map(([name]) => name));
    this.context.fields.forEach(([name, type], i) => {
      (i < this.context.builtInCount ? builtIn : custom).append(h("option", { value: name,
        selected: name === node.field, text: `${name} (${type})` }));
    });
    if (!known.has(node.field)) {
      add(fieldSelect, h("option", { value: node.field, selected: true,
        text: `${node.field} (unknown)` }));
    }
    add(fieldSelect, builtIn);
    if (custom.children.length) add(fieldSelect, custom);
    const type = this.types.get(node.field) ?? "text";
    this.bind(fieldSelect, (name) => {
      node.field = name;
      const next = this.types.get(name) ?? "text";
      if (!OPERATORS[next].includes(node.operator)) node.operator = OPERATORS[next][0];
      this.reshapeValue(node, next);
    }, true);
    const operator = select(OPERATORS[type].map((op) => [op, operatorLabel(op, type)]),
      node.operator);
    if (!OPERATORS[type].includes(node.operator)) {
      add(operator, h("option", { value: node.operator, selected: true,
        text: `${node.operator} (not for ${type})` }));
    }
    this.bind(operator, (op) => {
      node.operator = op;
      this.reshapeValue(node, type);
    }, true);
    add(body, this.control(`${loc}.field`, "Field", fieldSelect),
      this.control(`${loc}.operator`, "Operator", operator),
      this.valueControl(node, loc, type));
  }

  reshapeValue(node, type) {
    const shape = valueShape(node.operator, type);
    const previous = node.value;
    if (shape === "none") delete node.value;
    else if (shape !== node._shape) node.value = defaultValue(shape, previous);
    node._shape = shape;
  }

  valueControl(node, loc, type) {
    const shape = valueShape(node.operator, type);
    node._shape = shape;
    const valueLoc = `${loc}.value`;
    switch (shape) {
      case "none":
        return h("p", { class: "hint" }, "This operator takes no value.");
      case "boolean": {
        const choice = select([["true", "true"], ["false", "false"]], String(node.value));
        this.bind(choice, (v) => { node.value = v === "true"; });
        return this.control(valueLoc, "Value", choice);
      }
      case "period":
        return this.periodControls(node.value, valueLoc, "Calendar period");
      case "days": {
        const input = h("input", { type: "number", step: "1", value: showValue(node.value),
          inputmode: "numeric" });
        this.bind(input, (v) => { node.value = parseNumber(v); });
        const words = node.operator === "within_days" ? "Days back (1 to 36500)"
          : "Days ahead (0 to 366)";
        return this.control(valueLoc, words, input);
      }
      case "texts":
      case "numbers": {
        const area = h("textarea", { rows: 3, value: showValue(node.value) });
        this.bind(area, (v) => {
          node.value = shape === "numbers" ? lines(v).map(parseNumber) : lines(v);
        });
        return this.control(valueLoc, "Values, one per line", area);
      }
      default: {
        const input = h("input", { type: "text", value: showValue(node.value),
          inputmode: shape === "number" ? "decimal" : undefined, spellcheck: "false",
          placeholder: shape === "datetime" ? "2026-01-31 or 2026-01-31T09:00:00Z" : undefined });
        this.bind(input, (v) => { node.value = shape === "number" ? parseNumber(v) : v; });
        return this.control(valueLoc, "Value", input, shape === "datetime"
          ? "ISO 8601 date or date-time; without an offset it is UTC." : undefined);
      }
    }
  }

  periodControls(period, loc, label) {
    const unit = select(UNITS, period.unit);
    const offset = h("input", { type: "number", step: "1", max: "0", min: "-3650",
      value: String(period.offset ?? 0), inputmode: "numeric" });
    this.bind(unit, (v) => { period.unit = v; });
    this.bind(offset, (v) => { period.offset = parseNumber(v); });
    return h("fieldset", { class: "inline" }, h("legend", {}, label),
      this.control(`${loc}.unit`, "Unit", unit),
      this.control(`${loc}.offset`, "Offset (0 = current, -1 = previous)", offset));
  }

  countCondition(node, loc, body, metrics, operators) {
    const metric = select(metrics, node.metric);
    this.bind(metric, (v) => { node.metric = v; });
    const operator = select(operators.map((op) => [op, COUNT_WORDS[op]]), node.operator);
    this.bind(operator, (op) => {
      node.operator = op;
      if (op.startsWith("count_")) node.value = Number.isInteger(node.value) ? node.value : 1;
      else delete node.value;
    }, true);
    add(body, this.control(`${loc}.metric`, "Event", metric),
      this.control(`${loc}.operator`, "How often", operator));
    if (node.operator.startsWith("count_")) {
      const count = h("input", { type: "number", min: "0", step: "1", inputmode: "numeric",
        value: showValue(node.value) });
      this.bind(count, (v) => { node.value = parseNumber(v); });
      add(body, this.control(`${loc}.value`, "Times", count));
    }
    add(body, this.windowControls(node, loc));
    if (node.kind === "activity") add(body, this.campaignControls(node, loc));
  }

  windowControls(node, loc) {
    const windowLoc = `${loc}.days_window`;
    const window = node.days_window;
    const mode = select(WINDOW_MODES, window?.mode ?? "");
    this.bind(mode, (v) => {
      if (!v) delete node.days_window;
      else if (v === "calendar") node.days_window = { mode: v, unit: "month", offset: 0 };
      else node.days_window = { mode: v, days: window?.days ?? 30 };
    }, true);
    const parts = [this.control(windowLoc, "When", mode)];
    if (window && window.mode === "calendar") {
      parts.push(this.periodControls(window, windowLoc, "Calendar period"));
    } else if (window) {
      const days = h("input", { type: "number", min: "1", max: "36500", step: "1",
        inputmode: "numeric", value: showValue(window.days) });
      this.bind(days, (v) => { window.days = parseNumber(v); });
      parts.push(this.control(`${windowLoc}.days`, "Days (1 to 36500)", days));
    }
    return parts;
  }

  campaignControls(node, loc) {
    const current = campaignFilter(node);
    const which = select([["", "All campaigns"], ["include", "Only these campaigns"],
      ["exclude", "All but these campaigns"]], current);
    this.bind(which, (v) => {
      const ids = node.include_campaign_ids ?? node.exclude_campaign_ids ?? [];
      delete node.include_campaign_ids;
      delete node.exclude_campaign_ids;
      if (v) node[`${v}_campaign_ids`] = ids;
    }, true);
    const parts = [this.control(`${loc}.campaigns`, "Campaigns", which)];
    if (current) {
      const key = `${current}_campaign_ids`;
      const area = h("textarea", { rows: 2, spellcheck: "false",
        value: showValue(node[key]) });
      this.bind(area, (v) => { node[key] = lines(v); });
      parts.push(this.control(`${loc}.${key}`, "Campaign ids, one per line", area));
    }
    return parts;
  }

  idsCondition(node, loc, body, key, label, choices) {
    const operator = select([["in", "is in any of"], ["not_in", "is in none of"]], node.operator);
    this.bind(operator, (v) => { node.operator = v; });
    add(body, this.control(`${loc}.operator`, "Operator", operator),
      this.checkboxes(node, `${loc}.${key}`, key, label, choices));
  }

  checkboxes(node, loc, key, label, choices) {
    const chosen = new Set(node[key] ?? []);
    const box = h("fieldset", { class: "choices" }, h("legend", {}, label));
    if (!choices.length) add(box, h("p", { class: "hint" }, `No ${label.toLowerCase()} to pick.`));
    let first = null;
    for (const [value, text] of choices) {
      const id = uid("choice");
      const input = h("input", { type: "checkbox", id, value: String(value),
        checked: chosen.has(value) });
      first ??= input;
      input.addEventListener("change", () => {
        const picked = [...box.querySelectorAll("input:checked")].map((i) =>
          choices.find(([v]) => String(v) === i.value)[0]);
        node[key] = [...picked, ...(node[key] ?? []).filter((v) =>
          !choices.some(([c]) => c === v))];
        this.changed();
      });
      add(box, h("div", { class: "choice" }, input, h("label", { for: id, text })));
    }
    this.locations.add(loc, first ?? box, box);
    return box;
  }

  ispCondition(node, loc, body) {
    const operator = select([["in", "is one of"], ["not_in", "is none of (or unknown)"]],
      node.operator);
    this.bind(operator, (v) => { node.operator = v; });
    const known = Object.entries(ISP_NAMES).map(([id, name]) => [Number(id), name]);
    const others = h("input", { type: "text", inputmode: "numeric", spellcheck: "false",
      value: (node.values ?? []).filter((v) => !ISP_NAMES[v]).join(", ") });
    this.bind(others, (v) => {
      const extra = v.split(",").map((s) => s.trim()).filter(Boolean).map(parseNumber);
      node.values = [...(node.values ?? []).filter((id) => ISP_NAMES[id]), ...extra];
    });
    add(body, this.control(`${loc}.operator`, "Mailbox provider", operator),
      this.checkboxes(node, `${loc}.values`, "values", "Providers", known),
      field("Other provider ids, comma separated", others));
  }
}

/** The rules without the editor's bookkeeping keys, as the API takes them. */
export function cleanRules(rules) {
  return JSON.parse(JSON.stringify(rules, (key, value) => (key === "_shape" ? undefined
    : value)));
}
