"""Incidents: one violation at one place in one zone, from first firing to verification.

The ledger turns per-frame sightings ("something of this rule stands here since t0") into the few
events a case needs, never one per frame:

- `started`: the dwell time was reached inside the rule's schedule -> one case;
- `evidence`: still there, at most every `evidence_every_s` -> evidence appended;
- `cleared`: gone from its place for `clear_after_s` -> after-photo and a proposal: resolved on its
  own when nobody has handled the case yet, check-pass (核查) when it was reported handled (with
  `verify: after_handled` counted from the handling report); a handling report that comes after
  the place cleared on its own is answered once more, `clear_after_s` after the report;
- `rework`: back at the place within `return_watch_s` after clearing, or still there
  `clear_after_s` after the case was reported handled -> the case is flagged for rework.

One event per change of state: a handling report is answered once (a return answers it too, so
the report that the return contradicts is not flagged "still present" again on the next frame).

A case closed, cancelled or not filed while its object still stands there closes the incident:
it stays, silent, until the object has been gone `clear_after_s`, so a person's decision ("a
delivery van, allowed") is not raised again as a new case on the next frame. Only what stands
there after that is a new violation.

Absence is counted over time the camera watched: after a restart, from its first frame, not from
the last sighting before it (the new tracker needs a frame or two to see what still stands there).

A gap in the frames longer than the camera's `dwell.restart_bridge_s` (a restart, a `watch` started
hours later, a camera that stopped sending; `unwatched`) breaks every violation standing then: nobody
knows whether what stands at its place now is what stood there before. Such an incident waits: seen
at its place again, its object must stand `min_dwell_s` anew (from the first frame after the gap)
and then files again (`started`, reason `after_gap`: the service's duplicate rule attaches it to the
open case); its place empty for `clear_after_s` after the gap, it clears as usual.

Pure bookkeeping on capture times (seconds); the service maps incidents to cases.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import supervision as sv

from vision.live.cameras import CaseSettings
from vision.live.dwell import scale_boxes

EventKind = Literal["started", "evidence", "cleared", "rework"]
MAX_INCIDENTS_PER_ZONE = 64


@dataclass
class Counter:
    """Incident ids of one camera: unique across its zones and its restarts (the value is saved)."""

    next_value: int = 1

    def take(self) -> int:
        value = self.next_value
        self.next_value += 1
        return value


@dataclass(frozen=True)
class Sighting:
    """Something a rule cares about, standing at a place since `since` (seen on this frame)."""

    key: int  # the dwell clock's key; occupancy uses one key per zone
    box: np.ndarray  # xyxy pixels
    since: float
    event: str  # taxonomy event this would be filed as
    class_id: int | None = None  # None: class-free (occupancy)
    confidence: float | None = None


@dataclass
class Incident:
    id: int
    zone_id: str
    event: str
    source: Literal["detector", "occupancy"]
    key: int
    box: np.ndarray
    class_id: int | None
    confidence: float | None
    since: float  # when the object arrived
    started_at: float  # when the violation fired
    last_seen: float
    last_evidence: float
    status: Literal["present", "cleared", "closed"] = "present"
    handled_at: float | None = None  # set by the service when the case is reported handled
    flagged_report: float | None = None  # the handling report already flagged as premature
    cleared_at: float | None = None
    cleared_for: float | None = None  # the handling report the last clear answered (None: unhandled)
    unwatched_at: float | None = None  # first frame after a gap nobody watched: must stand min_dwell_s again
    case_id: int | None = field(default=None, compare=False)  # the service's bookkeeping


def incident_from(fields: dict[str, Any]) -> Incident:
    """An incident from its exported fields (`asdict`), its box an array again."""
    return Incident(**{**fields, "box": np.asarray(fields["box"], dtype=np.float64)})


@dataclass(frozen=True)
class RuleEvent:
    kind: EventKind
    incident: Incident
    at: float
    reason: str = ""


class IncidentLedger:
    """The incidents of one zone rule; memory bounded by MAX_INCIDENTS_PER_ZONE."""

    def __init__(
        self,
        zone_id: str,
        settings: CaseSettings,
        min_dwell_s: float,
        source: str,
        ids: Counter | None = None,
    ) -> None:
        self.zone_id = zone_id
        self.settings = settings
        self.min_dwell_s = min_dwell_s
        self.source: Literal["detector", "occupancy"] = "occupancy" if source == "occupancy" else "detector"
        self.ids = ids or Counter()
        self.incidents: dict[int, Incident] = {}
        self._watching_since: float | None = -math.inf  # None: from the next frame (restored)

    def _unseen_since(self, incident: Incident) -> float:
        assert self._watching_since is not None
        return max(incident.last_seen, self._watching_since)

    def _same_place(self, sighting: Sighting, taken: set[int]) -> Incident | None:
        free = [i for i in self.incidents.values() if i.id not in taken]
        for incident in free:
            if incident.key == sighting.key:
                return incident
        if not free:
            return None
        ious = sv.box_iou_batch(np.stack([i.box for i in free]), sighting.box[None])[:, 0]
        best = int(np.argmax(ious))
        return free[best] if ious[best] >= self.settings.same_place_iou else None

    def _seen(
        self, incident: Incident, sighting: Sighting, at: float, active_since: float | None
    ) -> list[RuleEvent]:
        s = self.settings
        if incident.status == "closed":
            incident.key, incident.box, incident.last_seen = sighting.key, sighting.box, at
            return []
        if incident.status == "present" and incident.unwatched_at is not None:
            incident.key, incident.box, incident.last_seen = sighting.key, sighting.box, at
            if not self._due(sighting, at, active_since, incident.unwatched_at):
                return []
            incident.since, incident.started_at, incident.last_evidence = sighting.since, at, at
            incident.unwatched_at = None
            return [RuleEvent("started", incident, at, "after_gap")]
        if incident.status == "cleared":
            if at - sighting.since < s.return_dwell_s:
                return []
            # the return answers the handling report too: it is not flagged "still present" again
            incident.flagged_report = incident.handled_at
            incident.status, incident.cleared_at, incident.handled_at = "present", None, None
            incident.key, incident.box, incident.last_seen, incident.last_evidence = (
                sighting.key,
                sighting.box,
                at,
                at,
            )
            return [RuleEvent("rework", incident, at, "returned")]
        incident.key, incident.box, incident.last_seen = sighting.key, sighting.box, at
        handled = incident.handled_at
        if handled is not None and handled != incident.flagged_report and at - handled >= s.clear_after_s:
            incident.flagged_report, incident.last_evidence = handled, at  # once per handling report
            return [RuleEvent("rework", incident, at, "still_present")]
        if at - incident.last_evidence >= s.evidence_every_s:
            incident.last_evidence = at
            return [RuleEvent("evidence", incident, at)]
        return []

    def _absent(self, incident: Incident, at: float) -> list[RuleEvent]:
        handled = incident.handled_at
        if incident.status == "present":
            absent_from = self._unseen_since(incident)
            if self.settings.verify == "after_handled" and handled is not None:
                absent_from = max(absent_from, handled)
            if at - absent_from < self.settings.clear_after_s:
                return []
            incident.status, incident.cleared_at, incident.cleared_for = "cleared", at, handled
            incident.unwatched_at = None
            return [RuleEvent("cleared", incident, at)]
        if incident.status == "cleared" and handled is not None and handled != incident.cleared_for:
            # it had left on its own; now the case is reported handled: confirm the place once more
            if at - max(self._unseen_since(incident), handled) < self.settings.clear_after_s:
                return []
            incident.cleared_for = handled
            return [RuleEvent("cleared", incident, at, "handled")]
        return []

    def update(self, at: float, sightings: list[Sighting], active_since: float | None) -> list[RuleEvent]:
        """One frame: `sightings` in the zone, `active_since` = start of the schedule window now
        in force (None: the rule is off now, nothing new fires)."""
        if self._watching_since is None:
            self._watching_since = at
        events: list[RuleEvent] = []
        taken: set[int] = set()
        for sighting in sorted(sightings, key=lambda s: s.since):
            incident = self._same_place(sighting, taken)
            if incident is not None:
                taken.add(incident.id)
                events += self._seen(incident, sighting, at, active_since)
            elif self._due(sighting, at, active_since):
                incident = Incident(
                    id=self.ids.take(),
                    zone_id=self.zone_id,
                    event=sighting.event,
                    source=self.source,
                    key=sighting.key,
                    box=sighting.box,
                    class_id=sighting.class_id,
                    confidence=sighting.confidence,
                    since=sighting.since,
                    started_at=at,
                    last_seen=at,
                    last_evidence=at,
                )
                self.incidents[incident.id] = incident
                taken.add(incident.id)
                events.append(RuleEvent("started", incident, at))
        for incident in list(self.incidents.values()):
            if incident.id not in taken:
                events += self._absent(incident, at)
        self._forget(at)
        return events

    def _due(
        self, sighting: Sighting, at: float, active_since: float | None, since: float = -math.inf
    ) -> bool:
        """The sighting has stood `min_dwell_s` inside the schedule window (and since `since`)."""
        return active_since is not None and at - max(sighting.since, active_since, since) >= self.min_dwell_s

    def resume(self, at: float) -> None:
        """The camera saw nothing before the frame at `at` (its picture was lost): absence counts
        from `at`."""
        self._watching_since = at

    def unwatched(self, at: float) -> None:
        """Nobody watched for longer than the camera's gap tolerance before the frame at `at`: absence
        counts from `at`, and each violation standing must stand `min_dwell_s` again to file."""
        self.resume(at)
        for incident in self.incidents.values():
            if incident.status == "present":
                incident.unwatched_at = at

    def _forget(self, at: float) -> None:
        """Cleared incidents leave after the return watch, closed ones once their object has gone;
        the oldest go first beyond the bound."""
        s = self.settings
        for incident in list(self.incidents.values()):
            if (incident.status == "cleared" and at - (incident.cleared_at or at) > s.return_watch_s) or (
                incident.status == "closed" and at - self._unseen_since(incident) >= s.clear_after_s
            ):
                del self.incidents[incident.id]
        if len(self.incidents) > MAX_INCIDENTS_PER_ZONE:
            order = sorted(self.incidents.values(), key=lambda i: (i.status == "present", i.last_seen))
            for incident in order[: len(self.incidents) - MAX_INCIDENTS_PER_ZONE]:
                del self.incidents[incident.id]

    def set_handled(self, incident_id: int, at: float | None) -> None:
        """The incident's case was reported handled at `at` (None: it is back in handling)."""
        incident = self.incidents.get(incident_id)
        if incident is not None:
            incident.handled_at = at

    def close(self, incident_id: int) -> None:
        """Its case was closed, cancelled or not filed: a present incident goes silent until its
        object leaves; a cleared one is dropped (a return is a new violation, not rework)."""
        incident = self.incidents.get(incident_id)
        if incident is None or incident.status == "closed":
            return
        if incident.status == "present":
            incident.status = "closed"
        else:
            del self.incidents[incident_id]

    def rescale(self, sx: float, sy: float) -> None:
        for incident in self.incidents.values():
            incident.box = scale_boxes(incident.box, sx, sy)

    def export(self) -> list[dict[str, Any]]:
        """The incidents, for vision/live/state.py."""
        return [asdict(incident) for incident in self.incidents.values()]

    def restore(self, saved: list[dict[str, Any]]) -> None:
        """Take back exported incidents (of a zone of the same id and kind); absence counts again
        from the next frame."""
        self.incidents, self._watching_since = {}, None
        for fields in saved:
            incident = incident_from(fields)
            self.incidents[incident.id] = incident
