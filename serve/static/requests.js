// Citizen requests held for a person to place: Open311 requests that came without lat/long and
// with an address naming no unit grid. Placing one (a position inside the grids) makes it a case,
// or joins the open case of the same problem; the citizen's token then answers its case number.
// A position read off AMap or Baidu is GCJ-02 or BD-09: the form says which (by default the system of
// the console map's tiles) and the server converts it; the case keeps WGS-84.
import { getJSON, request } from "./api.js";
import { writes } from "./cases.js";
import { events } from "./catalog.js";
import { h, reload, table, when } from "./dom.js";
import { explain, t } from "./i18n.js";
import { COORD_SYSTEMS, tileSystem } from "./map.js";

function placeForm(held) {
  const lat = h("input", { name: "lat", type: "number", step: "any", min: -90, max: 90, required: true, placeholder: "34.72355" });
  const lon = h("input", { name: "lon", type: "number", step: "any", min: -180, max: 180, required: true, placeholder: "113.63091" });
  const shown = tileSystem();
  const system = h("select", { name: "coord_system" },
    COORD_SYSTEMS.map((crs) => h("option", { value: crs, selected: crs === shown }, t(`map.crs.${crs}`))));
  const error = h("span", { class: "error" });
  const form = h("form", { class: "place-form", "data-token": held.token },
    h("label", {}, t("requests.lat"), lat), h("label", {}, t("requests.lon"), lon),
    h("label", {}, t("requests.coord_system"), system),
    h("button", { type: "submit" }, t("requests.place")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await request(`/v1/citizen-requests/${encodeURIComponent(held.token)}/place`, {
        method: "POST",
        json: { lat: Number(lat.value), lon: Number(lon.value), coord_system: system.value },
      });
      reload();
    } catch (failure) {
      error.textContent = explain(failure);
      error.title = failure.message;
    }
  });
  return form;
}

export async function requestsPage() {
  const [held, placed, catalog, caller] = await Promise.all([
    getJSON("/v1/citizen-requests?state=held"),
    getJSON("/v1/citizen-requests?state=placed"),
    events(),
    getJSON("/v1/sessions/current"),
  ]);
  // placing files a case: the roles that file cases (a handler writes cases, but only its own)
  const mayPlace = writes(caller) && caller.actions.includes("file");
  const words = (r) => [h("div", {}, r.fields.address_string || "—"), h("small", {}, r.fields.description || "")];
  return h("section", {},
    h("h1", {}, t("nav.requests")),
    h("p", { class: "hint" }, t("requests.hint")),
    table({ id: "held", class: "list" },
      [t("requests.received"), t("case.event"), t("requests.words"), t("requests.placing")],
      held.map((r) => h("tr", { "data-token": r.token },
        h("td", {}, when(r.received_at)), h("td", {}, catalog.name(r.event)), h("td", {}, words(r)),
        h("td", {}, mayPlace ? placeForm(r) : h("span", { class: "hint" }, t("actions.readonly")))))),
    h("h2", {}, t("requests.placed")),
    table({ id: "placed", class: "list" },
      [t("requests.received"), t("case.event"), t("requests.words"), t("case.number"), t("requests.by")],
      placed.map((r) => h("tr", { "data-token": r.token },
        h("td", {}, when(r.received_at)), h("td", {}, catalog.name(r.event)), h("td", {}, words(r)),
        h("td", {}, h("a", { href: `#/case/${r.case_id}`, class: "mono" }, r.service_request_id)),
        h("td", {}, `${r.placed_by} · ${when(r.placed_at)}`)))));
}
