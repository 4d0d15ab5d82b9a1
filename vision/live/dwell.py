"""Dwell clocks: how long each tracked object has stood still in a zone.

A clock belongs to an object in a zone, not to a tracker id: when a parked car is hidden by a
passing bus and comes back under a new tracker id at the same place, it keeps its clock, provided
it looks the same (vision/live/appearance.py: another car parking where the first one stood starts
at zero). A clock restarts when the object moves (centroid drift beyond `max_drift` x the box's
size), so a car creeping in traffic never accumulates dwell. All times are capture times in seconds.

The detections may carry, per box, `data["appearance"]` (a colour signature, NaN where none) and
`data["unoccluded"]` (no other box covers it, so the signature may be learned); without them (no
frame) a refind goes by position alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import supervision as sv

from vision.core.detector import subset
from vision.live.appearance import blend, distance
from vision.live.cameras import DwellSettings
from vision.live.tracking import ids

APPEARANCE = "appearance"  # detections.data keys (see the module's docstring)
UNOCCLUDED = "unoccluded"


@dataclass
class Stay:
    """One object standing in one zone, with its clock."""

    key: int  # stable across tracker id switches
    zone_id: str
    class_id: int
    tracker_id: int
    box: np.ndarray  # latest xyxy, pixels
    anchor_box: np.ndarray  # where the clock (re)started: drift is measured from here
    since: float  # clock start
    last_seen: float
    confidence: float
    appearance: np.ndarray | None = None  # colour signature, learned while unoccluded

    def dwell(self, at: float) -> float:
        return at - self.since


def centroid_drift(reference: np.ndarray, box: np.ndarray) -> float:
    """Centroid displacement relative to the reference box's size (sqrt of its area)."""
    centre_ref = (reference[:2] + reference[2:]) / 2
    centre = (box[:2] + box[2:]) / 2
    size = float(np.sqrt(max((reference[2] - reference[0]) * (reference[3] - reference[1]), 1.0)))
    return float(np.linalg.norm(centre - centre_ref)) / size


