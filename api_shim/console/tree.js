// A rule tree as nested lists of sentences, read-only. With explain's answer, every node also
// shows its result (a word and a mark, not colour alone) and every condition what was observed.

import { formatTime, h } from "./dom.js";
import { conditionText, GROUP_WORDS, nodeShape } from "./language.js";

const OBSERVED_LABELS = { stored: "stored", read: "read as", count: "count", from: "from",
  to: "to", isp_id: "provider id" };
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function observedText(value) {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return value.length ? value.map(observedText).join(", ") : "none";
  if (typeof value === "object") {
    if ("name" in value) return String(value.name);
    return Object.entries(value)
      .map(([key, item]) => `${OBSERVED_LABELS[key] ?? key.replaceAll("_", " ")}: ${
        observedText(item)}`)
      .join(" · ");
  }
  if (typeof value === "string" && ISO_INSTANT.test(value)) return formatTime(value);
  return JSON.stringify(value);
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
      item.append(h("div", { class: "observed" }, "Observed: ", observedText(node.observed)));
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
