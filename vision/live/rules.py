"""The rule engine of one camera: frame -> tracks -> zones -> dwell / occupancy -> incident events.

Pure and in memory (no database, no clock): every time is the frame's capture time. The service
(serve/cases/cameras.py) feeds it frames with their detections and turns its events into cases.

Late frames: a frame captured at or before the last processed one cannot go through the tracker
(its Kalman state only moves forward) nor the clocks, and waiting for stragglers would delay every
frame. Such a frame is therefore not applied to tracks, clocks or incidents; it comes back marked
`late` with its detections, so the caller can still record it (the endpoint returns and counts it).
A frame stamped far ahead of the last one would make every true frame after it late: the service
holds such a frame back until the next one shows whether its clock jumped (vision/live/timeline.py).

A frame that shows no picture (vision/live/picture.py: the signal lost, a "no signal" screen, a
covered or washed-out lens) is in order, and nothing else: no track, clock, occupancy model or
incident sees it, so a violation standing then is neither cleared (a black after-photo) nor learned
into the background. From the first frame with a picture again, absence counts anew, as after a
restart; a spell without a picture longer than `dwell.restart_bridge_s` is a gap (`_unwatched`).

A frame that shows another view than the camera's reference (vision/live/view.py: a PTZ camera sent
to another preset, a camera knocked to another aim) is taken the same way: its zones no longer lie
on their place, so no rule judges it (no case, no clear, no dwell clock moves) until the view comes
back, or an operator accepts the new one as the reference (`accept_view`). A bus close in front
covering most of the picture reads the same for the seconds it passes: the rules pause at once
(the street cannot be seen), but the camera is told moved (`view_moved_since`, the log) only once
the frames have shown another view for `view.moved_after_s` of capture time, so operators are not
sent after a passing bus.

`export` and `restore` carry the engine's state (clocks, incidents, occupancy models, the last
frame's time) over a restart of the service (vision/live/state.py encodes it) or a reload of its
camera's configuration; only the tracker starts over.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import supervision as sv

from vision.core.detector import subset
from vision.core.taxonomy import Taxonomy
from vision.live.appearance import SIGNATURE_SIZE, signature
from vision.live.cameras import Camera, Rule
from vision.live.dwell import APPEARANCE, UNOCCLUDED, DwellClocks, Stay, overlap_of_first
from vision.live.incidents import Counter, Incident, IncidentLedger, RuleEvent, Sighting
from vision.live.occupancy import OccupancyClock, StaticForeground, ZoneMeter, ZoneOccupancy
from vision.live.picture import Fault, picture_fault, picture_fingerprint
from vision.live.tracking import CaptureTimeTracker, class_thresholds, ids
from vision.live.view import ViewWatch
from vision.live.zones import FrameZone, Size

log = logging.getLogger("streetorder.cameras")

OCCUPANCY_KEY = 0  # one occupation per zone at a time: its sightings share one key
STATE_VERSION = 1  # of `export`'s layout: another one is not restored
OCCLUDED = 0.1  # a box this much covered by another one is partly something else: its colours are not learned


@dataclass
class FrameOutcome:
    at: float
    late: bool
    detections: sv.Detections  # with tracker_id (-1: no track yet, or a late frame)
    stays: list[Stay] = field(default_factory=list)  # objects in zones with their clocks
    occupancy: list[ZoneOccupancy] = field(default_factory=list)
    events: list[RuleEvent] = field(default_factory=list)
    no_picture: Fault | None = None  # why the frame was not judged (vision/live/picture.py)
    view_mismatch: bool = False  # not judged: it shows another view than the reference (vision/live/view.py)
    view_moved: bool = False  # ... and has for `view.moved_after_s`: the camera is told moved

    @classmethod
    def unapplied(cls, at: float, detections: sv.Detections, *, late: bool) -> FrameOutcome:
        """A frame that goes through no track, clock or incident: its detections, without track ids."""
        kept = subset(detections, np.ones(len(detections), dtype=bool))
        kept.tracker_id = np.full(len(kept), -1, dtype=int)
        return cls(at=at, late=late, detections=kept)


def capture_seconds(at: datetime | float) -> float:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("capture time has no timezone; give it as an aware datetime (e.g. with +08:00)")
        return at.timestamp()
    return float(at)


class CameraRules:
    """Tracks, dwell clocks, occupancy and incidents of one camera."""

    def __init__(self, camera: Camera, taxonomy: Taxonomy) -> None:
        self.camera = camera
        self.taxonomy = taxonomy
        self.tracker = CaptureTimeTracker(
            camera.tracker, camera.analyse_fps, class_thresholds(camera, self.taxonomy), camera.dwell.refind_s
        )
        self.clocks = DwellClocks(camera.dwell)
        self.last_at: float | None = None  # the last frame in order, with a picture or not
        self.usable_at: float | None = None  # the last frame with a picture
        self.no_picture: Fault | None = None  # the frames show no picture now, and why
        self.no_picture_since: float | None = None
        self.picture = ""  # fingerprint of the last frame (vision/live/picture.py)
        self.picture_since: float | None = None  # capture time of the first frame in a row showing it
        self.view = ViewWatch(camera.view)
        self.view_mismatch_since: float | None = None  # the frames show another view than the reference
        self.stream_lost_at: float | None = None  # the last frame before its stream was lost (stream_lost)
        self.size: Size | None = None
        self.object_zones = [FrameZone(z) for z in camera.zones if z.rule.detect == "objects"]
        self.meters = [ZoneMeter(z, camera.ground) for z in camera.zones if z.rule.detect == "occupancy"]
        self.occupancy_clocks = {m.zone.id: OccupancyClock(camera.occupancy.gap_s) for m in self.meters}
        self.foreground = StaticForeground(camera.occupancy) if self.meters else None
        self.incident_ids = Counter()
        self.ledgers = {
            z.id: IncidentLedger(z.id, camera.cases, z.rule.min_dwell_s, z.rule.detect, self.incident_ids)
            for z in camera.zones
        }
        names = self.taxonomy.names
        self._mask_classes = [names.index(n) for n in camera.occupancy.mask_classes]

    # ------------------------------------------------------------------------------------ helpers

    def _local(self, at: float) -> str:
        """A capture time as the log tells it: the camera's clock to the second, as the API answers it
        (it was UTC, so a frame sent at 12:00+08:00 was logged as 04:00+00:00)."""
        return datetime.fromtimestamp(at, self.camera.tz).isoformat(timespec="seconds")

    def _active_since(self, rule: Rule, at: float) -> float | None:
        if rule.schedule.always:
            return -math.inf
        local = datetime.fromtimestamp(at, self.camera.tz)
        start = rule.schedule.active_since(local)
        return None if start is None else start.timestamp()

    def _min_confidence(self, rule: Rule, class_id: int) -> float:
        if rule.min_confidence is not None:
            return rule.min_confidence
        return self.taxonomy.classes[class_id].min_confidence

    def _in_zone(self, zone: FrameZone, tracked: sv.Detections) -> sv.Detections:
        rule = zone.zone.rule
        wanted = [self.taxonomy.names.index(c) for c in rule.classes]
        if len(tracked) == 0:
            return tracked
        class_ids = ids(tracked.class_id, len(tracked))
        confidence = tracked.confidence if tracked.confidence is not None else np.ones(len(tracked))
        floor = np.array([self._min_confidence(rule, int(c)) if c >= 0 else 1.0 for c in class_ids])
        keep = zone.trigger(tracked, self._size()) & np.isin(class_ids, wanted) & (confidence >= floor)
        return subset(tracked, keep)

    def _size(self) -> Size:
        assert self.size is not None
        return self.size

    def _resize(self, size: Size) -> None:
        if self.size is not None and size != self.size:
            sx, sy = size[0] / self.size[0], size[1] / self.size[1]
            self.clocks.rescale(sx, sy)
            for ledger in self.ledgers.values():
                ledger.rescale(sx, sy)
            self.tracker.reset()
        self.size = size

    def _object_event(self, rule: Rule, class_id: int) -> str | None:
        if rule.event is not None:
            return rule.event
        return self.taxonomy.classes[class_id].event

    def _occupancy_event(self, rule: Rule, box: np.ndarray, tracked: sv.Detections) -> str:
        """The rule's event, or a class event when the detector also sees that class there
        (a third of its box or more inside the occupied area)."""
        assert rule.event is not None
        class_ids = ids(tracked.class_id, len(tracked))
        for name, event in rule.class_events.items():
            seen = tracked.xyxy[class_ids == self.taxonomy.names.index(name)]
            if len(seen) and (overlap_of_first(seen, box) >= 1 / 3).any():
                return event
        return rule.event

    # ------------------------------------------------------------------------------------ the verb

    def process(
        self,
        at: datetime | float,
        detections: sv.Detections,
        size: Size,
        frame: np.ndarray | None = None,
    ) -> FrameOutcome:
        """One frame captured at `at` of `size` (width, height), with the detector's detections.

        `frame` (BGR) feeds the occupancy rules and tells a frame without a picture; without it
        the occupancy rules skip this frame.
        """
        when = capture_seconds(at)
        if self.last_at is not None and when <= self.last_at:
            return FrameOutcome.unapplied(when, detections, late=True)
        fault = None if frame is None else self._fault(when, frame)
        if fault is not None:
            return self._blind(when, detections, fault)
        if frame is not None and self.view.moved(when, frame):
            return self._moved(when, detections)
        if self.usable_at is not None and when - self.usable_at > self.camera.dwell.restart_bridge_s:
            self._unwatched(when)
        elif (
            self.no_picture is not None
            or self.view_mismatch_since is not None
            or self.stream_lost_at is not None
        ):
            self._resumed(when)
        self.no_picture = self.no_picture_since = self.view_mismatch_since = self.stream_lost_at = None
        self.last_at = self.usable_at = when
        self._resize(size)
        tracked = self.tracker.update(detections, when)
        outcome = FrameOutcome(at=when, late=False, detections=tracked)

        if frame is not None and self.object_zones:
            self._describe(tracked, frame)
        in_zones = {zone.id: self._in_zone(zone, tracked) for zone in self.object_zones}
        seen = self.clocks.update(when, in_zones)
        for zone in self.object_zones:
            rule = zone.zone.rule
            sightings = []
            for stay in seen[zone.id]:
                event = self._object_event(rule, stay.class_id)
                if event is not None:
                    sightings.append(
                        Sighting(stay.key, stay.box, stay.since, event, stay.class_id, stay.confidence)
                    )
                outcome.stays.append(stay)
            ledger = self.ledgers[zone.id]
            outcome.events += ledger.update(when, sightings, self._active_since(rule, when))

        if self.foreground is not None and frame is not None:
            self._occupancy(when, frame, tracked, outcome)
        return outcome

    def _fault(self, when: float, frame: np.ndarray) -> Fault | None:
        """Why the frame shows no picture: blank or blurred, or the very same pixels as the frames
        before it for `picture.frozen_s` (a stuck encoder; what they show was judged until then)."""
        picture = picture_fingerprint(frame)
        if picture != self.picture:
            self.picture, self.picture_since = picture, when
        fault = picture_fault(frame, self.camera.picture)
        assert self.picture_since is not None
        if fault is None and when - self.picture_since >= self.camera.picture.frozen_s:
            return "frozen"
        return fault

    @property
    def unchanged_s(self) -> float:
        """Capture seconds the frames in order have shown the very same pixels, to the last one."""
        if self.picture_since is None or self.last_at is None:
            return 0.0
        return max(self.last_at, self.picture_since) - self.picture_since

    def _blind(self, when: float, detections: sv.Detections, fault: Fault) -> FrameOutcome:
        """A frame without a picture: in order (what comes before it is late), judged by nothing."""
        if self.no_picture is None:
            self.no_picture_since = when
            log.warning(
                "camera %s: no picture (%s) from %s: nothing is judged until the picture comes back",
                self.camera.id,
                fault,
                self._local(when),
            )
        self.no_picture, self.last_at = fault, when
        outcome = FrameOutcome.unapplied(when, detections, late=False)
        outcome.no_picture = fault
        outcome.occupancy = [ZoneOccupancy(m.zone.id, 0.0, None, None, learning=True) for m in self.meters]
        return outcome

    @property
    def view_moved_since(self) -> float | None:
        """Capture time of the first frame of another view than the reference, once the frames have
        shown one for `view.moved_after_s` (to the last frame in order); None before: a bus passing
        close in front pauses the rules for the seconds it hides the street, and is no moved camera."""
        since = self.view_mismatch_since
        if since is None or self.last_at is None or self.last_at - since < self.camera.view.moved_after_s:
            return None
        return since

    def _moved(self, when: float, detections: sv.Detections) -> FrameOutcome:
        """A frame of another view than the reference: in order, judged by nothing (as `_blind`); told
        as a moved view once that has lasted `view.moved_after_s`."""
        told = self.view_moved_since is not None
        if self.view_mismatch_since is None:
            self.view_mismatch_since = when
        self.no_picture = self.no_picture_since = None
        self.last_at = when
        if not told and self.view_moved_since is not None:
            log.warning(
                "camera %s: the view moved at %s (another preset, or knocked to another aim; another view "
                "for %.0f s): its zones no longer lie on their place, nothing is judged until it comes "
                "back or the new view is accepted (POST /v1/cameras/%s/view)",
                self.camera.id,
                self._local(self.view_mismatch_since),
                when - self.view_mismatch_since,
                self.camera.id,
            )
        outcome = FrameOutcome.unapplied(when, detections, late=False)
        outcome.view_mismatch = True
        outcome.view_moved = self.view_moved_since is not None
        outcome.occupancy = [ZoneOccupancy(m.zone.id, 0.0, None, None, learning=True) for m in self.meters]
        return outcome

    def accept_view(self) -> float | None:
        """An operator re-aimed the camera on purpose: the view shown now is its reference, and the
        rules judge again from the next frame (the zones are the operator's to redraw). Returns the
        capture time of the frame taken (None: taken once the frames settle)."""
        taken = self.view.accept()
        log.warning(
            "camera %s: the view shown %s is accepted as its reference; its zones are to be redrawn on it",
            self.camera.id,
            "next" if taken is None else "at " + self._local(taken),
        )
        return taken

    def stream_lost(self) -> None:
        """The stream bringing the frames was lost and is read again (a camera rebooted, a stall): the
        camera saw nothing since its last frame, so the next frame resumes as after a picture lost
        (what stands goes on in its clock and case, absence counts from that frame). Counted as absence,
        a reboot longer than `clear_after_s` proposed the parked car's case `resolved` with the car in
        the after-photo, and one longer than `refind_s` started its dwell again."""
        self.stream_lost_at = self.last_at

    def _resumed(self, when: float) -> None:
        """The picture (or the reference view) is back after a spell without one no longer than
        `dwell.restart_bridge_s`: what stands now is judged as before (the same clocks and cases),
        and absence counts from this frame, as the camera saw nothing meanwhile."""
        if self.view_moved_since is not None:
            log.info(
                "camera %s: judged again from %s, %.0f s after its view moved",
                self.camera.id,
                self._local(when),
                when - self.view_moved_since,
            )
        elif self.view_mismatch_since is not None:  # hidden for less than view.moved_after_s: a bus in front
            log.debug(
                "camera %s: its view is back at %s after %.0f s hidden or moved",
                self.camera.id,
                self._local(when),
                when - self.view_mismatch_since,
            )
        elif self.stream_lost_at is not None and self.no_picture is None:
            log.info(
                "camera %s: judged again from %s, %.0f s after its stream was lost",
                self.camera.id,
                self._local(when),
                when - self.stream_lost_at,
            )
        else:
            log.info(
                "camera %s: the picture is back at %s after %.0f s without one",
                self.camera.id,
                self._local(when),
                when - (self.no_picture_since or when),
            )
        self.clocks.resume(when)
        for clock in self.occupancy_clocks.values():
            clock.resume(when)
        for ledger in self.ledgers.values():
            ledger.resume(when)

    def _unwatched(self, when: float) -> None:
        """A gap in the frames (or in the picture) longer than `dwell.restart_bridge_s` (a restart,
        a `watch` started later, a camera that stopped sending or lost its signal): what stood before
        it may not be what stands now, so no dwell is carried across it (vision/live/incidents.py)."""
        log.info(
            "camera %s: no frame with a picture for %.0f s before %s (dwell.restart_bridge_s %g): "
            "dwell starts again",
            self.camera.id,
            when - (self.usable_at or when),
            self._local(when),
            self.camera.dwell.restart_bridge_s,
        )
        self.clocks.resume(when)
        for clock in self.occupancy_clocks.values():
            clock.forget()
        for ledger in self.ledgers.values():
            ledger.unwatched(when)

    @staticmethod
    def _describe(tracked: sv.Detections, frame: np.ndarray) -> None:
        """Each tracked box's colour signature (NaN: none), and whether another box covers it."""
        looks = np.full((len(tracked), SIGNATURE_SIZE), np.nan, dtype=np.float32)
        unoccluded = np.zeros(len(tracked), dtype=bool)
        for index in np.flatnonzero(ids(tracked.tracker_id, len(tracked)) >= 0):
            box = tracked.xyxy[index]
            found = signature(frame, box)
            if found is not None:
                looks[index] = found
            others = np.delete(tracked.xyxy, index, axis=0)
            covered = max((float(overlap_of_first(box[None], other)[0]) for other in others), default=0.0)
            unoccluded[index] = covered < OCCLUDED
        tracked.data[APPEARANCE] = looks
        tracked.data[UNOCCLUDED] = unoccluded

    def _occupancy(
        self, when: float, frame: np.ndarray, tracked: sv.Detections, outcome: FrameOutcome
    ) -> None:
        assert self.foreground is not None
        # Only what is confidently tracked as a vehicle is someone else's business: a low-score box
        # (a stall the detector calls a car at 0.35) must not hide an occupation. Every box is kept
        # out of the long-term background all the same.
        vehicles = np.isin(ids(tracked.class_id, len(tracked)), self._mask_classes)
        ignore = tracked.xyxy[vehicles & self.tracker.confident(tracked)]
        keep_out = tracked.xyxy
        changes = self.foreground.view_changes
        self.foreground.update(when, frame, ignore, keep_out)
        if self.foreground.view_changes > changes:
            log.warning(
                "camera %s: the view changed at %s (moved, or its infrared picture): occupancy learns "
                "the background anew and judges nothing for %.0f s",
                self.camera.id,
                self._local(when),
                self.foreground.learn_s,
            )
        for meter in self.meters:
            reading = meter.measure(self.foreground)
            outcome.occupancy.append(reading)
            if reading.learning:  # nothing is judged, not even absence: the background is not known
                continue
            since = self.occupancy_clocks[meter.zone.id].update(when, meter.occupied(reading))
            rule = meter.zone.rule
            sightings = []
            if since is not None and reading.box is not None:
                event = self._occupancy_event(rule, reading.box, tracked)
                sightings.append(Sighting(OCCUPANCY_KEY, reading.box, since, event))
            ledger = self.ledgers[meter.zone.id]
            outcome.events += ledger.update(when, sightings, self._active_since(rule, when))

    def export(self) -> dict[str, Any]:
        """Everything but the tracker, as plain values and arrays (vision/live/state.py)."""
        return {
            "version": STATE_VERSION,
            "last_at": self.last_at,
            "usable_at": self.usable_at,
            "no_picture": self.no_picture,
            "no_picture_since": self.no_picture_since,
            "picture": self.picture,
            "picture_since": self.picture_since,
            "view": self.view.export(),
            "view_moved_since": self.view_mismatch_since,  # the key states were saved with before
            "size": None if self.size is None else list(self.size),
            "incident_ids": self.incident_ids.next_value,
            "zones": {z.id: z.rule.detect for z in self.camera.zones},
            "clocks": self.clocks.export(),
            "ledgers": {zone_id: ledger.export() for zone_id, ledger in self.ledgers.items()},
            "occupancy_clocks": {zone_id: c.export() for zone_id, c in self.occupancy_clocks.items()},
            "foreground": None if self.foreground is None else self.foreground.export(),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back an export of this camera (possibly of an older configuration of it): what
        belongs to zones of the same id and kind is kept, the rest is dropped."""
        if saved.get("version") != STATE_VERSION:
            raise ValueError(f"camera state version {saved.get('version')}, expected {STATE_VERSION}")
        same = {z.id for z in self.camera.zones if saved["zones"].get(z.id) == z.rule.detect}
        self.last_at = saved["last_at"]
        self.usable_at = saved.get("usable_at", self.last_at)  # saved before pictures were told
        self.no_picture, self.no_picture_since = saved.get("no_picture"), saved.get("no_picture_since")
        self.picture, self.picture_since = saved.get("picture", ""), saved.get("picture_since")
        self.view.restore(saved.get("view"))  # saved before views were watched: no reference yet
        self.view_mismatch_since = saved.get("view_moved_since")
        self.size = None if saved["size"] is None else (int(saved["size"][0]), int(saved["size"][1]))
        self.incident_ids.next_value = int(saved["incident_ids"])
        self.clocks.restore(saved["clocks"], same)
        for zone_id in same:
            self.ledgers[zone_id].restore(saved["ledgers"][zone_id])
            if zone_id in self.occupancy_clocks:
                self.occupancy_clocks[zone_id].restore(saved["occupancy_clocks"][zone_id])
        if self.foreground is not None:
            self.foreground.restore(saved["foreground"])

    @property
    def incidents(self) -> list[Incident]:
        return [i for ledger in self.ledgers.values() for i in ledger.incidents.values()]

    def set_handled(self, incident: Incident, at: datetime | float | None) -> None:
        """The incident's case was reported handled at `at` (None: back in handling, e.g. rework)."""
        self.ledgers[incident.zone_id].set_handled(incident.id, None if at is None else capture_seconds(at))

    def close(self, incident: Incident) -> None:
        """Its case is over (closed, cancelled, not filed): silent while its object stays; what
        stands there after it has gone is a new violation."""
        self.ledgers[incident.zone_id].close(incident.id)
