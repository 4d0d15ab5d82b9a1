// Extensions (延期) on the case page: a handler or dispatcher asks for more time; a person of another
// approving role (a dispatcher for a handler's request, an admin for a dispatcher's) decides. The
// server decides who may; the page only offers the buttons that can succeed.
import { request, session } from "./api.js";
import { h, reload, table, when } from "./dom.js";
import { explain, t } from "./i18n.js";

const EXTENDABLE = ["dispatched", "handling", "suspended"];
const ASKERS = ["handler", "dispatcher"];
const DECIDERS = ["dispatcher", "admin"];

function askForm(caseData, unit) {
  const error = h("p", { class: "error" });
  const form = h("form", { class: "action-form", id: "extension-form" },
    h("h3", {}, t("extension.ask")),
    h("label", {}, t("extend_by", { unit }),
      h("input", { name: "extend_by", type: "number", min: "0.5", step: "0.5", value: "1", required: true })),
    h("label", {}, t("note.required"), h("textarea", { name: "note", rows: 2, maxlength: 4000, required: true })),
    h("div", { class: "buttons" },
      h("button", { type: "submit", id: "extension-submit" }, t("submit")),
      h("button", { type: "button", onclick: () => form.remove() }, t("cancel"))),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await request(`/v1/cases/${caseData.id}/extensions`, {
        method: "POST",
        json: { extend_by: Number(data.get("extend_by")), note: data.get("note") },
      });
      reload();
    } catch (failure) {
      error.textContent = explain(failure);
    }
  });
  return form;
}

async function decide(request_id, approve, error) {
  try {
    await request(`/v1/extensions/${request_id}/decision`, { method: "POST", json: { approve } });
    reload();
  } catch (failure) {
    error.textContent = explain(failure);
  }
}

/** The case's extension requests with the decision buttons, and the button to ask for one. */
export function extensionsPanel(caseData, unit) {
  const role = session.role;
  const pending = caseData.extensions.some((e) => e.state === "pending");
  const panel = h("div", { id: "extension-panel" });
  const error = h("p", { class: "error", id: "extension-error" });
  const mayDecide = (e) => e.state === "pending" && (role === null || DECIDERS.includes(role))
    && e.requested_by !== session.person?.name && e.requester_role !== role;
  const rows = caseData.extensions.map((e) => h("tr", { "data-extension": e.id, "data-state": e.state },
    h("td", {}, when(e.requested_at)), h("td", {}, e.requested_by), h("td", {}, `${e.extend_by} ${unit}`),
    h("td", {}, e.note), h("td", {}, t(`extension.${e.state}`)), h("td", {}, e.decided_by || "—"),
    h("td", {}, mayDecide(e)
      ? [h("button", { type: "button", class: "approve", onclick: () => decide(e.id, true, error) }, t("extension.approve")),
         " ",
         h("button", { type: "button", class: "refuse", onclick: () => decide(e.id, false, error) }, t("extension.refuse"))]
      : "")));
  const ask = ASKERS.includes(role) && EXTENDABLE.includes(caseData.state) && !pending
    ? h("button", { type: "button", id: "ask-extension", onclick: () => panel.replaceChildren(askForm(caseData, unit)) },
        t("extension.ask"))
    : null;
  if (!caseData.extensions.length && !ask) return null;
  return h("div", { class: "extensions" },
    h("h2", {}, t("extensions")),
    caseData.extensions.length
      ? table({ id: "extensions", class: "list" },
          [t("extension.at"), t("extension.by"), t("extension.amount"), t("flow.note"), t("case.state"),
           t("extension.decided_by"), ""], rows)
      : null,
    ask, panel, error);
}
