// Cases: the filtered list with counts and paging, and one case with its photos, flow log and actions.
import { ApiError, getJSON, loadImage, query, request } from "./api.js";
import { departments, events } from "./catalog.js";
import { dot, duration, go, h, number, reload, table, when } from "./dom.js";
import { extensionsPanel } from "./extensions.js";
import { explain, t } from "./i18n.js";
import { AFTER, keep, newStep, send, unsent } from "./outbox.js";
import { detachButton, regroupPanel } from "./regroup.js";

// Every workflow state (serve/cases/workflow.py State), for the filter and the labels.
export const STATES = [
  "reported", "verified", "not_filed", "filed", "dispatched", "handling", "handled",
  "check_passed", "closed", "suspended", "cancelled", "force_closed",
];
export const FINAL = ["not_filed", "closed", "cancelled", "force_closed"];
const FILTERS = ["state", "event", "grid", "street", "overdue", "limit"];
// Before filing (立案) no disposal clock runs: such a case shows no deadline.
const UNFILED = ["reported", "verified", "not_filed"];

function deadline(c) {
  return UNFILED.includes(c.state) ? h("span", { class: "hint deadline-none" }, t("deadline.unfiled")) : when(c.deadline_at);
}
// 双十 and other minute limits: a live countdown to each clock of a filed, open case (browser time);
// none while the case is suspended (挂账): its clock stands still until it is resumed.
function countdown(id, due, c) {
  if (!due || UNFILED.includes(c.state) || FINAL.includes(c.state) || c.state === "suspended") return null;
  const span = h("span", { class: "countdown", id, "data-due": due });
  tick(span);
  return span;
}

function tick(span) {
  const left = Math.round((Date.parse(span.dataset.due) - Date.now()) / 1000);
  const minutes = Math.floor(Math.abs(left) / 60);
  const text = `${minutes}:${String(Math.abs(left) % 60).padStart(2, "0")}`;
  span.textContent = t(left >= 0 ? "countdown.left" : "countdown.late", { t: text });
  span.classList.toggle("overdue", left < 0);
}

setInterval(() => document.querySelectorAll(".countdown").forEach(tick), 1000);

const PAGE_SIZES = ["20", "50", "100"];
// The cursor of the page before each page seen, by filters and cursor (cursors only run forward):
// "previous" goes back one page however the page was reached (next, the browser's back button).
const previousCursor = new Map();

export function stateBadge(state) {
  return h("span", { class: `state state-${state}`, "data-state": state }, t(`state.${state}`));
}

function select(name, value, options) {
  return h(
    "select",
    { name, id: `filter-${name}` },
    options.map(([optionValue, label]) => h("option", { value: optionValue, selected: optionValue === value }, label)),
  );
}

