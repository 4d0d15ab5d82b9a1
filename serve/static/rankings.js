// Rankings: the 10-day (旬) street ranking, the worst spots, on-time closing per street and
// department over the same period, and cases per event class per day as a stacked bar chart in SVG.
import { getJSON, query } from "./api.js";
import { events } from "./catalog.js";
import { dot, go, h, number, percent, s, table } from "./dom.js";
import { t } from "./i18n.js";

const CHART = { width: 960, height: 260, left: 40, right: 12, top: 12, bottom: 34 };

export function rateBar(rate) {
  const width = rate === null || rate === undefined ? 0 : Math.round(rate * 100);
  return h("span", { class: "rate" },
    s("svg", { width: 100, height: 10, viewBox: "0 0 100 10", class: "meter" },
      s("rect", { width: 100, height: 10, class: "track" }), s("rect", { width, height: 10, class: "fill" })),
    ` ${percent(rate)}`);
}

/** Integer axis ticks from 0 to at least `max`, about five of them. */
export function ticks(max) {
  const step = Math.max(1, Math.ceil(max / 5));
  return Array.from({ length: Math.ceil(max / step) + 1 }, (_, i) => i * step);
}

/** Stacked bars: one bar per day, one colour per event class. */
export function classChart(daily, catalog) {
  const { width, height, left, right, top, bottom } = CHART;
  const days = daily.days;
  const totals = days.map((_, i) => daily.events.reduce((sum, series) => sum + series.counts[i], 0));
  const axis = ticks(Math.max(1, ...totals));
  const top_value = axis[axis.length - 1];
  const plotHeight = height - top - bottom;
  const slot = (width - left - right) / Math.max(1, days.length);
  const y = (value) => top + plotHeight - (value / top_value) * plotHeight;
  const grid = axis.map((v) => s("g", { class: "tick" },
    s("line", { x1: left, x2: width - right, y1: y(v), y2: y(v) }),
    s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v)));
  const bars = days.map((date, i) => {
    let base = 0;
    const pieces = daily.events.filter((series) => series.counts[i]).map((series) => {
      const value = series.counts[i];
      const rect = s("rect", {
        x: (left + i * slot + slot * 0.15).toFixed(1), width: (slot * 0.7).toFixed(1),
        y: y(base + value).toFixed(1), height: (y(base) - y(base + value)).toFixed(1),
        fill: catalog.colour(series.event), "data-event": series.event, "data-day": date, "data-count": value,
      }, s("title", {}, `${date} ${catalog.name(series.event)}: ${value}`));
      base += value;
      return rect;
    });
    const label = i % Math.ceil(days.length / 10) === 0
      ? s("text", { x: left + (i + 0.5) * slot, y: height - bottom + 16, "text-anchor": "middle" }, date.slice(5))
      : null;
    return s("g", { class: "day" }, pieces, label);
  });
  return h("figure", { class: "chart" },
    s("svg", { id: "class-chart", viewBox: `0 0 ${width} ${height}` }, s("g", { class: "axis" }, grid), bars),
    h("figcaption", {}, daily.events.length
      ? daily.events.map((series) => h("span", { class: "key" }, dot(catalog.colour(series.event)), ` ${catalog.name(series.event)} (${series.counts.reduce((a, b) => a + b, 0)})`))
      : t("none")));
}

/** The day after an ISO date: the API reads `until` as exclusive, and the chosen day belongs in the chart. */
export function nextDay(day) {
  const next = new Date(`${day}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return next.toISOString().slice(0, 10);
}

export async function rankingsPage(_, params) {
  const day = params.get("day") || "";
  const ranking = await getJSON(`/v1/stats/ranking${query({ day })}`);
  const period = { since: ranking.since, until: ranking.until };
  const [worst, byStreet, byDepartment, daily, catalog] = await Promise.all([
    getJSON(`/v1/stats/worst-spots${query({ limit: 10 })}`),
    getJSON(`/v1/stats${query({ ...period, group_by: "street" })}`),
    getJSON(`/v1/stats${query({ ...period, group_by: "department" })}`),
    getJSON(`/v1/stats/daily${query(day ? { until: nextDay(day) } : {})}`),
    events(),
  ]);

  const picker = h("input", { type: "date", id: "ranking-day", value: day || ranking.since.slice(0, 10) });
  picker.addEventListener("change", () => go("rankings", { day: picker.value }));

  const streets = table(
    { id: "ranking", class: "list" },
    [t("rank"), t("case.street"), t("problems"), t("area"), t("per_km2"), t("ontime_closing"), t("score")],
    ranking.streets.map((r) => h("tr", { "data-street": r.street, "data-problems": r.problems },
      h("td", {}, r.rank), h("td", {}, h("a", { href: `#/cases?street=${encodeURIComponent(r.street)}` }, r.street)),
      h("td", {}, r.problems), h("td", {}, number(r.area_km2, 3)), h("td", {}, number(r.problems_per_km2, 0)),
      h("td", { class: "ontime" }, rateBar(r.on_time_closing_rate)), h("td", {}, number(r.score, 2)))),
  );
  const spots = table(
    { id: "worst", class: "list" },
    [t("case.grid"), t("case.street"), t("open_cases"), t("per_km2")],
    worst.spots.map((spot) => h("tr", { "data-grid": spot.grid_code },
      h("td", {}, h("a", { href: `#/cases?grid=${spot.grid_code}`, class: "mono" }, spot.grid_code)),
      h("td", {}, spot.street || "—"), h("td", {}, spot.open_cases), h("td", {}, number(spot.open_per_km2, 0)))),
  );
  const onTime = (id, label, stats) => table(
    { id, class: "list" },
    [label, t("due"), t("closed_on_time"), t("ontime_closing"), t("ontime_disposal")],
    stats.groups.map((g) => h("tr", { "data-key": g.key ?? "" },
      h("td", {}, g.key ?? t("unset")), h("td", {}, g.due), h("td", {}, g.closed_on_time),
      h("td", { class: "ontime" }, rateBar(g.on_time_closing_rate)), h("td", {}, rateBar(g.on_time_disposal_rate)))),
  );

  return h("section", {},
    h("h1", {}, t("nav.rankings")),
    h("p", {}, h("label", {}, t("period"), " ", picker), " ", h("strong", { id: "period" }, t("period.label", { period: ranking.period }))),
    h("div", { class: "two" },
      h("div", {}, h("h2", {}, t("ranking.title")), streets),
      h("div", {}, h("h2", {}, t("worst.title")), spots)),
    h("div", { class: "two" },
      h("div", {}, h("h2", {}, t("ontime.street")), onTime("ontime-street", t("case.street"), byStreet)),
      h("div", {}, h("h2", {}, t("ontime.department")), onTime("ontime-department", t("case.department"), byDepartment))),
    h("h2", { id: "chart-title" }, t("chart.title", { since: daily.since, until: daily.days[daily.days.length - 1] })),
    classChart(daily, catalog));
}
