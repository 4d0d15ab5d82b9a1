// Names and colours of the event classes (from GET /v1/events) and the departments.
import { cached } from "./api.js";
import { lang, t } from "./i18n.js";

// One colour per event class, in the taxonomy's order (configs/taxonomy.yaml `events`).
const PALETTE = [
  "#8c564b", "#d62728", "#ff7f0e", "#bcbd22", "#1f77b4",
  "#17becf", "#9467bd", "#e377c2", "#2ca02c", "#7f7f7f",
];

export async function events() {
  const list = await cached("/v1/events");
  const byKey = new Map(list.map((event, index) => [event.key, { ...event, index }]));
  return {
    list,
    name(key) {
      const event = byKey.get(key);
      if (!event) return key;
      return lang() === "zh" ? event.name_zh : event.name;
    },
    colour(key) {
      const event = byKey.get(key);
      return event ? PALETTE[event.index % PALETTE.length] : "#444";
    },
    codes(key) {
      const event = byKey.get(key);
      return event ? `CJ/T 214 ${event.cjt214} · GB/T 47678.5 ${event.gbt47678}` : "";
    },
    limit(key) {
      const event = byKey.get(key);
      return event ? `${event.limit} ${this.unit(key)}` : "—";
    },
    /** The unit of the class's limit (工作小时): what an extension's `extend_by` counts, not the limit. */
    unit(key) {
      const event = byKey.get(key);
      return event ? t(`limit.${event.unit}`) : "—";
    },
  };
}

export function departments() {
  return cached("/v1/departments");
}
