// Create or edit a segment: name, colour, lists, timezone and the rule tree, with a live
// preview (POST /api/v2/segments/preview/, debounced) and the API's 400 locations shown
// next to the part they point at. Save is POST (new) or PATCH (only what changed).

import { ApiError, get, offers, patch, post } from "./api.js";
import * as directory from "./directory.js";
import { add, announce, button, debounce, field, formatCount, h, replace, uid } from "./dom.js";
import { BUILT_IN_FIELDS, PALETTE } from "./language.js";
import { Locations } from "./locations.js";
import { cleanRules, newCondition, RuleEditor } from "./rule_editor.js";
import { errorNotice, heading, notice, unavailable } from "./ui.js";

const PREVIEW_DELAY_MS = 400;
const EDITABLE = ["name", "color", "description", "contact_list_ids", "rules_json", "timezone"];

function timezones() {
  const zones = typeof Intl.supportedValuesOf === "function"
    ? Intl.supportedValuesOf("timeZone") : [];
  return ["UTC", ...zones.filter((z) => z !== "UTC")];
}

function colorChoices(model, locations, changed) {
  const box = h("fieldset", { class: "palette" }, h("legend", {}, "Colour"));
  const name = uid("color");
  let first = null;
  for (const color of PALETTE) {
    const id = uid("color");
    const input = h("input", { type: "radio", name, id, value: color,
      checked: model.color === color });
    first ??= input;
    input.addEventListener("change", () => {
      model.color = color;
      changed(false);
    });
    const chip = h("span", { class: "swatch", "aria-hidden": "true" });
    chip.style.backgroundColor = color;
    add(box, h("div", { class: "choice" }, input, h("label", { for: id }, chip, color)));
  }
  locations.add("color", first, box);
  return box;
}

function listChoices(model, lists, locations, changed) {
  const box = h("fieldset", { class: "choices" },
    h("legend", {}, "Draw from these lists (at least one)"));
  let first = null;
  for (const list of lists) {
    const id = uid("list");
    const input = h("input", { type: "checkbox", id, value: list.id,
      checked: model.contact_list_ids.includes(list.id) });
    first ??= input;
    input.addEventListener("change", () => {
      model.contact_list_ids = [...box.querySelectorAll("input:checked")].map((i) => i.value);
      changed(true);
    });
    add(box, h("div", { class: "choice" }, input,
      h("label", { for: id }, `${list.name} (${list.members_count.toLocaleString()})`)));
  }
  if (!lists.length) add(box, notice("The account has no lists yet: create one first."));
  locations.add("contact_list_ids", first ?? box, box);
  return box;
}

function previewResult(answer, segmentId) {
  const count = answer.exact
    ? h("p", { class: "big" }, h("strong", {}, formatCount(answer.total_count)),
      answer.total_count === 1 ? " contact" : " contacts")
    : h("p", { class: "big" }, "about ", h("strong", {}, formatCount(answer.estimate?.value)),
      ` contacts (${formatCount(answer.estimate?.low)} to ${formatCount(answer.estimate?.high)
      }, ${Math.round((answer.estimate?.confidence ?? 0.95) * 100)}% confidence; the exact count `
      + "took too long)");
  const sample = (answer.sample ?? []).map((c) => h("li", {}, segmentId
    ? h("a", { href: `#/segments/${segmentId}/explain/${c.id}` }, c.email) : c.email));
  return [count, h("p", { class: "muted small" }, `Counted in ${answer.took_ms} ms.`),
    sample.length ? h("h3", {}, "Sample (first by id)") : null,
    sample.length ? h("ul", { class: "sample" }, sample) : null];
}

function errorSummary(placed) {
  return h("div", { class: "notice error", role: "alert" },
    h("p", {}, placed.length === 1 ? "The rule has a problem:" : `The rule has ${placed.length
    } problems:`),
    h("ul", {}, placed.map(({ error, control }) => h("li", {},
      error.loc ? h("code", {}, error.loc) : null, error.loc ? ": " : null, error.msg,
      control ? [" ", button("Go to it", () => control.focus(), { class: "quiet small",
        "aria-label": `Go to ${error.loc}` })] : null))));
}

