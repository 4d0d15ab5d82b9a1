// Evidence management on the case page: detach one photo, split the case, merge another case in
// (serve/api/routers/regrouping.py). Each asks a reason, which the flow log keeps.
import { getJSON, query, request } from "./api.js";
import { h, reload, when } from "./dom.js";
import { explain, t } from "./i18n.js";

const AFTER = "after";
// States whose case may still be cancelled, i.e. merged into another (serve/cases/workflow.py).
const MERGEABLE = ["reported", "verified", "filed", "dispatched", "handling", "suspended"];

/** A form with the step's own fields and a required reason; `send(data)` posts it. */
function reasonForm(id, title, fields, send) {
  const error = h("p", { class: "error", id: `${id}-error` });
  const form = h("form", { class: "action-form regroup-form", id },
    h("h3", {}, title), fields,
    h("label", {}, t("regroup.reason"), h("textarea", { name: "reason", rows: 2, maxlength: 2000, required: true })),
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "regroup-submit" }, t("submit")),
      h("button", { type: "button", onclick: () => form.remove() }, t("cancel"))),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector(".regroup-submit");
    submit.disabled = true;
    try {
      await send(new FormData(form));
    } catch (failure) {
      error.textContent = explain(failure);
      error.title = failure.message;
      submit.disabled = false;
    }
  });
  return form;
}

async function post(path, etag, json) {
  return (await request(path, { method: "POST", json, headers: { "If-Match": etag } })).json();
}

/** The button under one photo that takes it off the case, with its reason form. */
export function detachButton(c, etag, evidence) {
  const button = h("button", {
    type: "button",
    class: "detach",
    "data-evidence": evidence.id,
    onclick: () => {
      if (document.getElementById(`detach-${evidence.id}`)) return;
      button.after(reasonForm(`detach-${evidence.id}`, t("regroup.detach"), [], async (data) => {
        await post(`/v1/cases/${c.id}/evidence/${evidence.id}/detach`, etag, { reason: data.get("reason") });
        reload();
      }));
    },
  }, t("regroup.detach"));
  return button;
}

function splitForm(c, etag) {
  const choices = c.evidence.filter((e) => e.role !== AFTER).map((e) =>
    h("label", { class: "choice" },
      h("input", { type: "checkbox", name: "evidence", value: e.id }),
      ` #${e.id} ${t(`role.${e.role}`)} ${when(e.captured_at)}`));
  return reasonForm("split-form", t("regroup.split"), [h("p", {}, t("regroup.split.pick")), choices], async (data) => {
    const created = await post(`/v1/cases/${c.id}/split`, etag, {
      evidence_ids: data.getAll("evidence").map(Number),
      reason: data.get("reason"),
    });
    location.hash = `#/case/${created.id}`;
  });
}

async function mergeForm(c, etag) {
  const open = await getJSON(`/v1/cases${query({ event: c.event, state: MERGEABLE, limit: 200 })}`);
  const others = open.items.filter((other) => other.id !== c.id);
  if (!others.length) return h("p", { class: "hint", id: "merge-none" }, t("regroup.merge.none"));
  const pick = h("select", { name: "case_id", id: "merge-case", required: true },
    others.map((other) => h("option", { value: other.id }, `${other.number} · ${other.address || ""}`)));
  return reasonForm("merge-form", t("regroup.merge"), [h("label", {}, t("regroup.merge.pick"), pick)], async (data) => {
    await post(`/v1/cases/${c.id}/merge`, etag, { case_id: Number(data.get("case_id")), reason: data.get("reason") });
    reload();
  });
}

/** Split and merge buttons of the case (the evidence changes the caller may make now). */
export function regroupPanel(c, etag, offered) {
  const panel = h("div", { id: "regroup-panel" });
  const buttons = [];
  if (offered.includes("split") && c.evidence.filter((e) => e.role !== AFTER).length > 1) {
    buttons.push(h("button", { type: "button", class: "regroup", "data-step": "split",
      onclick: () => panel.replaceChildren(splitForm(c, etag)) }, t("regroup.split")));
  }
  if (offered.includes("merge")) {
    buttons.push(h("button", { type: "button", class: "regroup", "data-step": "merge",
      onclick: async () => panel.replaceChildren(await mergeForm(c, etag)) }, t("regroup.merge")));
  }
  return buttons.length ? h("div", { id: "regroup" }, h("div", { class: "actions" }, buttons), panel) : null;
}
