// A rule tree as nested lists of sentences, read-only. With explain's answer, every node also
// shows its result (a word and a mark, not colour alone) and every condition what was observed.

import { formatTime, h, plural } from "./dom.js";
import { conditionText, GROUP_WORDS, nodeShape } from "./language.js";

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function shown(value) {
  if (value === null || value === undefined) return "nothing (null)";
  if (typeof value === "string" && ISO_INSTANT.test(value)) return formatTime(value);
  return typeof value === "string" ? `“${value}”` : JSON.stringify(value);
}

function names(items) {
  return (items ?? []).map((item) => item.name ?? item.id).join(", ");
}

/** What explain observed for a condition, as a phrase. */
function observedText(condition, observed) {
  if (observed === null || typeof observed !== "object") return shown(observed);
  switch (condition.kind) {
    case "field":
      return `stored ${shown(observed.stored)}, read as ${shown(observed.read)}`;
    case "activity":
    case "deliverability": {
      const from = observed.from ? ` from ${formatTime(observed.from)}` : "";
      const to = observed.to ? ` until ${formatTime(observed.to)}` : "";
      return `${plural(observed.count, "event")}${from || to ? `${from}${to}` : " at any time"}`;
    }
    case "membership":
      return observed.lists?.length ? `on ${names(observed.lists)}` : "on none of these lists";
    case "segment":
      return observed.segments?.length ? `in ${names(observed.segments)}`
        : "in none of these segments";
    case "isp":
      return observed.isp_id === null || observed.isp_id === undefined ? "provider unknown"
        : `${observed.name ?? "provider"} (${observed.isp_id})`;
    default:
      return JSON.stringify(observed);
  }
}

function resultBadge(result) {
  return h("span", { class: `result ${result ? "pass" : "fail"}` },
    h("span", { "aria-hidden": "true", text: result ? "✓ " : "✗ " }),
    result ? "true" : "false");
}

function renderNode(node, context) {
  const shape = nodeShape(node);
  const explained = "result" in node;
  const item = h("li", { class: `node ${shape}${explained ? (node.result ? " pass" : " fail") : ""}` });
  const line = h("div", { class: "node-line" });
  if (explained) line.append(resultBadge(node.result), " ");
  if (shape === "condition") {
    line.append(h("span", { class: "sentence", text: conditionText(node, context.names,
      context.types) }));
    item.append(line);
    if (explained && "observed" in node) {
      item.append(h("div", { class: "observed" }, "Observed: ",
        observedText(node, node.observed)));
    }
    return item;
  }
  line.append(h("strong", { text: `${GROUP_WORDS[shape]}:` }));
  item.append(line);
  const children = shape === "not" ? [node.not] : node[shape];
  item.append(h("ul", {}, children.map((child) => renderNode(child, context))));
  return item;
}

/** The tree as a list; `names` maps list/segment ids to names, `types` fields to types. */
export function renderTree(tree, { names = new Map(), types = new Map(), label } = {}) {
  return h("ul", { class: "tree", "aria-label": label }, renderNode(tree, { names, types }));
}
