// The map, drawn offline in SVG from GeoJSON: unit grids coloured by open cases per km², case markers
// coloured by event class. A tile server (Web Mercator XYZ tiles, e.g. a bureau's own OpenStreetMap
// server) can be set as an optional background; without one nothing leaves the network. Tiles of a
// Chinese map are GCJ-02 (AMap, Tencent) or BD-09 (Baidu): with the tiles' system set, the server
// returns the GeoJSON in it (`crs`), so grids and markers lie on their streets. No formula here.
import { getJSON, query } from "./api.js";
import { FINAL, STATES } from "./cases.js";
import { events } from "./catalog.js";
import { dot, go, h, number, s } from "./dom.js";
import { t } from "./i18n.js";

const WIDTH = 960;
const HEIGHT = 600;
const PAD = 28;
const TILE_SETTING = "streetorder.tiles";
const TILE_CRS_SETTING = "streetorder.tiles.crs";
export const COORD_SYSTEMS = ["wgs84", "gcj02", "bd09"];
const EARTH_CIRCUMFERENCE_M = 40075016.686;
const MAX_CASES = 1000;

/** Web Mercator on the unit square: x right, y down (what XYZ tile servers use). */
export function mercator([lon, lat]) {
  const phi = (lat * Math.PI) / 180;
  return [(lon + 180) / 360, (1 - Math.log(Math.tan(phi) + 1 / Math.cos(phi)) / Math.PI) / 2];
}

/** Scale, offsets and drawing height that fit unit-square points into `width`, centred. */
export function fit(points, width = WIDTH, maxHeight = HEIGHT, pad = PAD) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0);
  const least = span > 1e-9 ? span / 20 : 5e-5; // a line gets some depth; a lone point about 2 km around
  const [dx, dy] = [Math.max(x1 - x0, least), Math.max(y1 - y0, least)];
  const scale = Math.min((width - 2 * pad) / dx, (maxHeight - 2 * pad) / dy);
  const height = Math.round(dy * scale + 2 * pad);
  return {
    scale,
    width,
    height,
    ox: (width - (x1 - x0) * scale) / 2 - x0 * scale,
    oy: (height - (y1 - y0) * scale) / 2 - y0 * scale,
  };
}

function rings(geometry) {
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

/** Colour of a density: neutral at 0, then yellow to red up to the largest density on the map. */
export function densityColour(value, max) {
  if (!value || !max) return "#e6ece4";
  const f = Math.min(1, value / max);
  const mix = (a, b) => Math.round(a + (b - a) * f);
  return `rgb(${mix(253, 185)}, ${mix(224, 28)}, ${mix(71, 28)})`;
}

function tiles(template, view) {
  const zoom = Math.max(0, Math.min(19, Math.round(Math.log2(view.scale / 256))));
  const n = 2 ** zoom;
  const size = view.scale / n;
  const images = [];
  const [tx0, tx1] = [Math.floor((-view.ox / view.scale) * n), Math.floor(((view.width - view.ox) / view.scale) * n)];
  const [ty0, ty1] = [Math.floor((-view.oy / view.scale) * n), Math.floor(((view.height - view.oy) / view.scale) * n)];
  for (let x = tx0; x <= tx1; x++) {
    for (let y = ty0; y <= ty1; y++) {
      if (y < 0 || y >= n) continue;
      const href = template.replace("{z}", zoom).replace("{x}", ((x % n) + n) % n).replace("{y}", y);
      images.push(s("image", { href, x: x * size + view.ox, y: y * size + view.oy, width: size + 0.5, height: size + 0.5 }));
    }
  }
  return s("g", { class: "tiles" }, images);
}

function scaleBar(view, latitude) {
  const metresPerPixel = (EARTH_CIRCUMFERENCE_M * Math.cos((latitude * Math.PI) / 180)) / view.scale;
  const metres = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000].find((m) => m / metresPerPixel >= 80) || 10000;
  const length = metres / metresPerPixel;
  return s("g", { class: "scalebar", transform: `translate(${PAD}, ${view.height - 10})` },
    s("line", { x1: 0, y1: 0, x2: length, y2: 0 }),
    s("text", { x: length + 6, y: 4 }, metres >= 1000 ? `${metres / 1000} km` : `${metres} m`));
}

/** The coordinate system of the map's tiles: what this bureau's operators see positions in. */
export function tileSystem() {
  return (localStorage.getItem(TILE_SETTING) && localStorage.getItem(TILE_CRS_SETTING)) || "wgs84";
}

