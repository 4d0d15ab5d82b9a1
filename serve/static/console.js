// The console's shell: sign-in, navigation between pages (#/page/arg?filters), language toggle.
import { ApiError, forgetAnswers, offline, releaseImages, request, session } from "./api.js";
import { camerasPage } from "./cameras.js";
import { casePage, casesPage } from "./cases.js";
import { day, h, when } from "./dom.js";
import { explain, lang, setLang, t } from "./i18n.js";
import { mapPage } from "./map.js";
import { flush as sendWaiting, showOutbox } from "./outbox.js";
import { rankingsPage } from "./rankings.js";
import { requestsPage } from "./requests.js";
import { supervisionPage } from "./supervision.js";

const PAGES = {
  cases: casesPage,
  case: casePage,
  map: mapPage,
  rankings: rankingsPage,
  supervision: supervisionPage,
  cameras: camerasPage,
  requests: requestsPage,
};
const view = document.getElementById("view");
const REPLACED = "streetorder.replaced"; // the name another tab's sign-in made this tab act as
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
  document.getElementById("nav").hidden = !session.signedIn;
  document.getElementById("signout").hidden = !session.signedIn;
  const who = document.getElementById("who");
  const person = session.person;
  who.hidden = !person;
  who.textContent = person ? `${person.name} · ${t(`role.${person.role}`)}${person.department ? ` · ${person.department}` : ""}` : "";
  if (person) who.dataset.role = person.role;
  else delete who.dataset.role;
}

/** The person the service now sees behind this browser's session cookie. Another tab's sign-in
 * replaces that cookie (tabs share it), and this tab would go on naming the earlier person while
 * the service answers as the new one: the tab takes on the person the service sees, and returns
 * them so the page can say so. A session ended elsewhere is a 401, handled as any. */
async function recheckPerson() {
  const stored = session.person;
  if (!stored) return;
  const current = await (await request("/v1/sessions/current")).json();
  if (current.username === stored.username && current.csrf_token === stored.csrf_token) return;
  session.setPerson(current);
  translateShell();
  if (current.username !== stored.username) sessionStorage.setItem(REPLACED, current.name);
}

/** Says, on every page until read, that another tab's sign-in changed who this tab acts as. */
function replacedNotice() {
  const name = sessionStorage.getItem(REPLACED);
  if (!name) return null;
  const close = h("button", { type: "button" }, t("session.replaced.ok"));
  const notice = h("p", { class: "notice", id: "session-notice" }, t("session.replaced", { name }), " ", close);
  close.addEventListener("click", () => {
    sessionStorage.removeItem(REPLACED);
    notice.remove();
  });
  return notice;
}

/** Says that the page shows answers kept from an earlier visit (no signal): from when. */
function staleNotice() {
  if (!offline.since) return null;
  const at = when(offline.since);
  const time = day(offline.since) === day(new Date().toISOString()) ? at.slice(11) : at;
  return h("p", { class: "notice stale", id: "stale-notice" }, t("offline.stale", { time }));
}

function show(page, node) {
  view.dataset.page = page;
  view.dataset.state = "ready";
  view.replaceChildren(node);
}

/** Draw the page of the current hash; a newer navigation wins over a slower older one. */
export async function render() {
  const ticket = ++rendering;
  const focused = document.activeElement?.id;
  releaseImages();
  translateShell();
  showOutbox();
  if (!session.signedIn) return show("signin", signIn());
  sendWaiting(); // steps kept on the phone go first: on load, after a sign-in, at each page
  const { page, arg, params } = route();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === page || (page === "case" && link.dataset.page === "cases"));
  }
  view.dataset.state = "loading";
  offline.since = null;
  try {
    await recheckPerson();
    const node = await PAGES[page](arg, params);
    for (const notice of [replacedNotice(), staleNotice()]) if (notice) node.prepend(notice);
    if (ticket === rendering) {
      show(page, node);
      refocus(focused);
    }
  } catch (error) {
    if (ticket !== rendering) return;
    if (error instanceof ApiError && error.status === 401) {
      session.clear();
      forgetAnswers();
      translateShell();
      return show("signin", signIn(t("signin.expired")));
    }
    show(page, h("div", { class: "problem" }, h("h2", {}, t("error")), h("p", { title: error.message }, explain(error))));
  }
}

/** A page drawn again in place of itself keeps the keyboard's place: a filter chosen with the arrow
 * keys redraws the list at each key, and the next key must reach the same field, not the page. */
function refocus(id) {
  if (id && document.activeElement === document.body) document.getElementById(id)?.focus();
}

function signIn(message) {
  const note = h("p", { class: "error", id: "signin-error" }, message || "");
  const failed = (error, bad) => {
    const why =
      error.status === 403 ? t("signin.scope")
      : error.status === 401 ? bad
      : error.status === 429 ? t("signin.throttled")
      : t("error");
    note.textContent = `${why} (${error.message})`;
  };

  const username = h("input", { id: "username", autocomplete: "username", required: true, maxlength: 64 });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const personForm = h(
    "form",
    { class: "signin-part", id: "signin-person" },
    h("label", { for: "username" }, t("signin.username")),
    username,
    h("label", { for: "password" }, t("signin.password")),
    password,
    h("button", { type: "submit" }, t("signin.submit")),
  );
  personForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await request("/v1/sessions", {
        method: "POST",
        key: null,
        json: { username: username.value.trim(), password: password.value },
      });
      session.setPerson(await answer.json());
      sessionStorage.removeItem(REPLACED);
    } catch (error) {
      return failed(error, t("signin.wrong"));
    }
    render();
  });

  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true, placeholder: "so_…" });
  const keyForm = h(
    "form",
    { class: "signin-part", id: "signin" },
    h("label", { for: "key" }, t("signin.key")),
    input,
    h("button", { type: "submit" }, t("signin.submit.key")),
    h("p", { class: "hint" }, t("signin.hint")),
  );
  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    try {
      await request("/v1/cases?limit=1", { key });
    } catch (error) {
      return failed(error, t("signin.bad"));
    }
    session.set(key);
    render();
  });
  return h(
    "div",
    { class: "signin" },
    h("h1", {}, t("brand")),
    personForm,
    note,
    h("p", { class: "or" }, t("signin.with_key")),
    keyForm,
  );
}

async function signOut() {
  if (session.person) {
    await request("/v1/sessions/current", { method: "DELETE" }).catch(() => null); // ended already: fine
  }
  session.clear();
  await forgetAnswers();
  sessionStorage.removeItem(REPLACED);
  history.replaceState(null, "", "#/cases"); // no hashchange: one render, not two racing
  render();
}

document.getElementById("lang").addEventListener("click", () => {
  setLang(lang() === "zh" ? "en" : "zh");
  render();
});
document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", render);
window.addEventListener("online", () => offline.since && render()); // kept answers give way to fresh ones
// The service worker keeps the console for a reload with no signal; browsers offer it on HTTPS and
// on localhost only (navigator.serviceWorker is absent elsewhere: the console works without it).
navigator.serviceWorker?.register("/sw.js").catch(() => null);
document.addEventListener("visibilitychange", async () => {
  if (document.visibilityState !== "visible" || !session.person) return;
  const stored = session.person.username;
  const current = await request("/v1/sessions/current").then((answer) => answer.json()).catch(() => null);
  if (!current || current.username !== stored) render(); // draws the sign-in page, or names the new person
});
render();
