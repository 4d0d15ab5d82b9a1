// Supervision (督查督办): the 挂牌督办 items (flag a worst spot, reassign, close after a check), the
// monthly district ranking, inspector metrics, and the problem ledger (问题台账) as .xlsx / .csv.
// Buttons appear for the roles the API lets act (serve/cases/supervision.py); a key sees them when it
// may write (`cases:write`): a read-only key's form would only be refused.
import { download, getJSON, query, request, session } from "./api.js";
import { writes } from "./cases.js";
import { departments } from "./catalog.js";
import { clockInput, fromClockInput, go, h, number, percent, reload, table, when } from "./dom.js";
import { explain, t } from "./i18n.js";
import { rateBar } from "./rankings.js";

const SUPERVISORS = ["dispatcher", "admin"];
const CHECKERS = ["inspector", "dispatcher", "admin"];
const may = (caller, roles) => writes(caller) && (session.role === null || roles.includes(session.role));

function failed(error, failure) {
  const open = failure.problem?.open_cases;
  error.textContent = open ? t("supervision.still_open", { numbers: open.join(t("list.sep")) }) : explain(failure);
  error.title = failure.message;
}

/** The department the chosen grids' open cases are all routed to, or "" (none known, or several):
 * the supervisor then chooses one, rather than submitting whichever department is listed first. */
function routedTo(chosen, routed, depts) {
  const found = new Set(chosen.map((code) => routed.get(code) || ""));
  const [only] = found;
  return found.size === 1 && depts.includes(only) ? only : "";
}

/** Flag a worst spot (one grid; the worst one preselected) or a road section (several grids and a
 * name), with a department (the one the spot's cases are routed to), a deadline and a reason.
 * Grids with open cases are listed first. */
function flagForm(spots, grids, depts) {
  const open = new Map(spots.map((s) => [s.grid_code, s.open_cases]));
  const routed = new Map(spots.map((s) => [s.grid_code, s.department]));
  const codes = [...open.keys(), ...grids.features.map((f) => f.properties.code).filter((c) => !open.has(c))];
  const names = new Map(grids.features.map((f) => [f.properties.code, f.properties.name || ""]));
  const error = h("p", { class: "error", id: "flag-error" });
  const deadline = clockInput(new Date(Date.now() + 3 * 86400000)); // in three days, on the bureau's clock
  const chooser = h("select", { name: "grid", required: true, multiple: true, size: 6 },
    codes.map((code, i) => h("option", { value: code, selected: i === 0 && open.has(code) },
      `${code} · ${names.get(code) || ""} (${open.get(code) || 0})`)));
  const department = h("select", { name: "department", id: "flag-department", required: true },
    h("option", { value: "" }, t("supervision.choose_department")),
    depts.departments.map((d) => h("option", { value: d }, d)));
  const preselect = () => {
    department.value = routedTo([...chooser.selectedOptions].map((o) => o.value), routed, depts.departments);
  };
  chooser.addEventListener("change", preselect);
  preselect();
  const form = h("form", { class: "action-form", id: "flag-form" },
    h("h3", {}, t("supervision.flag")),
    h("label", {}, t("supervision.spot"), chooser),
    h("label", {}, t("supervision.section_name"), h("input", { name: "name", id: "flag-name", maxlength: 128 })),
    h("label", {}, t("case.department"), department),
    h("label", {}, t("supervision.deadline"), h("input", { name: "deadline", type: "datetime-local", value: deadline, required: true })),
    h("label", {}, t("supervision.reason"), h("textarea", { name: "reason", rows: 2, maxlength: 4000, required: true })),
    h("div", { class: "buttons" }, h("button", { type: "submit", id: "flag-submit" }, t("submit"))),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await request("/v1/supervision", {
        method: "POST",
        json: {
          grids: data.getAll("grid"),
          name: data.get("name") || null,
          department: data.get("department"),
          deadline_at: fromClockInput(data.get("deadline")),
          reason: data.get("reason"),
        },
      });
      reload();
    } catch (failure) {
      failed(error, failure);
    }
  });
  return form;
}

function closeForm(item, error) {
  const form = h("form", { class: "inline-form close-form" },
    h("input", { name: "note", required: true, maxlength: 4000, placeholder: t("supervision.check_note") }),
    h("button", { type: "submit", class: "close-submit" }, t("supervision.close")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await request(`/v1/supervision/${item.id}/close`, { method: "POST", json: { note: new FormData(form).get("note") } });
      reload();
    } catch (failure) {
      failed(error, failure);
    }
  });
  return form;
}

