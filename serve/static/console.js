// The console's shell: sign-in, navigation between pages (#/page/arg?filters), language toggle.
import { ApiError, releaseImages, request, session } from "./api.js";
import { camerasPage } from "./cameras.js";
import { casePage, casesPage } from "./cases.js";
import { h } from "./dom.js";
import { explain, lang, setLang, t } from "./i18n.js";
import { mapPage } from "./map.js";
import { rankingsPage } from "./rankings.js";
import { requestsPage } from "./requests.js";

const PAGES = {
  cases: casesPage,
  case: casePage,
  map: mapPage,
  rankings: rankingsPage,
  cameras: camerasPage,
  requests: requestsPage,
};
const view = document.getElementById("view");
let rendering = 0;

function route() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, arg] = path.split("/");
  return { page: PAGES[page] ? page : "cases", arg, params: new URLSearchParams(search || "") };
}

function translateShell() {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  document.title = t("brand");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.getElementById("lang").textContent = t("lang.other");
  document.getElementById("nav").hidden = !session.key;
  document.getElementById("signout").hidden = !session.key;
}

function show(page, node) {
  view.dataset.page = page;
  view.dataset.state = "ready";
  view.replaceChildren(node);
}

/** Draw the page of the current hash; a newer navigation wins over a slower older one. */
export async function render() {
  const ticket = ++rendering;
  releaseImages();
  translateShell();
  if (!session.key) return show("signin", signIn());
  const { page, arg, params } = route();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === page || (page === "case" && link.dataset.page === "cases"));
  }
  view.dataset.state = "loading";
  try {
    const node = await PAGES[page](arg, params);
    if (ticket === rendering) show(page, node);
  } catch (error) {
    if (ticket !== rendering) return;
    if (error instanceof ApiError && error.status === 401) {
      session.clear();
      translateShell();
      return show("signin", signIn(t("signin.expired")));
    }
    show(page, h("div", { class: "problem" }, h("h2", {}, t("error")), h("p", { title: error.message }, explain(error))));
  }
}

function signIn(message) {
  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true, placeholder: "so_…" });
  const note = h("p", { class: "error", id: "signin-error" }, message || "");
  const form = h(
    "form",
    { class: "signin", id: "signin" },
    h("h1", {}, t("brand")),
    h("label", { for: "key" }, t("signin.key")),
    input,
    h("button", { type: "submit" }, t("signin.submit")),
    note,
    h("p", { class: "hint" }, t("signin.hint")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    try {
      await request("/v1/cases?limit=1", { key });
    } catch (error) {
      const why = error.status === 403 ? t("signin.scope") : error.status === 401 ? t("signin.bad") : explain(error);
      note.textContent = why;
      note.title = error.message;
      return;
    }
    session.set(key);
    render();
  });
  return form;
}

document.getElementById("lang").addEventListener("click", () => {
  setLang(lang() === "zh" ? "en" : "zh");
  render();
});
document.getElementById("signout").addEventListener("click", () => {
  session.clear();
  location.hash = "#/cases";
  render();
});
window.addEventListener("hashchange", render);
render();