export async function casesPage(_, params) {
  const [catalog, grids] = await Promise.all([events(), getJSON("/v1/grids.geojson")]);
  const filters = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  const cursor = params.get("cursor") || "";
  const limit = filters.limit || PAGE_SIZES[0];
  const page = await getJSON(`/v1/cases${query({ ...filters, limit, cursor })}`);
  const paged = (at) => `${query(filters)}#${at}`;
  if (page.next_cursor) previousCursor.set(paged(page.next_cursor), cursor);

  const cells = grids.features.map((f) => f.properties);
  const streets = [...new Set(cells.map((g) => g.street).filter(Boolean))].sort();
  const form = h(
    "form",
    { class: "filters", id: "filters" },
    h("label", {}, t("case.state"), select("state", filters.state, [["", t("all")], ...STATES.map((s) => [s, t(`state.${s}`)])])),
    h("label", {}, t("case.event"), select("event", filters.event, [["", t("all")], ...catalog.list.map((e) => [e.key, catalog.name(e.key)])])),
    h("label", {}, t("case.street"), select("street", filters.street, [["", t("all")], ...streets.map((s) => [s, s])])),
    h("label", {}, t("case.grid"), select("grid", filters.grid, [["", t("all")], ...cells.map((g) => [g.code, `${g.code} ${g.name}`])])),
    h("label", {}, t("case.overdue"), select("overdue", filters.overdue, [["", t("all")], ["true", t("yes")], ["false", t("no")]])),
    h("label", {}, t("pagesize"), select("limit", limit, [...new Set([limit, ...PAGE_SIZES])].map((n) => [n, n]))),
  );
  form.addEventListener("change", () => go("cases", Object.fromEntries(new FormData(form))));

  const counts = h(
    "div",
    { class: "counts", id: "counts" },
    h("strong", { id: "total", "data-total": page.total }, t("cases.total", { n: page.total })),
    Object.entries(page.by_state).map(([state, n]) =>
      h("a", { href: "#", class: "chip", "data-state": state, onclick: (e) => (e.preventDefault(), go("cases", { ...filters, state })) },
        stateBadge(state), ` ${n}`),
    ),
  );

  const rows = page.items.map((c) =>
    h(
      "tr",
      { "data-case": c.id, class: c.overdue ? "late" : "" },
      h("td", {}, h("a", { href: `#/case/${c.id}`, class: "case-link" }, c.number)),
      h("td", {}, dot(catalog.colour(c.event)), " ", catalog.name(c.event)),
      h("td", {}, stateBadge(c.state), c.overdue ? h("span", { class: "overdue" }, t("overdue")) : null),
      h("td", {}, c.street || "—"),
      h("td", { class: "mono" }, c.grid_code || "—"),
      h("td", {}, when(c.filed_at)),
      h("td", {}, deadline(c)),
      h("td", {}, c.department || "—"),
    ),
  );
  const list = table(
    { id: "cases", class: "list cards" },
    [t("case.number"), t("case.event"), t("case.state"), t("case.street"), t("case.grid"), t("case.filed"), t("case.deadline"), t("case.department")],
    rows,
    t("cases.empty"),
  );

  const pager = h(
    "div",
    { class: "pager" },
    h("button", { type: "button", id: "prev", disabled: !cursor,
      onclick: () => go("cases", { ...filters, cursor: previousCursor.get(paged(cursor)) || "" }) }, t("prev")),
    h("button", { type: "button", id: "next", disabled: !page.next_cursor,
      onclick: () => go("cases", { ...filters, cursor: page.next_cursor }) }, t("next")),
  );
  return h("section", {}, h("h1", {}, t("nav.cases")), form, counts, list, pager);
}

// --- one case ------------------------------------------------------------------------------------

// What each action asks for besides an optional note (the API checks; serve/cases/workflow.py REQUIRED).
const ACTION_FIELDS = {
  correct: ["event"],
  reject: ["note"],
  dispatch: ["department"],
  handle: ["photo"],
  check_pass: ["photo?"],
  check_fail: ["note", "photo?"],
  suspend: ["note"],
  extend: ["extend_by"],
  cancel: ["note"],
  force_close: ["note"],
};
// Any picture the phone offers (HEIC from an iPhone included); the server takes JPEG, PNG, WebP, HEIC
// and says 415 to the rest, which the form shows.
const PHOTOS = "image/*,.heic,.heif";
// The service's upload limit (settings.max_upload_mb, given to the page): a larger photo is refused
// here, before minutes of a slow link are spent sending it.
const MAX_UPLOAD_MB = Number(document.querySelector('meta[name="streetorder-max-upload-mb"]')?.content) || Infinity;

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? "—")];
}

/** Links opening the place in AMap, Baidu and the phone's maps: the service gives each app the
 * position in its own system (typed into AMap or Baidu, the WGS-84 numbers are 300-700 m off). */
function navigation(c) {
  return h("span", { class: "navigate", id: "navigate" },
    ["amap", "baidu", "geo"].map((app) =>
      h("a", { href: c.navigation[app], target: "_blank", rel: "noopener noreferrer", "data-app": app }, t(`navigate.${app}`))));
}

