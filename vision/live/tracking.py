"""Tracking on capture time: ByteTrack (Roboflow `trackers`, the successor of `sv.ByteTrack`).

supervision 0.26+ moved its trackers to the `trackers` package; its ByteTrack takes the frame's
capture time, so the Kalman step and the lost-track budget follow real seconds even when a camera
delivers 2 fps with gaps. Frames must come in strictly increasing capture time; the caller
(vision/live/rules.py) keeps late frames away from here.

Thresholds follow the classes, not one tracker-wide score: a detection at or above its class's
threshold (the lowest of the taxonomy's `min_confidence` and any zone rule's own) starts a track
and is matched in ByteTrack's first stage; one below it, down to `tracker.keep_confidence`, only
keeps an existing track alive (ByteTrack's second stage); anything lower is not tracked at all.
ByteTrack itself has one split, so each score is shifted by its class's threshold before it sees it.

`lost_s` counts time the camera watched: a track is kept `lost_s` past the last frame that could
have seen it, so a camera that sends a frame every 5 or 10 s is tracked (ByteTrack's own budget runs
from the last match and would drop every track of a camera slower than one frame per `lost_s`).
Only a gap up to `bridge_s` (the dwell clocks' `refind_s`) is bridged that way: after a longer
stall nobody knows whether what stands there is the same object, so its tracks are lost.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from vision.core.detector import subset
from vision.core.taxonomy import Taxonomy
from vision.live.cameras import Camera, TrackerSettings

REFERENCE_FPS = 30.0  # ByteTrack counts its lost-track buffer in frames of a 30 fps video
SPLIT = 0.5  # ByteTrack's first-stage and activation threshold, on scores shifted to it
SCORE_MEMORY = 8  # a track's confidence: the mean of its last this many scores


def ids(values: np.ndarray | None, count: int) -> np.ndarray:
    """An optional per-detection id array (class_id, tracker_id) with -1 where it is missing."""
    return np.full(count, -1, dtype=int) if values is None else values.astype(int)


def scores(detections: sv.Detections) -> np.ndarray:
    """Detector scores, 1.0 where a source gives none."""
    if detections.confidence is None:
        return np.ones(len(detections))
    return detections.confidence.astype(np.float64)


def class_thresholds(camera: Camera, taxonomy: Taxonomy) -> np.ndarray:
    """Per taxonomy class, the score from which it counts on this camera: the taxonomy's own, or a
    zone rule's lower `min_confidence` for the classes of that rule."""
    thresholds = np.array([c.min_confidence for c in taxonomy.classes], dtype=np.float64)
    for zone in camera.zones:
        rule = zone.rule
        if rule.min_confidence is None:
            continue
        for name in rule.classes:
            index = taxonomy.names.index(name)
            thresholds[index] = min(thresholds[index], rule.min_confidence)
    return thresholds


class CaptureTimeTracker:
    """Assigns `tracker_id` to detections of one camera, frame after frame."""

    def __init__(
        self, settings: TrackerSettings, fps: float, thresholds: np.ndarray, bridge_s: float = 0.0
    ) -> None:
        self.settings = settings
        self.fps = fps
        self.thresholds = thresholds
        self.bridge_s = bridge_s  # longest gap between frames that tracks are kept across
        self.last_time: float | None = None
        self._scores: dict[int, deque[float]] = {}  # recent scores of each live track
        self._tracker = self._new()

    def _new(self) -> ByteTrackTracker:
        return ByteTrackTracker(
            lost_track_buffer=max(1, round(self.settings.lost_s * REFERENCE_FPS)),
            frame_rate=self.fps,
            track_activation_threshold=SPLIT,
            minimum_consecutive_frames=self.settings.min_frames,
            high_conf_det_threshold=SPLIT,
        )

    def __len__(self) -> int:
        """Tracks held now: lost ones are pruned after `lost_s`, so memory follows what is in view."""
        return len(self._tracker.tracks)

    def reset(self) -> None:
        """Forget every track: after a change of frame size, boxes are no longer comparable."""
        self._tracker = self._new()
        self._scores.clear()
        self.last_time = None

    def _threshold(self, class_ids: np.ndarray) -> np.ndarray:
        known = (class_ids >= 0) & (class_ids < len(self.thresholds))
        return np.where(known, self.thresholds[np.clip(class_ids, 0, len(self.thresholds) - 1)], SPLIT)

    def update(self, detections: sv.Detections, at: float) -> sv.Detections:
        """Track one frame captured at `at` (seconds); the detections come back in their order, with
        `tracker_id` (-1: no track yet, or too low a score to be tracked)."""
        if self.last_time is not None and at <= self.last_time:
            raise ValueError(f"capture time {at} is not after the last tracked frame {self.last_time}")
        gap = 0.0 if self.last_time is None else at - self.last_time
        self._tracker.maximum_time_without_update = self.settings.lost_s + min(gap, self.bridge_s)
        self.last_time = at
        score = scores(detections)
        class_ids = ids(detections.class_id, len(detections))
        given = np.flatnonzero(score >= self.settings.keep_confidence)
        shifted = sv.Detections(
            xyxy=detections.xyxy[given],
            confidence=np.clip(SPLIT + score[given] - self._threshold(class_ids[given]), 0.0, 1.0),
            class_id=class_ids[given],
            data={"row": given},
        )
        tracked = self._tracker.update(shifted, timestamp=at)
        tracker_ids = np.full(len(detections), -1, dtype=int)
        if len(tracked) and tracked.tracker_id is not None:
            tracker_ids[np.asarray(tracked.data["row"], dtype=int)] = tracked.tracker_id
        result = subset(detections, np.ones(len(detections), dtype=bool))
        result.tracker_id = tracker_ids
        self._remember(tracker_ids, score)
        return result

    def _remember(self, tracker_ids: np.ndarray, score: np.ndarray) -> None:
        for tracker_id, value in zip(tracker_ids.tolist(), score.tolist(), strict=True):
            if tracker_id >= 0:
                self._scores.setdefault(tracker_id, deque(maxlen=SCORE_MEMORY)).append(value)
        alive = {track.tracker_id for track in self._tracker.tracks}
        for tracker_id in [t for t in self._scores if t not in alive]:
            del self._scores[tracker_id]

    def confident(self, tracked: sv.Detections) -> np.ndarray:
        """Per detection: it has a track whose recent scores reach its class's threshold on average
        (a parked car scored 0.45 frame after frame is; a stall a detector calls a car now and then,
        at 0.32 to 0.40, is not)."""
        tracker_ids = ids(tracked.tracker_id, len(tracked))
        thresholds = self._threshold(ids(tracked.class_id, len(tracked)))
        means = np.array(
            [np.mean(self._scores[t]) if t in self._scores else -1.0 for t in tracker_ids.tolist()]
        )
        return (tracker_ids >= 0) & (means >= thresholds) if len(tracked) else np.zeros(0, dtype=bool)
