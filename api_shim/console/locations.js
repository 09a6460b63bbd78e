// Where each input location of the API's errors is on the page: controls register under the
// location they edit ("rules_json.any[0].all[2].value"); an error is shown next to the control
// of its location, or of the nearest enclosing one (value[3] -> value -> the condition).

import { h, uid } from "./dom.js";

const LAST_STEP = /(\.[^.[\]]+|\[\d+\])$/;

export class Locations {
  constructor() {
    this.places = new Map();
    this.shown = [];
  }

  /** Keep the places registered so far across clear() (a form around a re-rendered part). */
  keep() {
    this.kept = new Map(this.places);
  }

  clear() {
    this.places = new Map(this.kept ?? []);
  }

  /** `control` is focused to go to the error; the message goes after `anchor`. */
  add(loc, control, anchor = control) {
    control.dataset.loc ??= loc; // the first (innermost) location a control edits
    this.places.set(loc, { control, anchor });
  }

  find(loc) {
    let at = loc ?? "";
    while (at) {
      if (this.places.has(at)) return this.places.get(at);
      const shorter = at.replace(LAST_STEP, "");
      if (shorter === at) break;
      at = shorter;
    }
    return null;
  }

  removeErrors() {
    for (const { control, message } of this.shown) {
      message.remove();
      control.removeAttribute("aria-invalid");
      const ids = (control.getAttribute("aria-describedby") ?? "").split(" ")
        .filter((id) => id && id !== message.id);
      if (ids.length) control.setAttribute("aria-describedby", ids.join(" "));
      else control.removeAttribute("aria-describedby");
    }
    this.shown = [];
  }

  /** Shows each error next to its place; returns [{error, control|null}] for a summary. */
  showErrors(errors) {
    this.removeErrors();
    return errors.map((error) => {
      const place = this.find(error.loc);
      if (!place) return { error, control: null };
      const message = h("p", { class: "error-msg", id: uid("err"), dataset: {
        errorLoc: error.loc ?? "" } }, h("span", { class: "visually-hidden" }, "Error: "),
      error.msg, error.loc ? h("code", { class: "loc" }, ` ${error.loc}`) : null);
      place.anchor.after(message);
      place.control.setAttribute("aria-invalid", "true");
      const described = place.control.getAttribute("aria-describedby");
      place.control.setAttribute("aria-describedby", described ? `${described} ${message.id}`
        : message.id);
      this.shown.push({ control: place.control, message });
      return { error, control: place.control };
    });
  }
}