def overlap_of_first(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """For each of `boxes` (n, 4), the fraction of its area inside `box` (4,)."""
    width = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    height = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
    return np.asarray(width * height / area)


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return boxes * np.array([sx, sy, sx, sy], dtype=np.float64)


class DwellClocks:
    """Dwell clocks of one camera; memory bounded by `max_objects` (the stalest are evicted)."""

    def __init__(self, settings: DwellSettings) -> None:
        self.settings = settings
        self.stays: dict[int, Stay] = {}
        self._by_track: dict[tuple[str, int], int] = {}  # (zone, tracker id) -> stay key
        self._next_key = 1
        self._watching_since: float | None = -math.inf  # None: from the next frame (restored)

    def _unseen(self, stay: Stay, at: float) -> float:
        """Seconds the camera watched without seeing it (after a restart, from its first frame)."""
        assert self._watching_since is not None
        return at - max(stay.last_seen, self._watching_since)

    def __len__(self) -> int:
        return len(self.stays)

    def _refind(
        self, zone_id: str, box: np.ndarray, looks: np.ndarray | None, at: float, taken: set[int]
    ) -> Stay | None:
        """A recently lost object of the zone at the same place (best overlap) that looks the same."""
        candidates = [
            s
            for s in self.stays.values()
            if s.zone_id == zone_id and s.key not in taken and self._unseen(s, at) <= self.settings.refind_s
        ]
        if not candidates:
            return None
        ious = sv.box_iou_batch(np.stack([s.box for s in candidates]), box[None])[:, 0]
        for index in np.argsort(-ious):
            if ious[index] < self.settings.refind_iou:
                break
            known = candidates[index].appearance
            if known is None or looks is None or distance(known, looks) <= self.settings.refind_appearance:
                return candidates[index]
        return None

    def _follow(self, zone_id: str, detections: sv.Detections, at: float) -> list[Stay]:
        seen: list[Stay] = []
        taken: set[int] = set()
        tracker_ids = ids(detections.tracker_id, len(detections))
        class_ids = ids(detections.class_id, len(detections))
        signatures = np.asarray(detections.data[APPEARANCE]) if APPEARANCE in detections.data else None
        unoccluded = np.asarray(detections.data.get(UNOCCLUDED, np.zeros(len(detections), dtype=bool)))
        known = [self._by_track.get((zone_id, int(t))) for t in tracker_ids]
        # Known tracks first, so a refind never steals a clock that its own track still holds.
        for index in sorted(range(len(detections)), key=lambda i: known[i] is None):
            tracker_id = int(tracker_ids[index])
            box = detections.xyxy[index].astype(np.float64)
            looks = None if signatures is None or np.isnan(signatures[index, 0]) else signatures[index]
            key = known[index]
            stay = self.stays.get(key) if key is not None else None
            if stay is None or stay.key in taken:
                stay = self._refind(zone_id, box, looks, at, taken)
                if stay is not None:
                    self._by_track.pop((zone_id, stay.tracker_id), None)
            if stay is None:
                self._next_key += 1
                stay = Stay(
                    key=self._next_key - 1,
                    zone_id=zone_id,
                    class_id=int(class_ids[index]),
                    tracker_id=tracker_id,
                    box=box,
                    anchor_box=box,
                    since=at,
                    last_seen=at,
                    confidence=0.0,
                    appearance=looks,
                )
                self.stays[stay.key] = stay
            if centroid_drift(stay.anchor_box, box) > self.settings.max_drift:
                stay.anchor_box, stay.since = box, at
            if unoccluded[index]:
                stay.appearance = blend(stay.appearance, looks)
            stay.tracker_id = tracker_id
            stay.class_id = int(class_ids[index])
            stay.box = box
            stay.last_seen = at
            stay.confidence = (
                float(detections.confidence[index]) if detections.confidence is not None else 1.0
            )
            self._by_track[(zone_id, tracker_id)] = stay.key
            taken.add(stay.key)
            seen.append(stay)
        return seen

    def _evict(self, at: float) -> None:
        stale = [k for k, s in self.stays.items() if self._unseen(s, at) > self.settings.refind_s]
        overflow = len(self.stays) - len(stale) - self.settings.max_objects
        if overflow > 0:
            fresh = sorted((s for s in self.stays.values() if s.key not in stale), key=lambda s: s.last_seen)
            stale += [s.key for s in fresh[:overflow]]
        for key in stale:
            stay = self.stays.pop(key)
            if self._by_track.get((stay.zone_id, stay.tracker_id)) == key:
                del self._by_track[(stay.zone_id, stay.tracker_id)]

    def update(self, at: float, in_zones: dict[str, sv.Detections]) -> dict[str, list[Stay]]:
        """Advance the clocks with one frame's tracked detections per zone; returns the stays seen.

        Detections without a track (tracker_id -1) carry no identity and are ignored.
        """
        if self._watching_since is None:  # the first frame after a restart
            self.resume(at)
        seen: dict[str, list[Stay]] = {}
        for zone_id, detections in in_zones.items():
            tracked = subset(detections, ids(detections.tracker_id, len(detections)) >= 0)
            seen[zone_id] = self._follow(zone_id, tracked, at) if len(tracked) else []
        self._evict(at)
        return seen

    def resume(self, at: float) -> None:
        """The first frame after nobody watched (a restart, or a gap in the frames longer than
        `restart_bridge_s`): refinds and absence count from `at`, and the clocks last seen more than
        `restart_bridge_s` before it are dropped: carried over they would file at once whatever stands
        there now (three days off made a car parked 20 s before the outage a 259,207 s stay)."""
        self._watching_since = at
        for key in [k for k, s in self.stays.items() if at - s.last_seen > self.settings.restart_bridge_s]:
            stay = self.stays.pop(key)
            if self._by_track.get((stay.zone_id, stay.tracker_id)) == key:
                del self._by_track[(stay.zone_id, stay.tracker_id)]

    def rescale(self, sx: float, sy: float) -> None:
        """Carry the clocks over a change of frame size (boxes are pixels)."""
        for stay in self.stays.values():
            stay.box = scale_boxes(stay.box, sx, sy)
            stay.anchor_box = scale_boxes(stay.anchor_box, sx, sy)
        self._by_track.clear()  # the tracker is reset with the size: its ids start over

    def export(self) -> dict[str, Any]:
        """The clocks, for vision/live/state.py (tracker ids are not: a new tracker starts over)."""
        return {"next_key": self._next_key, "stays": [asdict(stay) for stay in self.stays.values()]}

    def restore(self, saved: dict[str, Any], zone_ids: set[str]) -> None:
        """Take back exported clocks of the zones that still exist; each can be refound (by place and
        looks) within `refind_s` of the first frame after the restart, as after an occlusion, if that
        frame comes within `restart_bridge_s` of its last sighting."""
        self.stays, self._by_track, self._watching_since = {}, {}, None
        for fields in saved["stays"]:
            if fields["zone_id"] not in zone_ids:
                continue
            looks = fields["appearance"]
            stay = Stay(
                **{
                    **fields,
                    "box": np.asarray(fields["box"], dtype=np.float64),
                    "anchor_box": np.asarray(fields["anchor_box"], dtype=np.float64),
                    "appearance": None if looks is None else np.asarray(looks, dtype=np.float32),
                    "tracker_id": -1,
                }
            )
            self.stays[stay.key] = stay
        self._next_key = int(saved["next_key"])  # keys never repeat: incidents remember theirs
