// Why a contact is in a segment, or not: the explain tree, each condition true or false with
// what was observed. The contact is given by id or email (an email is looked up first).

import { get, offers } from "./api.js";
import * as directory from "./directory.js";
import { add, field, formatTime, h } from "./dom.js";
import { renderTree } from "./tree.js";
import { errorNotice, heading, notice, unavailable } from "./ui.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function verdict(answer) {
  const yes = (flag, positive, negative) => h("li", { class: flag ? "pass" : "fail" },
    h("span", { "aria-hidden": "true" }, flag ? "✓ " : "✗ "), flag ? positive : negative);
  const items = [
    yes(answer.member, "Member of the segment now", "Not a member of the segment now"),
    yes(answer.matches, "Matches the rules now", "Does not match the rules now"),
    yes(answer.in_universe, "On one of the segment's lists", "On none of the segment's lists"),
  ];
  const parts = [h("ul", { class: "verdict" }, items)];
  if (answer.member !== answer.matches) {
    parts.push(notice("Membership and rules disagree: a change is on its way (membership "
      + "follows within seconds), or the segment is being built.", "warn"));
  }
  const fresh = answer.fresh_as_of ? `membership fresh as of ${formatTime(answer.fresh_as_of)}`
    : "the segment has not been built yet";
  parts.push(h("p", { class: "muted small" }, `Evaluated ${formatTime(answer.evaluated_at)}; ${
    fresh}.`));
  return parts;
}

/** "Contact id or email" and Explain: opens the explanation of that contact. */
export function contactForm(segmentId, value, label = "Explain another contact") {
  const input = h("input", { type: "text", autocomplete: "off", spellcheck: "false",
    required: true, value: value ?? "" });
  const form = h("form", { class: "inline-form", "aria-label": label },
    field("Contact id or email", input), h("button", { type: "submit" }, "Explain"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/segments/${segmentId}/explain/${encodeURIComponent(input.value.trim())}`;
  });
  return form;
}

export async function explainView(root, route) {
  const [segmentId, ref] = route.params;
  const [segment, lists, fieldList, segments, available] = await Promise.all([
    get(`/api/v2/segments/${segmentId}/`), directory.lists(), directory.fields(),
    directory.segments(), offers("explain")]);
  document.title = `Explain · ${segment.name} · Segments console`;
  add(root, h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Segments"), " › ",
    h("a", { href: `#/segments/${segmentId}` }, segment.name), " › Explain"),
  heading(ref ? `Why ${ref} is in ${segment.name}, or not` : `Explain ${segment.name}`),
  contactForm(segmentId, ref));
  if (!available) {
    add(root, unavailable("Explain"));
    return null;
  }
  if (!ref) return null;
  const result = h("section", { class: "explain", "aria-labelledby": "explain-result" },
    h("h2", { id: "explain-result" }, "Result"));
  add(root, result);
  try {
    const contact = UUID.test(ref) ? null
      : await get(`/api/v2/contacts/${encodeURIComponent(ref)}/`);
    const contactId = contact?.id ?? ref;
    const answer = await get(
      `/api/v2/segments/${segmentId}/contacts/${contactId}/explain/`);
    add(result, h("p", {}, "Contact ", h("code", {}, contact?.email ?? contactId)),
      ...verdict(answer),
      h("h3", {}, "Rules, evaluated for this contact"),
      renderTree(answer.tree, { names: directory.names(lists, segments),
        types: new Map(fieldList), label: "Rules with results" }));
  } catch (error) {
    add(result, errorNotice(error));
  }
  return null;
}