/** One photo with its caption; `tool` (e.g. the detach button) goes under it. */
function photo(evidence, tool = null) {
  const img = h("img", { alt: t(`role.${evidence.role}`), "data-evidence": evidence.id });
  const figure = h(
    "figure",
    { class: "evidence", "data-role": evidence.role },
    img,
    h(
      "figcaption",
      {},
      h("strong", {}, t(`role.${evidence.role}`)),
      ` ${when(evidence.captured_at)}`,
      evidence.confidence != null ? ` · ${t("confidence")} ${number(evidence.confidence, 2)}` : "",
      evidence.boxes.length ? ` · ${t("boxes", { n: evidence.boxes.length })}` : "",
    ),
  );
  const extra = evidence.extra || {};
  // QR payloads the flyer reader decoded (extra.flyers[].qr): shown as text, never as a link
  const qr = (extra.flyers || []).flatMap((flyer) => flyer?.qr || []);
  if (extra.ocr_text || (extra.phones && extra.phones.length) || qr.length) {
    figure.append(
      h(
        "div",
        { class: "ocr" },
        h("div", {}, h("strong", {}, t("ocr.text")), h("pre", { class: "ocr-text" }, extra.ocr_text || "")),
        h("div", {}, h("strong", {}, t("ocr.phones")), " ",
          (extra.phones || []).map((phone) => h("span", { class: "phone" }, phone))),
        qr.length
          ? h("div", {}, h("strong", {}, t("ocr.qr")), qr.map((payload) => h("pre", { class: "qr" }, payload)))
          : null,
      ),
    );
  }
  if (extra.open311) {  // a citizen's request: its words, and the photo link they gave if any
    const link = /^https?:\/\//i.test(extra.open311.media_url || "") ? extra.open311.media_url : null;
    img.replaceWith(h("p", { class: "citizen" }, t("open311"), " ", extra.open311.description || "",
      link ? [" ", h("a", { href: link, rel: "noreferrer", target: "_blank" }, t("media"))] : null));
    return figure;
  }
  // always the drawn view: a JPEG every browser shows (an upload kept as HEIC is not), boxes where any
  const path = `/v1/evidence/${evidence.id}?boxes=true`;
  loadImage(img, path, () => img.replaceWith(h("div", { class: "noimage" }, t("noimage"))));
  if (tool) figure.append(tool);
  return figure;
}

/** The first step's note in the console's language: where the report came from and, for an AI
 * finding, what the model saw (the stored note is the service's English bookkeeping). */
function reportNote(c) {
  const first = c.evidence[0];
  const found = first?.model_version
    ? t("flow.found", { n: first.boxes.length, best: number(first.confidence, 2), model: first.model_version })
    : "";
  return [t(`source.${c.source}`), found ? ` · ${found}` : ""];
}

function flowLog(c) {
  const flow = c.flow;
  const rows = flow.map((step) =>
    h(
      "tr",
      { "data-action": step.action, class: step.overdue ? "late" : "" },
      h("td", {}, when(step.at)),
      h("td", {}, t(`action.${step.action}`)),
      h("td", {}, step.from_state ? stateBadge(step.from_state) : "", " → ", stateBadge(step.to_state)),
      h("td", {}, step.operator),
      h("td", {}, duration(step.seconds_used)),
      h("td", {}, step.overdue ? h("span", { class: "overdue" }, t("overdue")) : t("ontime")),
      h("td", {}, step.action === "report" ? reportNote(c) : step.note || ""),
    ),
  );
  return table(
    { id: "flow", class: "list" },
    [t("flow.at"), t("flow.action"), t("flow.states"), t("flow.operator"), t("flow.used"), t("flow.overdue"), t("flow.note")],
    rows,
  );
}

