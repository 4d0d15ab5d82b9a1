// Cameras: health of each camera (frames, fps, reconnects, stream state) and its zones drawn over
// the last analysed frame (the server draws them on frame.jpg; without a frame they are drawn here).
import { getJSON, loadImage } from "./api.js";
import { h, number, s, table, when } from "./dom.js";
import { t } from "./i18n.js";

const BLANK = { width: 640, height: 360 };

function zoneSketch(camera) {
  const { width, height } = BLANK;
  return s("svg", { class: "zones", viewBox: `0 0 ${width} ${height}`, "data-camera": camera.id },
    s("rect", { width, height, class: "blank" }),
    camera.zones.map((zone) => {
      const points = zone.polygon.map(([x, y]) => `${(x * width).toFixed(1)},${(y * height).toFixed(1)}`).join(" ");
      const [x, y] = zone.polygon[0];
      return s("g", { class: `zone zone-${zone.detect}` },
        s("polygon", { points }), s("text", { x: x * width + 4, y: y * height + 14 }, zone.id),
        s("title", {}, `${zone.name} (${zone.rule})`));
    }),
    s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "noframe" }, t("camera.noframe")));
}

function card(camera) {
  const health = camera.health;
  const picture = h("div", { class: "frame" });
  const img = h("img", { alt: camera.name, "data-camera": camera.id });
  picture.append(img);
  loadImage(img, `/v1/cameras/${encodeURIComponent(camera.id)}/frame.jpg`, () => img.replaceWith(zoneSketch(camera)));
  // a pushed camera has no stream state, but its frames can show no picture, or another view, too
  const state = health.stream_state || (health.no_picture ? "no_picture" : health.view_moved_since ? "view_moved" : null);
  const facts = [
    [t("camera.state"), state ? t(`stream.${state}`) : t("stream.pushed")],
    [t("camera.frames"), health.frames],
    [t("camera.fps"), number(health.fps, 2)],
    [t("camera.reconnects"), health.reconnects],
    [t("camera.dropped"), health.dropped_frames],
    [t("camera.skipped"), health.skipped_frames],
    [t("camera.late"), health.late_frames],
    [t("camera.held"), health.held_frames],
    [t("camera.jumps"), health.clock_jumps_dropped],
    [t("camera.last"), when(health.last_frame_at)],
    [t("camera.received"), when(health.last_received_at)],
    [t("camera.size"), health.width ? `${health.width}×${health.height}` : "—"],
    [t("camera.incidents"), health.open_incidents],
  ];
  // events the database did not take yet: written first with the camera's next frame
  if (health.events_waiting) facts.push([t("camera.waiting"), `${health.events_waiting} · ${when(health.events_waiting_since)}`]);
  if (health.picture_unchanged_since) facts.push([t("camera.unchanged"), when(health.picture_unchanged_since)]);
  if (health.no_picture) facts.push([t(`camera.no_picture.${health.no_picture}`), when(health.no_picture_since)]);
  if (health.view_moved_since) facts.push([t("camera.view_moved"), when(health.view_moved_since)]);
  const zones = table(
    { class: "list zones-table" },
    [t("zone.id"), t("zone.name"), t("zone.rule"), t("zone.classes"), t("zone.dwell"), t("zone.schedule")],
    camera.zones.map((z) => [z.id, z.name, z.rule, z.detect === "objects" ? z.classes.join(", ") : t("zone.occupancy"),
      `${z.min_dwell_s} s`, z.schedule.join(" ") || t("zone.always")]),
  );
  return h("article", { class: "camera", "data-camera": camera.id, "data-frames": health.frames,
      "data-unchanged": health.picture_unchanged_since ? "true" : "false", "data-no-picture": health.no_picture || "",
      "data-view-moved": health.view_moved_since ? "true" : "false" },
    h("h2", {}, camera.name, h("small", { class: "mono" }, ` ${camera.id}`)),
    h("p", { class: "hint" }, `${t("case.grid")} ${camera.grid_code || "—"} · ${camera.stream || t("stream.none")}`),
    h("div", { class: "camera-body" }, picture,
      h("dl", { class: "facts health" }, facts.flatMap(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]))),
    zones);
}

export async function camerasPage() {
  const cameras = await getJSON("/v1/cameras");
  return h("section", {},
    h("h1", {}, t("nav.cameras")),
    cameras.length ? cameras.map(card) : h("p", { class: "hint" }, t("none")));
}