function itemsTable(items, caller) {
  const error = h("p", { class: "error", id: "supervision-error" });
  const rows = items.map((item) => h("tr",
    { "data-item": item.id, "data-kind": item.kind, "data-state": item.state, "data-open": item.open_cases, class: item.overdue ? "late" : "" },
    h("td", {}, item.name, ` (${t(`kind.${item.kind}`)})`, h("br"), h("small", { class: "mono" }, item.grids.join(", "))),
    h("td", {}, item.department),
    h("td", {}, when(item.deadline_at), item.overdue ? [" ", h("span", { class: "overdue" }, t("overdue"))] : ""),
    h("td", {}, item.reason),
    h("td", {}, `${item.opened_by} · ${when(item.opened_at)}`),
    h("td", { class: "open-cases" }, item.state === "open" ? String(item.open_cases) : "—"),
    h("td", {}, item.state === "open"
      ? (may(caller, CHECKERS) ? closeForm(item, error) : t("supervision.open"))
      : [t("supervision.closed"), h("br"), h("small", {}, `${item.closed_by} · ${when(item.closed_at)}: ${item.check_note}`)])));
  return [table({ id: "supervision", class: "list cards" },
    [t("supervision.target"), t("case.department"), t("supervision.deadline"), t("supervision.reason"),
     t("supervision.opened"), t("open_cases"), t("case.state")], rows, t("supervision.none")), error];
}

function ledgerBox(month) {
  const [year, mon] = month.split("-").map(Number);
  const since = `${month}-01`;
  const until = new Date(Date.UTC(year, mon, 1)).toISOString().slice(0, 10);
  const status = h("span", { id: "ledger-status", class: "hint" });
  const fetchLedger = async (format) => {
    const name = `ledger-${month}.${format}`;
    try {
      const blob = await download(`/v1/ledger.${format}${query({ since, until })}`, name);
      status.textContent = t("ledger.done", { name, kb: number(blob.size / 1024, 1) });
      status.dataset.bytes = String(blob.size);
      status.dataset.format = format;
    } catch (failure) {
      status.textContent = explain(failure);
    }
  };
  return h("p", { class: "ledger" }, t("ledger.title"), " ",
    h("button", { type: "button", id: "ledger-xlsx", onclick: () => fetchLedger("xlsx") }, "Excel (.xlsx)"), " ",
    h("button", { type: "button", id: "ledger-csv", onclick: () => fetchLedger("csv") }, "CSV"), " ", status);
}

export async function supervisionPage(_, params) {
  const monthParam = params.get("month") || "";
  const [items, districts, inspectors, worst, grids, depts, caller] = await Promise.all([
    getJSON("/v1/supervision"),
    getJSON(`/v1/stats/monthly-ranking${query({ month: monthParam })}`),
    getJSON(`/v1/stats/inspectors${query({ month: monthParam })}`),
    getJSON(`/v1/stats/worst-spots${query({ limit: 10 })}`),
    getJSON("/v1/grids.geojson"),
    departments(),
    getJSON("/v1/sessions/current"),
  ]);
  const month = districts.month;
  const picker = h("input", { type: "month", id: "supervision-month", value: month });
  picker.addEventListener("change", () => go("supervision", { month: picker.value }));

  const ranking = table({ id: "districts", class: "list" },
    [t("rank"), t("district"), t("problems"), t("area"), t("per_km2"), t("ontime_closing"), t("score")],
    districts.districts.map((r) => h("tr", { "data-district": r.district, "data-problems": r.problems },
      h("td", {}, r.rank), h("td", {}, r.district), h("td", {}, r.problems), h("td", {}, number(r.area_km2, 3)),
      h("td", {}, number(r.problems_per_km2, 0)), h("td", { class: "ontime" }, rateBar(r.on_time_closing_rate)),
      h("td", {}, number(r.score, 2)))));
  const people = table({ id: "inspectors", class: "list" },
    [t("inspector"), t("inspector.grids"), t("inspector.reports"), t("inspector.valid_rate"), t("inspector.missed"),
     t("inspector.miss_rate"), t("inspector.verifies"), t("inspector.verify_rate"), t("inspector.checks"),
     t("inspector.check_rate")],
    inspectors.inspectors.map((r) => h("tr", { "data-inspector": r.username },
      h("td", {}, r.name), h("td", { class: "mono" }, r.grids.join(", ") || "—"), h("td", {}, r.reports),
      h("td", { class: "valid-rate" }, percent(r.valid_report_rate)), h("td", {}, `${r.missed} / ${r.missed + r.found}`),
      h("td", { class: "miss-rate" }, percent(r.miss_rate)), h("td", {}, r.verifies),
      h("td", { class: "verify-rate" }, percent(r.on_time_verify_rate)), h("td", {}, r.checks),
      h("td", { class: "check-rate" }, percent(r.on_time_check_rate)))),
    t("inspector.none"));

  return h("section", {},
    h("h1", {}, t("nav.supervision")),
    h("h2", {}, t("supervision.items")),
    ...itemsTable(items, caller),
    may(caller, SUPERVISORS) ? flagForm(worst.spots, grids, depts) : null,
    h("p", {}, h("label", {}, t("month"), " ", picker)),
    ledgerBox(month),
    h("div", { class: "two" },
      h("div", {}, h("h2", {}, t("districts.title", { month })), ranking, h("p", { class: "hint" }, t("districts.formula"))),
      h("div", {}, h("h2", {}, t("inspectors.title", { month })), people, h("p", { class: "hint" }, t("inspectors.formula")))));
}