function actionForm(caseData, etag, action, catalog, depts) {
  const fields = ACTION_FIELDS[action] || [];
  const error = h("p", { class: "error", id: "action-error" });
  const inputs = [];
  if (fields.includes("event")) {
    inputs.push(h("label", {}, t("case.event"), h("select", { name: "event", required: true },
      catalog.list.filter((e) => e.key !== caseData.event).map((e) => h("option", { value: e.key }, catalog.name(e.key))))));
  }
  if (fields.includes("department")) {
    inputs.push(h("label", {}, t("case.department"), h("select", { name: "department" },
      depts.departments.map((d) => h("option", { value: d, selected: d === caseData.suggested_department }, d)))));
  }
  if (fields.includes("extend_by")) {
    inputs.push(h("label", {}, t("extend_by", { unit: catalog.unit(caseData.event) }),
      h("input", { name: "extend_by", type: "number", min: "0.5", step: "0.5", value: "1", required: true })));
  }
  const photoField = fields.includes("photo") || fields.includes("photo?");
  if (photoField) inputs.push(photoInputs(fields.includes("photo") ? t("after_photo") : t("check_photo")));
  inputs.push(h("label", {}, fields.includes("note") ? t("note.required") : t("note.optional"),
    h("textarea", { name: "note", rows: 2, maxlength: 4000, required: fields.includes("note") })));

  const form = h("form", { class: "action-form", id: "action-form", "data-action": action },
    h("h3", {}, t(`action.${action}`)), inputs,
    h("div", { class: "buttons" },
      h("button", { type: "submit", id: "action-submit" }, t("submit")),
      h("button", { type: "button", onclick: () => form.remove() }, t("cancel"))),
    error);
  let step = null; // the photo step last tried: once its photo is sent, a retry with a reason stands on it
  const submit = form.querySelector("#action-submit");
  const busy = (on) => {
    submit.disabled = on;
    form.toggleAttribute("aria-busy", on);
    submit.textContent = on ? t("sending") : t("submit");
  };
  form.addEventListener("change", (event) => {
    if (event.target.name === "photo") error.textContent = ""; // a new photo: the old refusal is moot
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { action };
    for (const name of ["note", "event", "department", "override_reason"]) if (data.get(name)) body[name] = data.get(name);
    if (data.get("extend_by")) body.extend_by = Number(data.get("extend_by"));
    const sent = step?.evidenceId != null; // the photo is on the case: a retry with a reason stands on it
    const file = photoField && !sent ? chosenPhoto(form) : null;
    const refused = !file ? (fields.includes("photo") && !sent ? t("photo.none") : "")
      : file.size > MAX_UPLOAD_MB * 2 ** 20 ? t("photo.too_large", { mb: number(file.size / 2 ** 20, 1), limit: MAX_UPLOAD_MB })
      : "";
    error.textContent = refused;
    error.title = "";
    if (refused) return;
    busy(true);
    if (photoField) {
      if (!sent) step = newStep({ caseId: caseData.id, caseNumber: caseData.number, action, etag, photo: file });
      step.body = body;
    }
    try {
      if (step && !navigator.onLine) throw new ApiError(0, { title: "network", detail: "the phone is offline" });
      if (step) await sendStep(form, step);
      else await request(`/v1/cases/${caseData.id}/transitions`, { method: "POST", json: body, headers: { "If-Match": etag } });
      // a case sent back (回退) has left the department's hands, and its handler's view: to the list
      if (action === "send_back") go("cases");
      else reload();
    } catch (failure) {
      if (step && unsent(failure)) return keepStep(form, step, error, busy);
      error.textContent = explain(failure);
      error.title = failure.message;
      if (failure.problem?.failed && !form.querySelector("#override-reason")) overrideField(form, failure.problem.failed);
      busy(false);
    }
  });
  return form;
}

