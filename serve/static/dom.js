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

function clock(instant) {
  return Object.fromEntries(CLOCK.formatToParts(instant).map((p) => [p.type, p.value]));
}

/** "2025-09-23 09:05" on the bureau's clock, whatever the browser's timezone. */
export function when(iso) {
  if (!iso) return "—";
  const parts = clock(new Date(iso));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** A datetime-local field's value ("2025-09-23T09:05") for an instant, on the bureau's clock. */
export function clockInput(instant) {
  return when(instant.toISOString()).replace(" ", "T");
}

/** The instant a datetime-local field's value names on the bureau's clock, as ISO 8601: the field
 * has no timezone, and the browser's may not be the bureau's (a PC left on UTC). */
export function fromClockInput(value) {
  const wall = Date.parse(`${value}Z`); // the wall time read as if it were UTC
  const ahead = (instant) => { // how far the bureau's clock is ahead of UTC at an instant
    const p = clock(new Date(instant));
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute) - Math.floor(instant / 60000) * 60000;
  };
  const first = wall - ahead(wall);
  return new Date(wall - ahead(first)).toISOString(); // the second look settles a change of offset
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

/** A rate as a whole percentage, rounded, but never to 100% while a case falls short nor to 0% while
 * one counts: a street with 1 late case in 300 is not "100%" on time in a ranking. */
export function percent(rate) {
  if (rate === null || rate === undefined) return "—";
  const whole = Math.round(rate * 100);
  return `${rate > 0 && rate < 1 ? Math.min(99, Math.max(1, whole)) : whole}%`;
}

export function number(value, digits = 1) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

/** A table from a header row and body rows (each a list of cells: text or nodes), in a box that
 * scrolls sideways on a phone (the page itself must not). Each cell carries its column's name
 * (`data-label`): on a phone a `cards` table shows each row as a card, the names beside the values
 * (console.css), since eight columns do not fit 390 px. */
export function table(attrs, head, rows, empty) {
  const body = rows.length
    ? rows.map((row) => (row instanceof Node ? row : h("tr", {}, row.map((cell) => h("td", {}, cell)))))
    : [h("tr", {}, h("td", { colspan: head.length, class: "empty" }, empty || t("none")))];
  for (const row of rows.length ? body : []) {
    [...row.children].forEach((cell, i) => cell.setAttribute("data-label", head[i] ?? ""));
  }
  return h(
    "div",
    { class: "table-scroll" },
    h("table", attrs, h("thead", {}, h("tr", {}, head.map((cell) => h("th", {}, cell)))), h("tbody", {}, body)),
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
