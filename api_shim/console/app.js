// The console's shell: the API key form, the router (views by URL fragment), focus on
// navigation. Views are functions (main, route) -> cleanup.

import { ApiError, apiKey, get } from "./api.js";
import { builderView } from "./builder.js";
import { button, field, h, replace } from "./dom.js";
import { explainView } from "./explain.js";
import { listView } from "./list.js";
import { segmentView } from "./segment.js";
import { errorNotice, heading, notice } from "./ui.js";

const ROUTES = [
  [/^\/?$/, listView],
  [/^\/new$/, builderView],
  [/^\/segments\/([0-9a-f-]{36})$/, segmentView],
  [/^\/segments\/([0-9a-f-]{36})\/edit$/, builderView],
  [/^\/segments\/([0-9a-f-]{36})\/explain(?:\/(.+))?$/, explainView],
];

const main = document.getElementById("main");
let cleanup = null;
let firstRender = true;
let renders = 0;

function currentRoute() {
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  for (const [pattern, view] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      const params = match.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
      return { view, params, query: new URLSearchParams(search), path };
    }
  }
  return null;
}

function renderSession() {
  const session = document.getElementById("session");
  if (!apiKey.get()) {
    replace(session);
    return;
  }
  replace(session, button("Forget key", () => {
    apiKey.clear();
    render();
  }, { class: "quiet" }));
}

function keyForm(message) {
  const input = h("input", { type: "password", name: "api-key", autocomplete: "off",
    spellcheck: "false", required: true });
  const problem = h("div", { class: "form-problem" });
  if (message) problem.append(notice(message, "error"));
  const form = h("form", { class: "key-form card" },
    heading("Sign in with an API key"),
    h("p", {}, "The console calls the service's HTTP API with this key, as any client does: ",
      "you see what the key's account and scopes allow. It is kept in this browser tab only ",
      "(session storage) and sent as the X-API-Key header; closing the tab forgets it."),
    field("API key", input, "Create one with: segments account create NAME, or segments key create."),
    problem,
    h("button", { type: "submit", class: "primary" }, "Use this key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    apiKey.set(input.value.trim());
    try {
      await get("/api/v2/segments/?page_size=1");
      render();
    } catch (error) {
      apiKey.clear();
      const refused = error instanceof ApiError && error.status === 401;
      replace(problem, refused
        ? notice("The service refused this key (401). Check it and paste it again.", "error")
        : errorNotice(error));
      input.focus();
    }
  });
  return [form, input];
}

async function render(message) {
  cleanup?.();
  cleanup = null;
  renderSession();
  replace(main);
  if (!apiKey.get()) {
    document.title = "Sign in · Segments console";
    const [form, input] = keyForm(message);
    main.append(form);
    input.focus();
    firstRender = false; // after signing in, focus goes to the page's heading
    return;
  }
  const route = currentRoute();
  if (!route) {
    replace(main, heading("Not found"), h("p", {}, h("a", { href: "#/" }, "Back to segments")));
    return;
  }
  // Each view renders into a container of its own: a view still loading when the user
  // navigates on writes into a detached element, and its polling is stopped at once.
  const render_ = ++renders;
  const container = h("div", { class: "view" });
  main.append(container);
  let stop = null;
  try {
    stop = (await route.view(container, route)) ?? null;
  } catch (error) {
    container.append(errorNotice(error));
  }
  if (render_ !== renders) {
    stop?.();
    return;
  }
  cleanup = stop;
  if (!firstRender || location.hash) main.querySelector("h1")?.focus();
  firstRender = false;
}

document.addEventListener("console:unauthorized", () => {
  apiKey.clear();
  render("The service refused the key (401): it may have been revoked. Paste a valid key.");
});
window.addEventListener("hashchange", () => render());
render();