/** A photo step the link dropped: kept on the phone for the outbox to send, the form giving way to
 * a plain word that it is saved; or, where the phone's storage refuses, said so (nothing was kept)
 * with the form as it was, to be sent again by hand. */
async function keepStep(form, step, error, busy) {
  try {
    const waiting = await keep(step);
    form.replaceWith(h("p", { class: "notice", id: "action-saved" }, t("outbox.saved", { n: waiting })));
  } catch (refusal) {
    error.textContent = t("outbox.full");
    error.title = refusal?.message || "";
    busy(false);
  }
}

/** Two ways to the photo on a phone: the camera, opened at once on the back lens (`capture`), for the
 * photo taken on the spot; or the gallery, for one taken a moment ago. Choosing one clears the other. */
function photoInputs(label) {
  const camera = h("input", { name: "photo", id: "after-photo", type: "file", accept: PHOTOS, capture: "environment" });
  const gallery = h("input", { name: "photo", id: "after-photo-gallery", type: "file", accept: PHOTOS });
  const chosen = h("span", { class: "hint", id: "photo-chosen" }, t("photo.none_yet"));
  const picked = (input, other) => () => {
    other.value = "";
    const file = input.files?.[0];
    chosen.textContent = file ? `${file.name} · ${number(file.size / 2 ** 20, 1)} MB` : t("photo.none_yet");
  };
  camera.addEventListener("change", picked(camera, gallery));
  gallery.addEventListener("change", picked(gallery, camera));
  return h("div", { class: "photo-inputs" },
    h("span", { class: "photo-label" }, label),
    h("div", { class: "photo-picks" },
      h("label", { class: "photo-pick", for: "after-photo" }, t("photo.take"), camera),
      h("label", { class: "photo-pick", for: "after-photo-gallery" }, t("photo.gallery"), gallery)),
    chosen,
    h("progress", { id: "upload-progress", max: 1, value: 0, hidden: true }));
}

function chosenPhoto(form) {
  return [...form.querySelectorAll('input[name="photo"]')].map((input) => input.files?.[0]).find(Boolean) || null;
}

/** Send the photo step (its photo as evidence, role after, then the step), the share of the photo
 * sent shown on the form while it goes. */
async function sendStep(form, step) {
  const progress = form.querySelector("#upload-progress");
  const submit = form.querySelector("#action-submit");
  progress.hidden = false;
  try {
    await send(step, (share) => {
      progress.value = share;
      submit.textContent = t("uploading", { p: Math.round(share * 100) });
    });
  } finally {
    progress.hidden = true;
  }
}

/** A failed after-photo check (handle, check_pass) blocks the step unless a person gives a reason
 * to accept the photo anyway: the field for it, naming the checks that failed. */
function overrideField(form, failed) {
  const names = failed.map((name) => t(`check.${name}`)).join(t("list.sep"));
  // the photo is sent: the retry stands on it
  for (const input of form.querySelectorAll('input[name="photo"]')) input.disabled = true;
  form.querySelector(".buttons").before(
    h("label", { class: "override" }, t("override.reason", { failed: names }),
      h("textarea", { name: "override_reason", id: "override-reason", rows: 2, maxlength: 2000, required: true })));
}

/** The actions the caller may take on the case now: the state's, and only with a key (or a
 * person's role) that may change cases. */
function actionsFor(c, caller) {
  if (!writes(caller)) return [];
  return c.allowed_actions.filter((action) => caller.actions.includes(action));
}

/** Whether the caller (GET /v1/sessions/current) may change anything: a key with `cases:write` or a
 * person whose role has it; a read-only key or a leader may not. */
export function writes(caller) {
  return caller.scopes.some((scope) => scope === "cases:write" || scope === "admin");
}