export async function builderView(root, route) {
  const [segmentId] = route.params;
  const [original, lists, fieldList, segments, canPreview] = await Promise.all([
    segmentId ? get(`/api/v2/segments/${segmentId}/`) : null, directory.lists(),
    directory.fields(), directory.segments(), offers("preview")]);
  const context = { lists, segments, fields: fieldList, builtInCount: BUILT_IN_FIELDS.length,
    selfId: segmentId };
  const model = original
    ? { name: original.name, color: original.color ?? PALETTE[0],
      description: original.description ?? "", contact_list_ids: [...original.contact_list_ids],
      timezone: original.timezone ?? "UTC", rules_json: structuredClone(original.rules_json) }
    : { name: "", color: PALETTE[0], description: "", contact_list_ids: [], timezone: "UTC",
      rules_json: { all: [newCondition("field", context)] } };
  const title = original ? `Edit ${original.name}` : "New segment";
  document.title = `${title} · Segments console`;

  const locations = new Locations();
  const previewBody = h("div", { class: "preview-body", "aria-live": "polite" });
  const saveProblem = h("div");
  const json = h("textarea", { rows: 10, spellcheck: "false", class: "code" });
  let previews = 0;

  const runPreview = debounce(async () => {
    if (!canPreview) return;
    const asked = ++previews;
    if (!model.contact_list_ids.length) {
      locations.removeErrors();
      replace(previewBody, notice("Pick at least one list to see how many contacts match."));
      return;
    }
    previewBody.setAttribute("aria-busy", "true");
    try {
      const answer = await post("/api/v2/segments/preview/", {
        rules_json: cleanRules(model.rules_json), contact_list_ids: model.contact_list_ids,
        timezone: model.timezone || "UTC" });
      if (asked !== previews) return;
      locations.removeErrors();
      replace(previewBody, previewResult(answer, segmentId));
    } catch (error) {
      if (asked !== previews) return;
      showProblem(error, previewBody);
    } finally {
      if (asked === previews) previewBody.removeAttribute("aria-busy");
    }
  }, PREVIEW_DELAY_MS);

  function showProblem(error, where) {
    if (error instanceof ApiError && error.status === 400) {
      replace(where, errorSummary(locations.showErrors(error.errors)));
    } else {
      locations.removeErrors();
      replace(where, errorNotice(error));
    }
  }

  function changed(rulesChanged = true) {
    if (document.activeElement !== json) {
      json.value = JSON.stringify(cleanRules(model.rules_json), null, 2);
    }
    if (rulesChanged) runPreview();
  }

  const editor = new RuleEditor(model.rules_json, context, locations, () => {
    model.rules_json = editor.rules;
    changed(true);
  });

  const name = h("input", { type: "text", value: model.name, required: true,
    autocomplete: "off" });
  name.addEventListener("input", () => { model.name = name.value; });
  const description = h("textarea", { rows: 2, value: model.description });
  description.addEventListener("input", () => { model.description = description.value; });
  const zoneList = h("datalist", { id: uid("zones") },
    timezones().map((z) => h("option", { value: z })));
  const timezone = h("input", { type: "text", value: model.timezone, list: zoneList.id,
    autocomplete: "off", spellcheck: "false" });
  timezone.addEventListener("input", () => {
    model.timezone = timezone.value.trim();
    runPreview();
  });

  const jsonProblem = h("div");
  const applyJson = button("Apply JSON", () => {
    try {
      model.rules_json = JSON.parse(json.value);
      replace(jsonProblem);
      editor.setRules(model.rules_json);
    } catch (error) {
      replace(jsonProblem, notice(`Not valid JSON: ${error.message}`, "error"));
    }
  });

  const detailsForm = h("div", { class: "card" });
  const nameField = field("Name", name);
  const zoneField = field("Timezone (calendar periods and anniversaries)", timezone,
    "An IANA name such as Europe/Amsterdam.");
  const descriptionField = field("Description (optional)", description);
  locations.add("name", name, nameField);
  locations.add("timezone", timezone, zoneField);
  locations.add("description", description, descriptionField);
  add(detailsForm, nameField, descriptionField, colorChoices(model, locations, changed),
    listChoices(model, lists, locations, changed), zoneField, zoneList);
  // The editor re-registers its locations on each render; the form's stay.
  locations.keep();
  editor.render();

  const save = h("button", { type: "submit", class: "primary" },
    original ? "Save changes" : "Create segment");
  const form = h("form", { class: "builder", novalidate: true },
    h("div", { class: "builder-main" }, detailsForm,
      h("section", { "aria-labelledby": "rules-edit-title" },
        h("h2", { id: "rules-edit-title" }, "Rules"), editor.root,
        h("details", { class: "json" }, h("summary", {}, "Rules as JSON"),
          field("rules_json", json, "Edit and apply, or copy into an API call."),
          applyJson, jsonProblem)),
      saveProblem,
      h("div", { class: "actions" }, save,
        h("a", { class: "button", href: segmentId ? `#/segments/${segmentId}` : "#/" },
          "Cancel"))),
    h("aside", { class: "preview card", "aria-labelledby": "preview-title" },
      h("h2", { id: "preview-title" }, "Preview"),
      canPreview ? previewBody : unavailable("Live preview")));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { ...model, rules_json: cleanRules(model.rules_json),
      description: model.description || null, timezone: model.timezone || "UTC" };
    save.disabled = true;
    // The save's answer is what counts now: a preview still pending or in flight would
    // redraw the errors under the user's feet.
    runPreview.cancel();
    previews += 1;
    try {
      let saved;
      if (original) {
        const changes = Object.fromEntries(EDITABLE.filter((key) =>
          JSON.stringify(body[key]) !== JSON.stringify(original[key] ?? null))
          .map((key) => [key, body[key]]));
        saved = Object.keys(changes).length
          ? await patch(`/api/v2/segments/${segmentId}/`, changes) : original;
      } else {
        saved = await post("/api/v2/segments/", body);
      }
      announce(`Saved ${saved.name}`);
      location.hash = `#/segments/${saved.id}`;
    } catch (error) {
      showProblem(error, saveProblem);
      locations.find(error.errors?.[0]?.loc)?.control.focus();
    } finally {
      save.disabled = false;
    }
  });

  add(root, h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Segments"), " › ",
    original ? h("a", { href: `#/segments/${segmentId}` }, original.name) : "New"),
  heading(title), form);
  changed(true);
  return () => runPreview.cancel();
}