export async function mapPage(_, params) {
  const showAll = params.get("all") === "1";
  // the newest MAX_CASES of the cases asked for: open ones only unless final ones are wanted too
  const filter = { state: showAll ? [] : STATES.filter((state) => !FINAL.includes(state)) };
  const tileUrl = localStorage.getItem(TILE_SETTING) || "";
  const tileCrs = tileSystem();
  const drawnIn = tileCrs === "wgs84" ? {} : { crs: tileCrs }; // positions as the tiles place streets
  const [grids, cases, counted, catalog] = await Promise.all([
    getJSON(`/v1/grids.geojson${query(drawnIn)}`),
    getJSON(`/v1/cases.geojson${query({ ...filter, ...drawnIn, limit: MAX_CASES })}`),
    getJSON(`/v1/cases${query({ ...filter, limit: 1 })}`),
    events(),
  ]);
  const shown = cases.features;
  // The extent is the grid layout's (the bureau's jurisdiction): a stray point far away must not
  // shrink every grid to a dot. Without a layout the cases give it.
  const layout = grids.features.flatMap((f) => rings(f.geometry).flat());
  const points = (layout.length ? layout : shown.map((f) => f.geometry.coordinates)).map(mercator);
  if (!points.length) return h("section", {}, h("h1", {}, t("nav.map")), h("p", { class: "hint" }, t("map.empty")));

  const view = fit(points);
  const project = (lonlat) => {
    const [x, y] = mercator(lonlat);
    return [x * view.scale + view.ox, y * view.scale + view.oy];
  };
  const path = (geometry) =>
    rings(geometry).map((ring) => `M${ring.map((p) => project(p).map((v) => v.toFixed(1)).join(" ")).join("L")}Z`).join("");
  const densest = Math.max(0, ...grids.features.map((f) => f.properties.open_per_km2 || 0));

  const gridShapes = grids.features.map((f) => {
    const g = f.properties;
    const outline = rings(f.geometry)[0].map(project);
    const [xs, ys] = [outline.map((p) => p[0]), outline.map((p) => p[1])];
    const [cx, cy] = [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
    return s("g", { class: "grid", "data-code": g.code, "data-open": g.open_cases, onclick: () => go("cases", { grid: g.code }) },
      s("path", { d: path(f.geometry), fill: densityColour(g.open_per_km2, densest), "fill-rule": "evenodd" }),
      s("text", { x: cx, y: cy + 4 }, g.code.slice(-3)),
      s("title", {}, `${g.name} ${g.code}\n${g.street || ""} ${g.community || ""}\n${t("map.open", { n: g.open_cases })} · ${number(g.open_per_km2, 0)} /km²`));
  });
  // a case placed outside the layout's extent (filed before a layout changed, a misplaced camera)
  // would be drawn off the map: it is listed under it instead
  const inside = (f) => {
    const [x, y] = project(f.geometry.coordinates);
    return x >= 0 && x <= view.width && y >= 0 && y <= view.height;
  };
  const outside = shown.filter((f) => !inside(f));
  const markers = shown.filter(inside).map((f) => {
    const c = f.properties;
    const [x, y] = project(f.geometry.coordinates);
    const final = Boolean(c.closed_at);
    return s("a", { href: `#/case/${c.id}`, class: `marker${final ? " final" : ""}${c.overdue ? " late" : ""}`, "data-case": c.id, "data-event": c.event },
      s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 7, fill: final ? "#fff" : catalog.colour(c.event), stroke: catalog.colour(c.event) }),
      s("title", {}, `${c.number} ${catalog.name(c.event)} · ${t(`state.${c.state}`)}`));
  });
  const centre = grids.features.length ? rings(grids.features[0].geometry)[0][0][1] : shown[0].geometry.coordinates[1];
  const drawing = s("svg", { id: "map", viewBox: `0 0 ${view.width} ${view.height}`, class: tileUrl ? "with-tiles" : "" },
    tileUrl ? tiles(tileUrl, view) : null,
    s("g", { class: "grids" }, gridShapes),
    s("g", { class: "markers" }, markers),
    scaleBar(view, centre));

  const present = [...new Set(shown.map((f) => f.properties.event))];
  const legend = h("div", { class: "legend", id: "legend" },
    h("h3", {}, t("map.density")),
    h("div", { class: "ramp" }, [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", {}, dot(densityColour(f, 1)), ` ${number(f * densest, 0)}`))),
    h("h3", {}, t("map.classes")),
    present.length ? h("ul", {}, present.map((e) => h("li", {}, dot(catalog.colour(e)), ` ${catalog.name(e)}`))) : h("p", { class: "hint" }, t("none")),
    h("label", { class: "toggle" }, h("input", { type: "checkbox", id: "show-all", checked: showAll, onchange: (e) => go("map", { all: e.target.checked ? "1" : "" }) }), t("map.all")));

  const tileInput = h("input", { id: "tile-url", type: "url", value: tileUrl, placeholder: "https://tiles.example/{z}/{x}/{y}.png", size: 48 });
  const crsInput = h("select", { id: "tile-crs" },
    COORD_SYSTEMS.map((crs) => h("option", { value: crs, selected: crs === tileCrs }, t(`map.crs.${crs}`))));
  const settings = h("form", { class: "tile-setting", id: "tile-form" },
    h("label", { for: "tile-url" }, t("map.tiles")), tileInput,
    h("label", { for: "tile-crs" }, t("map.tiles_crs")), crsInput,
    h("button", { type: "submit" }, t("save")),
    h("p", { class: "hint" }, t("map.tiles_hint")));
  settings.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = tileInput.value.trim();
    if (value) localStorage.setItem(TILE_SETTING, value);
    else localStorage.removeItem(TILE_SETTING);
    if (value && crsInput.value !== "wgs84") localStorage.setItem(TILE_CRS_SETTING, crsInput.value);
    else localStorage.removeItem(TILE_CRS_SETTING);
    go("map", { all: showAll ? "1" : "" });
  });

  return h("section", {},
    h("h1", {}, t("nav.map")),
    h("p", { class: "hint", id: "map-hint" }, t("map.hint", { grids: grids.features.length, cases: counted.total }),
      counted.total > shown.length ? [" ", t("map.newest", { n: shown.length })] : null),
    h("div", { class: "map-layout" }, drawing, legend),
    outside.length
      ? h("p", { class: "hint", id: "map-outside" }, t("map.outside", { n: outside.length }), " ",
          outside.map((f) => [h("a", { href: `#/case/${f.properties.id}`, class: "mono" }, f.properties.number), " "]))
      : null,
    settings);
}