export async function casePage(caseId) {
  const [response, catalog, depts, caller] = await Promise.all([
    request(`/v1/cases/${Number(caseId)}`), events(), departments(), getJSON("/v1/sessions/current"),
  ]);
  const c = await response.json();
  const actions = actionsFor(c, caller);
  const etag = response.headers.get("ETag");

  const facts = h(
    "dl",
    { class: "facts" },
    fact(t("case.event"), [catalog.name(c.event), h("small", {}, ` ${catalog.codes(c.event)}`)]),
    fact(t("case.state"), [stateBadge(c.state), c.overdue ? h("span", { class: "overdue" }, t("overdue")) : null]),
    fact(t("case.source"), t(`source.${c.source}`)),
    fact(t("case.ai_review"), c.ai_review ? t(`review.${c.ai_review}`) : "—"),
    fact(t("case.address"), c.address),
    fact(t("case.grid"), c.grid_code ? h("a", { href: `#/cases?grid=${c.grid_code}`, class: "mono" }, c.grid_code) : "—"),
    fact(t("case.street"), [c.street || "—", c.community ? ` / ${c.community}` : ""]),
    fact(t("case.position"), [h("span", { id: "position" }, `${number(c.lat, 5)}, ${number(c.lon, 5)}`), navigation(c)]),
    fact(t("case.department"), c.department || `${t("suggested")}: ${c.suggested_department}`),
    fact(t("case.limit"), catalog.limit(c.event)),
    fact(t("case.filed"), when(c.filed_at)),
    fact(t("case.deadline"), [deadline(c), " ", countdown("countdown-deadline", c.deadline_at, c)]),
    c.on_site_due_at
      ? fact(t("case.on_site"), [when(c.on_site_due_at), " ", countdown("countdown-on-site", c.on_site_due_at, c)])
      : null,
    fact(t("case.last_seen"), when(c.last_seen_at)),
    fact(t("case.closed"), when(c.closed_at)),
    fact(t("case.description"), c.description),
  );

  const panel = h("div", { id: "action-panel" });
  const buttons = h(
    "div",
    { class: "actions", id: "actions" },
    actions.length
      ? actions.map((action) =>
          h("button", {
            type: "button",
            class: `action action-${action}`,
            "data-action": action,
            onclick: () => panel.replaceChildren(actionForm(c, etag, action, catalog, depts)),
          }, t(`action.${action}`)))
      : h("span", { class: "hint", id: "actions-hint" },
          t(c.allowed_actions.length ? "actions.readonly" : FINAL.includes(c.state) ? "actions.none" : "actions.notyours")),
  );

  const regroup = writes(caller) ? c.evidence_actions : [];
  // a case keeps one photo at least; an after-photo a handling stood on stays with it
  const detachable = (e) => regroup.includes("detach") && c.evidence.length > 1 && !e.extra?.handled_at;
  const shown = (e) => photo(e, detachable(e) ? detachButton(c, etag, e) : null);
  const before = c.evidence.filter((e) => e.role !== AFTER);
  const after = c.evidence.filter((e) => e.role === AFTER);
  const photos = h(
    "div",
    { class: "beforeafter", id: "evidence" },
    h("div", { class: "column", id: "before" }, h("h3", {}, t("before")),
      before.length ? before.map(shown) : h("p", { class: "hint" }, t("none"))),
    h("div", { class: "column", id: "after" }, h("h3", {}, t("after")),
      after.length ? after.map(shown) : h("p", { class: "hint" }, t("none"))),
  );

  return h(
    "section",
    { "data-case": c.id, "data-version": c.version },
    h("p", {}, h("a", { href: "#/cases" }, `← ${t("nav.cases")}`)),
    h("h1", {}, t("case.title", { number: c.number }), " ", stateBadge(c.state)),
    h("div", { class: "case-top" }, facts,
      h("div", { class: "workflow" }, h("h2", {}, t("actions")), buttons, panel, extensionsPanel(c, catalog.unit(c.event)))),
    h("h2", {}, t("evidence")),
    regroupPanel(c, etag, regroup),
    photos,
    h("h2", {}, t("flow")),
    flowLog(c),
  );
}
