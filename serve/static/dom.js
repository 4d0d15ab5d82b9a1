// Small DOM helpers: elements built with textContent (never innerHTML), SVG elements, formatting.
import { t } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("a", {href: "#/x", class: "y"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** The bureau's timezone (configs/calendar.yaml), given to the page by the server. */
export const TIMEZONE =
  document.querySelector('meta[name="streetorder-timezone"]')?.content || "Asia/Shanghai";

const CLOCK = new Intl.DateTimeFormat("en-GB", {
  timeZone: TIMEZONE,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

/** "2025-09-23 09:05" on the bureau's clock, whatever the browser's timezone. */
export function when(iso) {
  if (!iso) return "—";
  const parts = Object.fromEntries(CLOCK.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** The bureau's calendar day of a time, "2025-09-23". */
export function day(iso) {
  return when(iso).slice(0, 10);
}

/** Seconds as "1 h 20 min" / "1小时20分". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return t("unit.min", { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return t("unit.hmin", { h: hours, m: minutes % 60 });
  return t("unit.dh", { d: Math.floor(hours / 24), h: hours % 24 });
}

export function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${Math.round(rate * 100)}%`;
}

export function number(value, digits = 1) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

/** A table from a header row and body rows (each a list of cells: text or nodes). */
export function table(attrs, head, rows, empty) {
  const body = rows.length
    ? rows.map((row) => (row instanceof Node ? row : h("tr", {}, row.map((cell) => h("td", {}, cell)))))
    : [h("tr", {}, h("td", { colspan: head.length, class: "empty" }, empty || t("none")))];
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, head.map((cell) => h("th", {}, cell)))),
    h("tbody", {}, body),
  );
}

/** Go to a page; `params` become the hash's query (filters only, never anything secret). */
export function go(page, params = {}) {
  const search = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const target = `#/${page}${search.toString() ? `?${search}` : ""}`;
  if (location.hash === target) reload();
  else location.hash = target;
}

/** Draw the current page again (after a change made on it). */
export function reload() {
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

/** A small coloured dot (an SVG attribute, not an inline style: the page's CSP forbids those). */
export function dot(colour) {
  return s("svg", { class: "dot", viewBox: "0 0 10 10", width: 10, height: 10 }, s("circle", { cx: 5, cy: 5, r: 5, fill: colour }));
}
